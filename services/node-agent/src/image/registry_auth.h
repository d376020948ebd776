// Registry authentication pieces that need no network: the WWW-Authenticate
// challenge parser (RFC 7235 section 4.1, as the distribution token spec
// uses it) and the credentials file.
//
// The credentials file is Docker's config.json shape, so existing files work:
//   {"auths": {"registry.example.com": {"auth": "<base64 user:password>"}},
//              "127.0.0.1:5000": {"username": "u", "password": "p"}}}
// Credentials are secrets: never log them; registry_source registers them
// with the Redactor.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "plfm/core/result.h"

namespace plfm::image {

struct AuthChallenge {
  std::string scheme;                         // "bearer" or "basic" (lowercased)
  std::map<std::string, std::string> params;  // realm, service, scope, ... (keys lowercased)
};

// Parses one challenge: `Bearer realm="https://a/token",service="s",scope="x:y:pull"`.
[[nodiscard]] Result<AuthChallenge> parseAuthChallenge(std::string_view header);

struct RegistryCredentials {
  std::string username;
  std::string password;
};

// Registry host -> credentials. Keys are normalized: a scheme prefix and a
// trailing path are dropped ("https://index.docker.io/v1/" -> "index.docker.io").
using CredentialStore = std::map<std::string, RegistryCredentials>;

[[nodiscard]] Result<CredentialStore> parseCredentials(std::string_view text);
[[nodiscard]] Result<CredentialStore> loadCredentialsFile(const std::string& path);
// Credentials for `registry` ("docker.io" also matches index.docker.io entries).
[[nodiscard]] std::optional<RegistryCredentials> findCredentials(const CredentialStore& store,
                                                                 std::string_view registry);

}  // namespace plfm::image
