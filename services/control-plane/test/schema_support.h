// Contract-test support: loads the API contract (api/openapi/openapi.yaml and
// the JSON Schemas under api/schemas) and validates JSON documents against it
// with valijson, so API tests can check that every response they see is one
// the contract allows.
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

// Every "$ref" in the document that does not resolve to a node of the same
// document, as "<JSON pointer of the $ref>: <target>". Empty when all resolve.
[[nodiscard]] std::vector<std::string> unresolvedRefs(const nlohmann::json& doc);

}  // namespace plfm::cp::testsupport
