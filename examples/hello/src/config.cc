#include "config.h"

#include <charconv>
#include <string_view>

namespace plfm::hello {
namespace {

Result<uint16_t> parsePort(const char* name, std::string_view text) {
  unsigned value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value > 65535) {
    return Error(errc::kInvalidArgument, std::string(name) +
                                             ": expected a port from 0 to 65535, got \"" +
                                             std::string(text.substr(0, 40)) + "\"");
  }
  return static_cast<uint16_t>(value);
}

}  // namespace

Result<Config> configFromEnv(const EnvLookup& lookup) {
  Config c;
  auto text = [&](const char* name, std::string& out) {
    if (const char* v = lookup(name); v != nullptr && *v != '\0') out = v;
  };
  if (const char* v = lookup("PORT"); v != nullptr && *v != '\0') {
    PLFM_ASSIGN_OR_RETURN(c.port, parsePort("PORT", v));
  }
  if (const char* v = lookup("HEALTH_PORT"); v != nullptr && *v != '\0') {
    PLFM_ASSIGN_OR_RETURN(c.health_port, parsePort("HEALTH_PORT", v));
  }
  if (const char* v = lookup("ECHO_PORT"); v != nullptr && *v != '\0') {
    PLFM_ASSIGN_OR_RETURN(c.echo_port, parsePort("ECHO_PORT", v));
  }
  if (c.port != 0 && c.port == c.health_port) {
    return Error(errc::kInvalidArgument, "PORT and HEALTH_PORT must differ");
  }
  text("TLS_CERT_FILE", c.cert_file);
  text("TLS_KEY_FILE", c.key_file);
  text("HELLO_SECRETS_FILE", c.secrets_file);
  text("PLFM_INSTANCE_ID", c.instance_id);
  text("PLFM_RELEASE_ID", c.release_id);
  text("GREETING", c.greeting);
  return c;
}

}  // namespace plfm::hello
