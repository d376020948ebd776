// Hand-written valid instances of the API contract's shapes, for the
// contract tests: one per components/schemas entry of the OpenAPI document
// (api/openapi/openapi.yaml) and one payload per event type
// (api/schemas/events/). The tests validate each sample, then break it field
// by field and expect the schema to refuse every near miss.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace plfm::cp::testsupport {

inline constexpr std::string_view kSampleTs = "2026-11-26T11:46:40.123456Z";

// A well-formed id with this prefix ("org" -> "org_01jdq...").
[[nodiscard]] std::string sampleId(std::string_view prefix);

[[nodiscard]] nlohmann::json sampleOrg();
[[nodiscard]] nlohmann::json samplePage(nlohmann::json item);
[[nodiscard]] nlohmann::json sampleEvent();
[[nodiscard]] nlohmann::json sampleWorkloadSpec();
[[nodiscard]] nlohmann::json sampleNodePlan();

// components/schemas name -> a valid instance.
[[nodiscard]] const std::map<std::string, nlohmann::json>& componentSamples();
// event type -> a valid payload.
[[nodiscard]] const std::map<std::string, nlohmann::json>& payloadSamples();

// The samples of routes and the edge (contract_samples_routes.cc), in two
// more maps of the same kinds; the tests see the union (mergedSamples).
[[nodiscard]] std::map<std::string, nlohmann::json> routeComponentSamples();
[[nodiscard]] std::map<std::string, nlohmann::json> routePayloadSamples();
[[nodiscard]] std::map<std::string, nlohmann::json> mergedSamples(
    std::map<std::string, nlohmann::json> a, std::map<std::string, nlohmann::json> b);

}  // namespace plfm::cp::testsupport
