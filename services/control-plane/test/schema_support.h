// Contract-test support: loads the API contract (api/openapi/openapi.yaml and
// the JSON Schemas under api/schemas) and validates JSON documents against it
// with valijson, so API tests can check that every response they see is one
// the contract allows. It also checks a client's requests against a Swagger
// 2.0 server contract (the node agent's Firecracker driver against
// Firecracker's published API).
//
//   const auto doc = testsupport::loadOpenApi();
//   auto err = testsupport::validateResponse(doc, "GET", "/v1/orgs/{org_id}", 200, body);
//   EXPECT_EQ(err, std::nullopt) << *err;
//
// OpenAPI 3.0 schemas are turned into plain JSON Schema before validation:
// local `$ref`s are inlined and `nullable: true` becomes a type union with
// "null". Validation errors name the JSON pointer of the offending value and
// the rule it broke.
//
// Test code only. Files are found through PLFM_SOURCE_DIR (set by
// plfm_add_test). Functions that return a value throw std::runtime_error on a
// missing or malformed contract file, which fails the calling test with the
// reason; the validators report every problem as their error string instead.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace plfm::cp::testsupport {

// The OpenAPI document as JSON. YAML plain scalars that read as a YAML 1.2
// core-schema int, float, bool or null become that JSON type; quoted and
// block scalars, and every mapping key, stay strings ("3.0.3", "200").
[[nodiscard]] nlohmann::json loadOpenApi();

// Every operation as (METHOD, path template), e.g. ("GET", "/v1/orgs/{org_id}"),
// sorted.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> openApiRoutes(
    const nlohmann::json& doc);

// Validates `body` as the response of `method` `pathTemplate` with `status`.
// Uses the response for that status, else "<N>XX", else "default". A JSON
// content type validates the parsed body; a text content type validates the
// body as a JSON string. Returns nullopt when the body is valid, else why not
// ("status 418 not documented for GET /v1/orgs").
[[nodiscard]] std::optional<std::string> validateResponse(const nlohmann::json& doc,
                                                          const std::string& method,
                                                          const std::string& pathTemplate,
                                                          int status, const std::string& body);

// Validates `instance` against components/schemas/<name> of the OpenAPI
// document, converted as for validateResponse.
[[nodiscard]] std::optional<std::string> validateAgainstComponent(const nlohmann::json& doc,
                                                                  const std::string& name,
                                                                  const nlohmann::json& instance);

// Validates `instance` against the draft-07 schema api/schemas/<relPath>.
// `$ref`s are resolved relative to the referring file.
[[nodiscard]] std::optional<std::string> validateAgainstSchemaFile(const std::string& relPath,
                                                                   const nlohmann::json& instance);

// A YAML file as JSON, with the scalar rules of loadOpenApi. Throws
// std::runtime_error naming the file when it is missing or malformed.
[[nodiscard]] nlohmann::json loadYamlFile(const std::string& path);

// Validates a request a client sends against a Swagger 2.0 document (such as
// Firecracker's API, firecracker.yaml): `path` (no query) must match one of
// the document's path templates ("{x}" matches one non-empty segment),
// `method` must be documented there, and the JSON `body` must match the
// operation's `in: body` parameter schema (an empty body only when it has
// none, or it is not required). With `closed_objects`, every object schema
// that lists properties allows no others, as a server whose types deny
// unknown fields (Firecracker's serde types) would. Returns nullopt when the
// request is valid, else why not.
[[nodiscard]] std::optional<std::string> validateSwaggerRequest(const nlohmann::json& doc,
                                                                const std::string& method,
                                                                const std::string& path,
                                                                const std::string& body,
                                                                bool closed_objects = true);

// Every "$ref" in the document that does not resolve to a node of the same
// document, as "<JSON pointer of the $ref>: <target>". Empty when all resolve.
[[nodiscard]] std::vector<std::string> unresolvedRefs(const nlohmann::json& doc);

}  // namespace plfm::cp::testsupport
