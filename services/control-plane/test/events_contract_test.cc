// The event structs of libs/events against the contract: every schema in
// api/schemas/events has a struct and every struct a schema, and each
// contract sample reads into its struct and writes back to the same JSON,
// which the schema accepts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "contract_samples.h"
#include "plfm/events/events.h"
#include "schema_support.h"

namespace plfm::cp {
namespace {

using nlohmann::json;
using testsupport::mergedSamples;
using testsupport::payloadSamples;
using testsupport::routePayloadSamples;
using testsupport::validateAgainstSchemaFile;

std::set<std::string> schemaTypes() {
  std::set<std::string> out;
  for (const auto& f :
       std::filesystem::directory_iterator(std::string(PLFM_SOURCE_DIR) + "/api/schemas/events")) {
    if (f.path().extension() == ".json") out.insert(f.path().stem().string());
  }
  return out;
}

TEST(EventsContractTest, EverySchemaHasAStructAndViceVersa) {
  std::set<std::string> structs;
  for (const auto& t : events::allTypes()) structs.insert(std::string(t.type));
  EXPECT_EQ(structs, schemaTypes());
}

TEST(EventsContractTest, EveryStructRoundTripsItsSampleThroughItsSchema) {
  const auto samples = mergedSamples(payloadSamples(), routePayloadSamples());
  for (const auto& t : events::allTypes()) {
    const std::string type(t.type);
    auto it = samples.find(type);
    ASSERT_NE(it, samples.end()) << "no sample payload for " << type;
    auto text = t.roundTrip(it->second);
    ASSERT_TRUE(text) << type << ": " << text.error().toString();
    const json back = json::parse(*text);
    EXPECT_EQ(back, it->second) << type;
    EXPECT_EQ(*text, it->second.dump()) << type;
    auto err = validateAgainstSchemaFile("events/" + type + ".json", back);
    EXPECT_EQ(err, std::nullopt) << *err;
  }
}

TEST(EventsContractTest, EveryRequiredFieldIsReadAsRequired) {
  // Removing a field fails fromPayload, naming the field, unless the schema
  // lets it be null: events written before a nullable field was added lack it.
  const auto samples = mergedSamples(payloadSamples(), routePayloadSamples());
  for (const auto& t : events::allTypes()) {
    const std::string type(t.type);
    const json& sample = samples.at(type);
    std::ifstream in(std::string(PLFM_SOURCE_DIR) + "/api/schemas/events/" + type + ".json");
    const json schema = json::parse(in);
    for (const auto& [field, value] : sample.items()) {
      const json& declared = schema["properties"][field]["type"];
      if (declared.is_array() && declared.back() == "null") continue;
      json missing = sample;
      missing.erase(field);
      auto r = t.roundTrip(missing);
      ASSERT_FALSE(r) << t.type << " without " << field;
      EXPECT_NE(r.error().toString().find("payload." + field + " is missing"), std::string::npos)
          << r.error().toString();
    }
  }
}

}  // namespace
}  // namespace plfm::cp
