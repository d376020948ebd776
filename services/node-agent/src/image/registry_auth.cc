#include "image/registry_auth.h"

#include <openssl/evp.h>

#include <algorithm>

#include "image/json_util.h"
#include "plfm/core/json.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"

namespace plfm::image {

namespace {

Error badChallenge(std::string_view why) {
  return Error(errc::kUnauthenticated,
               "registry sent a malformed WWW-Authenticate challenge: " + std::string(why));
}

Result<std::string> base64Decode(std::string_view in) {
  std::string out(3 * ((in.size() + 3) / 4), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0) return Error(errc::kInvalidArgument, "credentials: 'auth' is not valid base64");
  out.resize(static_cast<size_t>(n));
  // EVP_DecodeBlock counts the padding bytes as zeros; drop them.
  size_t pad = 0;
  for (auto it = in.rbegin(); it != in.rend() && *it == '='; ++it) ++pad;
  out.resize(out.size() - std::min(pad, out.size()));
  return out;
}

std::string normalizeHost(std::string_view key) {
  if (const size_t p = key.find("://"); p != std::string_view::npos) key = key.substr(p + 3);
  if (const size_t slash = key.find('/'); slash != std::string_view::npos) {
    key = key.substr(0, slash);
  }
  return std::string(key);
}

}  // namespace

Result<AuthChallenge> parseAuthChallenge(std::string_view header) {
  header = trim(header);
  const size_t sp = header.find(' ');
  AuthChallenge c;
  c.scheme = asciiLower(header.substr(0, sp));
  if (c.scheme.empty()) return badChallenge("no scheme");
  if (sp == std::string_view::npos) return c;
  std::string_view rest = header.substr(sp + 1);
  while (true) {
    rest = trim(rest);
    if (rest.empty()) break;
    const size_t eq = rest.find('=');
    if (eq == std::string_view::npos) return badChallenge("parameter without '='");
    std::string key = asciiLower(trim(rest.substr(0, eq)));
    if (key.empty()) return badChallenge("empty parameter name");
    rest = trim(rest.substr(eq + 1));
    std::string value;
    if (!rest.empty() && rest.front() == '"') {
      size_t i = 1;
      bool closed = false;
      for (; i < rest.size(); ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) {
          value += rest[++i];
        } else if (rest[i] == '"') {
          closed = true;
          break;
        } else {
          value += rest[i];
        }
      }
      if (!closed) return badChallenge("unterminated quoted value");
      rest = rest.substr(i + 1);
    } else {
      const size_t comma = rest.find(',');
      value = std::string(trim(rest.substr(0, comma)));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma);
    }
    c.params[key] = std::move(value);
    rest = trim(rest);
    if (rest.empty()) break;
    if (rest.front() != ',') return badChallenge("expected ',' between parameters");
    rest = rest.substr(1);
  }
  return c;
}

Result<CredentialStore> parseCredentials(std::string_view text) {
  auto parsed = json::parse(text);
  if (!parsed) return Error(errc::kInvalidArgument, "credentials: " + parsed.error().message());
  const json::Json& j = *parsed;
  CredentialStore store;
  const json::Json* auths = findField(j, "auths");
  if (!j.is_object() || auths == nullptr || !auths->is_object()) {
    return Error(errc::kInvalidArgument,
                 R"(credentials: expected {"auths": {"<registry>": {...}}})");
  }
  for (auto it = auths->begin(); it != auths->end(); ++it) {
    const std::string host = normalizeHost(it.key());
    const json::Json& entry = it.value();
    if (!entry.is_object()) {
      return Error(errc::kInvalidArgument, "credentials: auths." + host + " must be an object");
    }
    RegistryCredentials cred;
    if (const json::Json* a = findField(entry, "auth"); a != nullptr && a->is_string()) {
      PLFM_ASSIGN_OR_RETURN(std::string decoded, base64Decode(a->get_ref<const std::string&>()));
      const size_t colon = decoded.find(':');
      if (colon == std::string::npos) {
        return Error(errc::kInvalidArgument,
                     "credentials: auths." + host + ".auth must encode user:password");
      }
      cred.username = decoded.substr(0, colon);
      cred.password = decoded.substr(colon + 1);
    } else {
      PLFM_ASSIGN_OR_RETURN(cred.username, json::getString(entry, "username", "auths." + host));
      PLFM_ASSIGN_OR_RETURN(cred.password, json::getString(entry, "password", "auths." + host));
    }
    store[host] = std::move(cred);
  }
  return store;
}

Result<CredentialStore> loadCredentialsFile(const std::string& path) {
  auto text = readFile(path);
  if (!text) return text.error().context("reading credentials file");
  auto store = parseCredentials(*text);
  if (!store) return store.error().with("file", path);
  return store;
}

std::optional<RegistryCredentials> findCredentials(const CredentialStore& store,
                                                   std::string_view registry) {
  if (auto it = store.find(std::string(registry)); it != store.end()) return it->second;
  if (registry == "docker.io") {
    for (const char* alias : {"index.docker.io", "registry-1.docker.io"}) {
      if (auto it = store.find(alias); it != store.end()) return it->second;
    }
  }
  return std::nullopt;
}

}  // namespace plfm::image
