#include "schema_support.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include "plfm/core/json.h"
#include "plfm/core/result.h"
#include "plfm/core/strings.h"

// valijson calls abort() on a malformed schema unless exceptions are enabled;
// its CMake target defines this too.
#ifndef VALIJSON_USE_EXCEPTIONS
#define VALIJSON_USE_EXCEPTIONS 1
#endif
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#ifndef PLFM_SOURCE_DIR
#error "PLFM_SOURCE_DIR must be defined (plfm_add_test does it)"
#endif

namespace plfm::cp::testsupport {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

constexpr std::string_view kOpenApiPath = "/api/openapi/openapi.yaml";
constexpr std::string_view kSchemaDir = "/api/schemas";
constexpr size_t kMaxErrorsShown = 8;
constexpr size_t kMaxValueShown = 80;

Error contractError(std::string message) {
  return Error(plfm::errc::kInvalidArgument, std::move(message));
}

// ---- YAML to JSON ----

// Parses an integer in `base`; nullopt when it does not fit in 64 bits.
std::optional<Json> parseInteger(std::string_view digits, bool negative, int base) {
  uint64_t magnitude = 0;
  const auto [end, ec] =
      std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  if (!negative) {
    if (magnitude <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Json(static_cast<int64_t>(magnitude));
    }
    return Json(magnitude);
  }
  if (magnitude <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Json(-static_cast<int64_t>(magnitude));
  }
  if (magnitude == static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1) {
    return Json(std::numeric_limits<int64_t>::min());
  }
  return std::nullopt;
}

// Resolves an untagged plain scalar with the YAML 1.2 core schema
// (https://yaml.org/spec/1.2.2/#1032-tag-resolution): null, bool, int, float,
// otherwise a string.
Json resolvePlainScalar(const std::string& s) {
  static const std::regex kNull("null|Null|NULL|~|");
  static const std::regex kTrue("true|True|TRUE");
  static const std::regex kFalse("false|False|FALSE");
  static const std::regex kDecimal("[-+]?[0-9]+");
  static const std::regex kOctal("0o[0-7]+");
  static const std::regex kHex("0x[0-9a-fA-F]+");
  static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  static const std::regex kInf(R"([-+]?\.(inf|Inf|INF))");
  static const std::regex kNan(R"(\.(nan|NaN|NAN))");

  if (std::regex_match(s, kNull)) return nullptr;
  if (std::regex_match(s, kTrue)) return true;
  if (std::regex_match(s, kFalse)) return false;
  const std::string_view v(s);
  if (std::regex_match(s, kDecimal)) {
    const bool negative = v.front() == '-';
    const bool sign = negative || v.front() == '+';
    if (auto i = parseInteger(v.substr(sign ? 1 : 0), negative, 10)) return *i;
  } else if (std::regex_match(s, kOctal)) {
    if (auto i = parseInteger(v.substr(2), false, 8)) return *i;
  } else if (std::regex_match(s, kHex)) {
    if (auto i = parseInteger(v.substr(2), false, 16)) return *i;
  }
  // An integer too large for 64 bits falls through to a float, as in JSON.
  if (std::regex_match(s, kFloat) || std::regex_match(s, kDecimal)) {
    const std::string_view digits = v.front() == '+' ? v.substr(1) : v;
    double d = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), d);
    if (ec == std::errc() && end == digits.data() + digits.size()) return d;
  }
  if (std::regex_match(s, kInf)) {
    return v.front() == '-' ? -std::numeric_limits<double>::infinity()
                            : std::numeric_limits<double>::infinity();
  }
  if (std::regex_match(s, kNan)) return std::numeric_limits<double>::quiet_NaN();
  return s;
}

Result<Json> scalarToJson(const YAML::Node& node, const std::string& at) {
  const std::string& tag = node.Tag();
  const std::string& text = node.Scalar();
  // "?" marks an untagged plain scalar; "!" a quoted or block scalar.
  if (tag == "?") return resolvePlainScalar(text);
  if (tag == "!" || tag == "tag:yaml.org,2002:str") return Json(text);
  static const std::map<std::string, Json::value_t, std::less<>> kTyped = {
      {"tag:yaml.org,2002:null", Json::value_t::null},
      {"tag:yaml.org,2002:bool", Json::value_t::boolean},
      {"tag:yaml.org,2002:int", Json::value_t::number_integer},
      {"tag:yaml.org,2002:float", Json::value_t::number_float},
  };
  auto it = kTyped.find(tag);
  if (it == kTyped.end()) return contractError("unsupported YAML tag '" + tag + "' at " + at);
  Json j = resolvePlainScalar(text);
  const bool matches = j.type() == it->second ||
                       (it->second == Json::value_t::number_integer && j.is_number_integer()) ||
                       (it->second == Json::value_t::number_float && j.is_number());
  if (!matches) return contractError("'" + text + "' is not a valid " + tag + " at " + at);
  if (it->second == Json::value_t::number_float) return Json(j.get<double>());
  return j;
}

std::string escapePointerToken(std::string_view token) {
  std::string out;
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

Result<Json> yamlToJson(const YAML::Node& node, const std::string& at) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return Json(nullptr);
    case YAML::NodeType::Scalar:
      return scalarToJson(node, at);
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      for (size_t i = 0; i < node.size(); ++i) {
        PLFM_ASSIGN_OR_RETURN(Json item, yamlToJson(node[i], at + "/" + std::to_string(i)));
        out.push_back(std::move(item));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) return contractError("non-scalar mapping key at " + at);
        const std::string& key = kv.first.Scalar();
        // Keys stay strings: response codes ("200") and versions are keys or quoted.
        if (out.contains(key)) {
          return contractError(
              std::string("duplicate key '").append(key).append("' at ").append(at));
        }
        PLFM_ASSIGN_OR_RETURN(Json value,
                              yamlToJson(kv.second, at + "/" + escapePointerToken(key)));
        out[key] = std::move(value);
      }
      return out;
    }
    case YAML::NodeType::Undefined:
      break;
  }
  return contractError("undefined YAML node at " + at);
}

// ---- JSON pointers and $ref ----

Result<std::string> percentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    unsigned value = 0;
    const char* first = s.data() + i + 1;
    const char* last = s.data() + std::min(s.size(), i + 3);
    const auto [end, ec] = std::from_chars(first, last, value, 16);
    if (ec != std::errc() || end != s.data() + i + 3) {
      return contractError("bad percent-encoding in '" + std::string(s) + "'");
    }
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

Result<const Json*> atPointer(const Json& root, const std::string& pointer) {
  try {
    const Json::json_pointer p(pointer);
    if (!root.contains(p)) return contractError("'" + pointer + "' points at nothing");
    return &root.at(p);
  } catch (const Json::exception& e) {
    return contractError("'" + pointer + "' is not a JSON pointer: " + e.what());
  }
}

// A JSON document that schemas are read from. `file` is empty for the
// in-memory OpenAPI document, which only allows local references.
struct Doc {
  const Json* root = nullptr;
  fs::path file;
};

enum class Dialect {
  kOpenApi30,   // OpenAPI 3.0 schema objects: `nullable` is a keyword
  kJsonSchema,  // draft-07
  kSwagger20,   // Swagger 2.0 schema objects (a draft-04 subset)
};

// Keywords whose value is one subschema, an array of them, or a map of them.
bool isSchemaKeyword(std::string_view key) {
  static constexpr std::array<std::string_view, 8> kKeys = {
      "additionalProperties", "additionalItems", "not", "if", "then", "else", "contains",
      "propertyNames"};
  return std::find(kKeys.begin(), kKeys.end(), key) != kKeys.end();
}
bool isSchemaArrayKeyword(std::string_view key) {
  return key == "allOf" || key == "anyOf" || key == "oneOf";
}
bool isSchemaMapKeyword(std::string_view key) {
  return key == "properties" || key == "patternProperties";
}

// OpenAPI 3.0's `nullable: true` as JSON Schema: null, or whatever the
// schema allows. Wrapping (rather than adding "null" to `type`) keeps null
// valid when the schema also has an allOf of a non-nullable $ref, the form
// OpenAPI 3.0.3 needs for a nullable reference (`type`, `allOf` and
// `nullable` side by side).
void convertNullable(Json& schema) {
  auto it = schema.find("nullable");
  if (it == schema.end()) return;
  const bool nullable = it->is_boolean() && it->get<bool>();
  schema.erase(it);
  if (!nullable) return;
  schema = Json{{"anyOf", Json::array({Json{{"type", "null"}}, std::move(schema)})}};
}

// valijson checks `format` on any instance type by reading it as a string, so
// null fails "date-time" and an object throws. Formats only constrain
// strings (JSON Schema draft-07, 7.1), so apply them only to strings.
void guardFormat(Json& schema) {
  auto it = schema.find("format");
  if (it == schema.end() || !it->is_string()) return;
  Json guarded = {{"if", {{"type", "string"}}}, {"then", {{"format", *it}}}};
  schema.erase(it);
  auto all = schema.find("allOf");
  if (all != schema.end() && all->is_array()) {
    all->push_back(std::move(guarded));
  } else {
    schema["allOf"] = Json::array({std::move(guarded)});
  }
}

// Turns a schema with $refs (local, or relative to its file) into one
// self-contained JSON Schema valijson can take.
class Inliner {
 public:
  explicit Inliner(Dialect dialect) : dialect_(dialect) {}

  Result<Json> schema(const Json& node, const Doc& doc) {
    if (!node.is_object()) return node;  // `true`/`false` schemas (draft-07)
    if (auto ref = node.find("$ref"); ref != node.end()) return inlineRef(*ref, doc);
    Json out = Json::object();
    for (const auto& [key, value] : node.items()) {
      // Definitions are only reached through $ref, which is inlined; a nested
      // $id would change the base URI valijson resolves against.
      if (key == "definitions" || key == "$defs" || key == "$id") continue;
      PLFM_ASSIGN_OR_RETURN(out[key], keyword(key, value, doc));
    }
    if (dialect_ == Dialect::kOpenApi30) convertNullable(out);
    guardFormat(out);
    return out;
  }

  // Loads a JSON file (once) and returns its root.
  Result<Doc> load(const fs::path& path) {
    const fs::path canonical = path.lexically_normal();
    auto it = files_.find(canonical);
    if (it == files_.end()) {
      std::ifstream in(canonical, std::ios::binary);
      if (!in) return contractError("cannot open " + canonical.string());
      std::ostringstream text;
      text << in.rdbuf();
      auto parsed = json::parse(text.str());
      if (!parsed) return contractError(canonical.string() + ": " + parsed.error().message());
      it = files_.emplace(canonical, std::move(*parsed)).first;
    }
    return Doc{&it->second, canonical};
  }

 private:
  Result<Json> keyword(const std::string& key, const Json& value, const Doc& doc) {
    if ((isSchemaKeyword(key) || key == "items") && value.is_object()) return schema(value, doc);
    if ((isSchemaArrayKeyword(key) || key == "items") && value.is_array()) {
      Json out = Json::array();
      for (const auto& sub : value) {
        PLFM_ASSIGN_OR_RETURN(Json s, schema(sub, doc));
        out.push_back(std::move(s));
      }
      return out;
    }
    if ((isSchemaMapKeyword(key) || key == "dependencies") && value.is_object()) {
      Json out = Json::object();
      for (const auto& [name, sub] : value.items()) {
        // `dependencies` values may also be arrays of property names.
        PLFM_ASSIGN_OR_RETURN(out[name], sub.is_object() ? schema(sub, doc) : Result<Json>(sub));
      }
      return out;
    }
    return value;
  }

  // OpenAPI 3.0 and draft-07 both ignore the siblings of $ref.
  Result<Json> inlineRef(const Json& ref, const Doc& doc) {
    if (!ref.is_string()) return contractError("$ref must be a string, got " + ref.dump());
    const std::string text = ref.get<std::string>();
    const size_t hash = text.find('#');
    const std::string file = text.substr(0, hash);
    Doc target = doc;
    if (!file.empty()) {
      if (doc.file.empty()) {
        return contractError("$ref '" + text + "': only local references (#/...) are allowed");
      }
      PLFM_ASSIGN_OR_RETURN(target, load(doc.file.parent_path() / file));
    }
    PLFM_ASSIGN_OR_RETURN(
        std::string pointer,
        percentDecode(hash == std::string::npos ? "" : std::string_view(text).substr(hash + 1)));
    auto node = atPointer(*target.root, pointer);
    if (!node) return contractError("$ref '" + text + "': " + node.error().message());
    if (std::find(expanding_.begin(), expanding_.end(), *node) != expanding_.end()) {
      return contractError("$ref '" + text + "' is recursive and cannot be inlined");
    }
    expanding_.push_back(*node);
    auto out = schema(**node, target);
    expanding_.pop_back();
    return out;
  }

  Dialect dialect_;
  std::map<fs::path, Json> files_;      // node addresses stay stable
  std::vector<const Json*> expanding_;  // the $ref targets being inlined
};

// ---- Validation ----

// valijson's context ["<root>", "[items]", "[0]"] as a JSON pointer "/items/0".
std::string pointerOf(const std::vector<std::string>& context) {
  std::string out;
  for (const auto& part : context) {
    if (part == "<root>") continue;
    std::string_view token = part;
    if (token.size() >= 2 && token.front() == '[' && token.back() == ']') {
      token = token.substr(1, token.size() - 2);
    }
    out += "/" + escapePointerToken(token);
  }
  return out;
}

// Errors that only say "a child failed"; the child's own error is reported.
bool isWrapperError(std::string_view description) {
  static constexpr std::array<std::string_view, 6> kPrefixes = {
      "Failed to validate against schema associated with property name",
      "Failed to validate against schema associated with pattern",
      "Failed to validate item #",
      "Failed to validate against child schema #",
      "Failed to validate against a conditional schema",
      "Failed to validate against additional properties schema",
  };
  return std::any_of(kPrefixes.begin(), kPrefixes.end(),
                     [&](std::string_view p) { return description.substr(0, p.size()) == p; });
}

std::string describeAt(const std::string& pointer, const std::string& description,
                       const Json& instance) {
  std::string line =
      "at " + (pointer.empty() ? std::string("(root)") : pointer) + ": " + description;
  auto value = atPointer(instance, pointer);
  if (value && !(*value)->is_structured()) {
    std::string shown = (*value)->dump();
    if (shown.size() > kMaxValueShown) shown = shown.substr(0, kMaxValueShown) + "...";
    line += " (value " + shown + ")";
  }
  return line;
}

// Some rules (propertyNames, not) fail without a message of their own, which
// leaves only the "a child failed" errors of their ancestors. Point at the
// deepest value those name.
std::vector<std::string> describeWrappers(
    const std::vector<std::pair<std::string, std::string>>& wrappers, const Json& instance) {
  constexpr std::string_view kProperty =
      "Failed to validate against schema associated with property name '";
  std::vector<std::string> targets;
  for (const auto& [pointer, description] : wrappers) {
    std::string target = pointer;
    if (description.starts_with(kProperty) && description.ends_with("'.")) {
      target += "/" + escapePointerToken(std::string_view(description)
                                             .substr(kProperty.size())
                                             .substr(0, description.size() - kProperty.size() - 2));
    }
    targets.push_back(std::move(target));
  }
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& target : targets) {
    const bool hasDeeper = std::any_of(targets.begin(), targets.end(), [&](const std::string& t) {
      return t.size() > target.size() && t.starts_with(target + "/");
    });
    if (hasDeeper || !seen.insert(target).second) continue;
    out.push_back(describeAt(target,
                             "does not match its schema (the failing rule gives no message; "
                             "e.g. propertyNames or not)",
                             instance));
  }
  return out;
}

std::string describeErrors(const valijson::ValidationResults& results, const Json& instance) {
  std::vector<std::string> lines;
  std::vector<std::pair<std::string, std::string>> wrappers;
  std::set<std::string> seen;
  for (const auto& error : results) {
    const std::string pointer = pointerOf(error.context);
    if (isWrapperError(error.description)) {
      wrappers.emplace_back(pointer, error.description);
      continue;
    }
    std::string line = describeAt(pointer, error.description, instance);
    if (seen.insert(line).second) lines.push_back(std::move(line));
  }
  if (lines.empty()) lines = describeWrappers(wrappers, instance);
  std::string out;
  for (size_t i = 0; i < lines.size() && i < kMaxErrorsShown; ++i) {
    out += (i == 0 ? "" : "; ") + lines[i];
  }
  if (lines.size() > kMaxErrorsShown) {
    out += "; and " + std::to_string(lines.size() - kMaxErrorsShown) + " more";
  }
  return out;
}

// `what` names the schema in messages: "GET /v1/orgs 200", "schema Org".
std::optional<std::string> validateWith(const Json& schema, const Json& instance,
                                        const std::string& what) {
  try {
    valijson::Schema compiled;
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    const valijson::adapters::NlohmannJsonAdapter schema_adapter(schema);
    parser.populateSchema(schema_adapter, compiled);
    valijson::Validator validator;  // strong types: "1" is not an integer
    valijson::ValidationResults results;
    const valijson::adapters::NlohmannJsonAdapter target(instance);
    if (validator.validate(compiled, target, &results)) return std::nullopt;
    return what + ": " + describeErrors(results, instance);
  } catch (const std::exception& e) {
    return what + ": validator failed: " + e.what();
  }
}

std::string toUpper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

constexpr std::array<std::string_view, 8> kMethods = {"get",     "put",  "post",  "delete",
                                                      "options", "head", "patch", "trace"};

// Follows `$ref`s of non-schema objects (responses, parameters) in `doc`.
Result<const Json*> followRefs(const Json& doc, const Json& node) {
  const Json* current = &node;
  for (int hops = 0; hops < 16; ++hops) {
    auto ref = current->find("$ref");
    if (!current->is_object() || ref == current->end()) return current;
    if (!ref->is_string() || ref->get<std::string>().rfind('#', 0) != 0) {
      return contractError("$ref " + ref->dump() + " is not a local reference");
    }
    PLFM_ASSIGN_OR_RETURN(
        std::string pointer,
        percentDecode(std::string_view(ref->get_ref<const std::string&>()).substr(1)));
    PLFM_ASSIGN_OR_RETURN(current, atPointer(doc, pointer));
  }
  return contractError("$ref chain longer than 16 hops");
}

Result<const Json*> findResponse(const Json& doc, const std::string& method,
                                 const std::string& path, int status) {
  const std::string op_name = toUpper(method) + " " + path;
  auto paths = atPointer(doc, "/paths/" + escapePointerToken(path));
  if (!paths) return contractError("path " + path + " is not documented");
  auto op = (*paths)->find(asciiLower(method));
  if (op == (*paths)->end()) return contractError(op_name + " is not documented");
  auto responses = op->find("responses");
  if (responses == op->end() || !responses->is_object()) {
    return contractError(op_name + " has no responses");
  }
  const std::string exact = std::to_string(status);
  for (const std::string& key : {exact, exact.substr(0, 1) + "XX", std::string("default")}) {
    auto it = responses->find(key);
    if (it != responses->end()) return followRefs(doc, *it);
  }
  return contractError("status " + exact + " not documented for " + op_name);
}

// The media type to validate a body against: JSON if documented, else the first.
std::pair<std::string, const Json*> pickContent(const Json& content) {
  if (auto it = content.find("application/json"); it != content.end()) return {it.key(), &*it};
  for (auto it = content.begin(); it != content.end(); ++it) {
    if (it.key().find("json") != std::string::npos) return {it.key(), &*it};
  }
  return {content.begin().key(), &*content.begin()};
}

void collectUnresolvedRefs(const Json& doc, const Json& node, const std::string& at,
                           std::vector<std::string>& out) {
  if (node.is_object()) {
    if (auto ref = node.find("$ref"); ref != node.end()) {
      const bool local = ref->is_string() && ref->get_ref<const std::string&>().rfind('#', 0) == 0;
      bool resolves = false;
      if (local) {
        auto pointer =
            percentDecode(std::string_view(ref->get_ref<const std::string&>()).substr(1));
        resolves = pointer && atPointer(doc, *pointer).has_value();
      }
      if (!resolves) out.push_back(at + "/$ref: " + ref->dump());
    }
    for (const auto& [key, value] : node.items()) {
      collectUnresolvedRefs(doc, value, at + "/" + escapePointerToken(key), out);
    }
  } else if (node.is_array()) {
    for (size_t i = 0; i < node.size(); ++i) {
      collectUnresolvedRefs(doc, node[i], at + "/" + std::to_string(i), out);
    }
  }
}

// Closes every object schema that lists properties (additionalProperties:
// false unless it says otherwise), recursively through the schema keywords.
void closeObjects(Json& schema) {
  if (schema.is_array()) {
    for (auto& s : schema) closeObjects(s);
    return;
  }
  if (!schema.is_object()) return;
  if (schema.contains("properties") && !schema.contains("additionalProperties")) {
    schema["additionalProperties"] = false;
  }
  for (auto& [key, value] : schema.items()) {
    if (isSchemaKeyword(key) || isSchemaArrayKeyword(key) || key == "items") closeObjects(value);
    if (isSchemaMapKeyword(key) && value.is_object()) {
      for (auto& [name, sub] : value.items()) closeObjects(sub);
    }
  }
}

// The documented path template that `path` matches ("/drives/{drive_id}"
// for "/drives/rootfs"); an exact match wins over a template.
std::optional<std::string> matchPathTemplate(const Json& paths, const std::string& path) {
  if (paths.contains(path)) return path;
  auto split = [](std::string_view s) {
    std::vector<std::string_view> out;
    size_t start = 0;
    while (start <= s.size()) {
      const size_t slash = s.find('/', start);
      const size_t end = slash == std::string_view::npos ? s.size() : slash;
      out.push_back(s.substr(start, end - start));
      start = end + 1;
    }
    return out;
  };
  const auto want = split(path);
  for (const auto& [tmpl, item] : paths.items()) {
    const auto parts = split(tmpl);
    if (parts.size() != want.size()) continue;
    bool match = true;
    for (size_t i = 0; i < parts.size() && match; ++i) {
      const bool param = parts[i].size() > 2 && parts[i].front() == '{' && parts[i].back() == '}';
      match = param ? !want[i].empty() : parts[i] == want[i];
    }
    if (match) return tmpl;
  }
  return std::nullopt;
}

}  // namespace

Json loadOpenApi() {
  return loadYamlFile(std::string(PLFM_SOURCE_DIR) + std::string(kOpenApiPath));
}

Json loadYamlFile(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  auto doc = yamlToJson(root, "");
  if (!doc) throw std::runtime_error(path + ": " + doc.error().message());
  return std::move(*doc);
}

std::vector<std::pair<std::string, std::string>> openApiRoutes(const Json& doc) {
  std::vector<std::pair<std::string, std::string>> out;
  auto paths = doc.find("paths");
  if (paths == doc.end() || !paths->is_object()) return out;
  for (const auto& [path, item] : paths->items()) {
    for (std::string_view method : kMethods) {
      if (item.is_object() && item.contains(method)) {
        out.emplace_back(toUpper(std::string(method)), path);
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<std::string> validateResponse(const Json& doc, const std::string& method,
                                            const std::string& pathTemplate, int status,
                                            const std::string& body) {
  const std::string what = toUpper(method) + " " + pathTemplate + " " + std::to_string(status);
  auto response = findResponse(doc, method, pathTemplate, status);
  if (!response) return response.error().message();
  auto content = (*response)->find("content");
  if (content == (*response)->end() || !content->is_object() || content->empty()) {
    if (body.empty()) return std::nullopt;
    return what + ": documents no body, got " + std::to_string(body.size()) + " bytes";
  }
  const auto [media_type, media] = pickContent(*content);
  auto schema = media->find("schema");
  if (schema == media->end()) return std::nullopt;
  Json instance;
  if (media_type.find("json") != std::string::npos) {
    auto parsed = json::parse(body);
    if (!parsed) return what + ": body is not JSON: " + parsed.error().message();
    instance = std::move(*parsed);
  } else {
    instance = body;
  }
  Inliner inliner(Dialect::kOpenApi30);
  auto resolved = inliner.schema(*schema, Doc{&doc, {}});
  if (!resolved) return what + ": " + resolved.error().message();
  return validateWith(*resolved, instance, what);
}

std::optional<std::string> validateAgainstComponent(const Json& doc, const std::string& name,
                                                    const Json& instance) {
  const std::string what = "schema " + name;
  auto schema = atPointer(doc, "/components/schemas/" + escapePointerToken(name));
  if (!schema) return what + " is not in components/schemas";
  Inliner inliner(Dialect::kOpenApi30);
  auto resolved = inliner.schema(**schema, Doc{&doc, {}});
  if (!resolved) return what + ": " + resolved.error().message();
  return validateWith(*resolved, instance, what);
}

std::optional<std::string> validateAgainstSchemaFile(const std::string& relPath,
                                                     const Json& instance) {
  Inliner inliner(Dialect::kJsonSchema);
  auto doc =
      inliner.load(fs::path(std::string(PLFM_SOURCE_DIR) + std::string(kSchemaDir)) / relPath);
  if (!doc) return doc.error().message();
  auto resolved = inliner.schema(*doc->root, *doc);
  if (!resolved) return relPath + ": " + resolved.error().message();
  return validateWith(*resolved, instance, relPath);
}

std::optional<std::string> validateSwaggerRequest(const Json& doc, const std::string& method,
                                                  const std::string& path, const std::string& body,
                                                  bool closed_objects) {
  const std::string what = toUpper(method) + " " + path;
  auto paths = doc.find("paths");
  if (paths == doc.end() || !paths->is_object()) return "the document has no paths";
  const auto tmpl = matchPathTemplate(*paths, path);
  if (!tmpl) return what + ": no documented path matches";
  const Json& item = paths->at(*tmpl);
  auto op = item.find(asciiLower(method));
  if (op == item.end()) return what + ": " + toUpper(method) + " is not documented for " + *tmpl;
  const Json* body_param = nullptr;
  if (auto params = op->find("parameters"); params != op->end() && params->is_array()) {
    for (const auto& p : *params) {
      auto resolved = followRefs(doc, p);
      if (resolved && (*resolved)->value("in", "") == "body") body_param = *resolved;
    }
  }
  if (body_param == nullptr) {
    if (body.empty()) return std::nullopt;
    return what + ": " + *tmpl + " takes no body, got " + std::to_string(body.size()) + " bytes";
  }
  if (body.empty()) {
    if (!body_param->value("required", false)) return std::nullopt;
    return what + ": the body is required";
  }
  auto instance = json::parse(body);
  if (!instance) return what + ": body is not JSON: " + instance.error().message();
  auto schema = body_param->find("schema");
  if (schema == body_param->end()) return std::nullopt;
  Inliner inliner(Dialect::kSwagger20);
  auto resolved = inliner.schema(*schema, Doc{&doc, {}});
  if (!resolved) return what + ": " + resolved.error().message();
  if (closed_objects) closeObjects(*resolved);
  return validateWith(*resolved, *instance, what + " (" + *tmpl + ")");
}

std::vector<std::string> unresolvedRefs(const Json& doc) {
  std::vector<std::string> out;
  collectUnresolvedRefs(doc, doc, "", out);
  return out;
}

}  // namespace plfm::cp::testsupport
