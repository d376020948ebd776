// vt secrets set | unset | import | list | versions (docs/specs/cli/output.md,
// "Secrets"). Values never reach stdout or stderr: receipts, tables and
// errors name keys only, and a key that breaks [A-Z_][A-Z0-9_]* is refused
// before anything is sent, without being echoed (it may be a value typed in
// the wrong place). Values are wiped from memory once sent.
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "invocation.h"
#include "plfm/secrets/dotenv.h"
#include "plfm/secrets/format.h"
#include "secret_input.h"

namespace plfm::vt {
namespace {

using nlohmann::json;
namespace sf = plfm::secrets;

const std::string kKeyRule = "keys match [A-Z_][A-Z0-9_]* (at most 128 bytes), e.g. API_TOKEN";

Error badKey(const std::string& where) {
  return Error("usage", where + " is not a valid secret key; " + kKeyRule)
      .with("hint", "write KEY=VALUE, KEY (to type the value at a prompt) or --from-file KEY=PATH");
}

Error tooBig(const std::string& key, size_t size) {
  return Error(errc::kInvalidArgument, "the value of " + key + " is " + std::to_string(size) +
                                           " bytes; values are limited to " +
                                           std::to_string(sf::kMaxValueBytes) + " bytes");
}

// Owns the values read from the command line and wipes them.
struct Values {
  sf::SecretMap map;
  Values() = default;
  Values(const Values&) = delete;
  Values& operator=(const Values&) = delete;
  ~Values() { sf::wipe(map); }
};

Result<std::string> readWhole(std::istream& in, const std::string& what) {
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error(errc::kIo, "cannot read " + what);
  return ss.str();
}

Result<std::string> readPath(const std::string& path) {
  if (path == "-") return readWhole(std::cin, "stdin");
  std::ifstream f(path, std::ios::binary);
  if (!f) return Error(errc::kNotFound, "cannot open " + path);
  return readWhole(f, path);
}

// KEY=VALUE, KEY (value from a hidden prompt, or stdin when it is not a
// terminal) and --from-file KEY=PATH.
Result<void> collect(Invocation& inv, Values& v) {
  int bare = 0;
  for (size_t i = 0; i < inv.args.positionals.size(); ++i) {
    const std::string& arg = inv.args.positionals[i];
    const size_t eq = arg.find('=');
    const std::string key = arg.substr(0, eq);
    if (!sf::validKey(key)) return badKey("argument " + std::to_string(i + 1));
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else {
      ++bare;
      if (stdinIsTerminal()) {
        value = readHiddenLine("Value for " + key + " (not shown): ");
      } else {
        if (bare > 1) {
          return Error("usage", "only one KEY without a value can read it from stdin")
              .with("hint", "use KEY=VALUE or --from-file KEY=PATH for the others");
        }
        PLFM_ASSIGN_OR_RETURN(value, readWhole(std::cin, "stdin"));
        if (!value.empty() && value.back() == '\n') value.pop_back();
      }
    }
    v.map.insert_or_assign(key, std::move(value));
  }
  if (auto it = inv.args.flags.find("from-file"); it != inv.args.flags.end()) {
    for (size_t i = 0; i < it->second.size(); ++i) {
      const std::string& spec = it->second[i];
      const size_t eq = spec.find('=');
      const std::string key = spec.substr(0, eq);
      if (eq == std::string::npos || eq + 1 == spec.size()) {
        return Error("usage", "--from-file takes KEY=PATH")
            .with("hint", "e.g. --from-file TLS_KEY=key.pem");
      }
      if (!sf::validKey(key)) return badKey("--from-file " + std::to_string(i + 1));
      PLFM_ASSIGN_OR_RETURN(auto value, readPath(spec.substr(eq + 1)));
      v.map.insert_or_assign(key, std::move(value));
    }
  }
  if (v.map.empty()) {
    return Error("usage", "nothing to set").with("hint", "vt secrets set KEY=VALUE [KEY=VALUE...]");
  }
  if (v.map.size() > sf::kMaxKeys) {
    return Error(errc::kInvalidArgument, std::to_string(v.map.size()) +
                                             " secrets at once; an env holds at most " +
                                             std::to_string(sf::kMaxKeys));
  }
  for (const auto& [key, value] : v.map) {
    if (value.size() > sf::kMaxValueBytes) return tooBig(key, value.size());
  }
  return ok();
}

std::string joined(const json& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n.get<std::string>();
  return out.empty() ? "-" : out;
}

// Sends a change and prints its receipt.
int change(Invocation& inv, const std::string& op, json body) {
  auto env = inv.env();
  if (!env) return fail(inv, env.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  body["stage"] = inv.args.has("stage");
  const std::string env_id = (*env)["id"];
  auto res = (*client)->mutate("POST", "/v1/envs/" + env_id + "/secrets/" + op, body);
  // The body holds values: wipe what we can reach.
  for (auto& [k, v] : body.items()) {
    if (v.is_string()) sf::wipe(v.get_ref<std::string&>());
    if (v.is_object()) {
      for (auto& [vk, vv] : v.items()) {
        if (vv.is_string()) sf::wipe(vv.get_ref<std::string&>());
      }
    }
  }
  if (!res) return fail(inv, res.error());
  const json& version = (*res)["version"];
  const std::string env_name = (*env)["name"];
  const std::string vid = version["id"];
  const json changed = op == "unset" ? version["unset_keys"] : version["set_keys"];
  const std::string verb = op == "unset" ? "Unset " : op == "import" ? "Imported " : "Set ";
  Receipt r{.action = "secrets." + op,
            .message = verb + joined(changed) + " in env " + env_name + ": secrets version " +
                       std::to_string(version["number"].get<int>()) + " (" + vid + ")",
            .ids = {vid}};
  if ((*res)["deploy"].is_object()) {
    const std::string dep = (*res)["deploy"]["id"];
    r.ids.push_back(dep);
    r.notes.push_back("deploy " + dep + " of release " +
                      (*res)["deploy"]["release_id"].get<std::string>() + " rolls the env onto it");
    r.next.push_back("vt deploys get " + dep);
  } else if (inv.args.has("stage")) {
    r.notes.emplace_back("staged: the next deploy of the env pins it");
    r.next.push_back("vt deploy" + inv.scopeFlags());
  } else {
    r.notes.emplace_back("the env has no release yet: its first deploy pins it");
    r.next.push_back("vt deploy" + inv.scopeFlags());
  }
  r.next.push_back("vt secrets list" + inv.scopeFlags());
  inv.out.receipt(r, *res);
  return 0;
}

int secretsSet(Invocation& inv) {
  Values v;
  if (auto r = collect(inv, v); !r) return fail(inv, r.error());
  json values = json::object();
  for (auto& [key, value] : v.map) values[key] = value;
  return change(inv, "set", {{"values", std::move(values)}});
}

int secretsUnset(Invocation& inv) {
  json keys = json::array();
  for (size_t i = 0; i < inv.args.positionals.size(); ++i) {
    const std::string& key = inv.args.positionals[i];
    if (!sf::validKey(key)) return fail(inv, badKey("argument " + std::to_string(i + 1)));
    keys.push_back(key);
  }
  return change(inv, "unset", {{"keys", keys}});
}

int secretsImport(Invocation& inv) {
  const std::string path = inv.args.positionals.empty() ? "-" : inv.args.positionals[0];
  auto text = readPath(path);
  if (!text) return fail(inv, text.error());
  // Checked here first, so a bad file is refused before anything is sent.
  auto parsed = sf::parseDotenv(*text);
  if (!parsed) {
    sf::wipe(*text);
    return fail(inv, Error(errc::kInvalidArgument, (path == "-" ? std::string("stdin") : path) +
                                                       ": " + parsed.error().toString())
                         .with("hint", "values with spaces, '#' or newlines need quotes"));
  }
  const bool empty = parsed->empty();
  sf::wipe(*parsed);
  if (empty) {
    sf::wipe(*text);
    return fail(inv, Error(errc::kInvalidArgument, path + " defines no secrets"));
  }
  json body = {{"dotenv", std::move(*text)}};
  return change(inv, "import", std::move(body));
}

int secretsList(Invocation& inv) {
  auto env = inv.env();
  if (!env) return fail(inv, env.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto res = (*client)->get("/v1/envs/" + (*env)["id"].get<std::string>() + "/secrets");
  if (!res) return fail(inv, res.error());
  if (inv.out.format() == Format::kJson) {
    inv.out.json(*res);
    return 0;
  }
  if (inv.out.quiet()) {
    for (const auto& it : (*res)["items"]) inv.out.out() << it["key"].get<std::string>() << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& it : (*res)["items"]) {  // by key, from the server
    rows.push_back({it["key"], std::to_string(it["version"].get<int>()),
                    shortTime(it["updated_at"]), it["updated_by"]});
  }
  inv.out.table({"KEY", "VERSION", "UPDATED", "BY"}, rows);
  return 0;
}

int secretsVersions(Invocation& inv) {
  auto env = inv.env();
  if (!env) return fail(inv, env.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto items =
      (*client)->listAll("/v1/envs/" + (*env)["id"].get<std::string>() + "/secrets/versions");
  if (!items) return fail(inv, items.error());
  printList(inv, *items,
            {"VERSION", "ID", "OPERATION", "CHANGED", "KEYS", "DEPLOY", "CREATED", "BY"},
            [](const json& v) {
              const json& changed = v["operation"] == "unset" ? v["unset_keys"] : v["set_keys"];
              return std::vector<std::string>{std::to_string(v["number"].get<int>()),
                                              v["id"],
                                              v["operation"],
                                              joined(changed),
                                              std::to_string(v["keys"].size()),
                                              cell(v["deploy_id"]),
                                              shortTime(v["created_at"]),
                                              v["created_by"]};
            });
  return 0;
}

const Flag kStage{.name = "stage",
                  .help =
                      "only create the new version; the next deploy pins it (default: "
                      "deploy the current release with it now)"};

}  // namespace

Command secretsCommand() {
  Command c{.name = "secrets",
            .summary = "Set, unset, import and list an env's secrets (values are never shown)",
            .help =
                "Every change makes a new immutable secrets version and, unless --stage,\n"
                "deploys the env's current release with it. Workloads read them from\n"
                "/run/secrets/platform.env. Keys match [A-Z_][A-Z0-9_]*.\n\n"
                "Examples:\n"
                "  vt secrets set DATABASE_URL=postgres://... API_TOKEN\n"
                "  vt secrets set --from-file TLS_KEY=key.pem --stage\n"
                "  vt secrets import .env\n"
                "  vt secrets list --env staging"};
  c.children.push_back(
      {.name = "set",
       .summary = "Set secrets: KEY=VALUE, KEY (prompted, not shown) or --from-file KEY=PATH",
       .help = "A KEY without '=' reads its value at a hidden prompt on a terminal, else\n"
               "from stdin (one trailing newline dropped): printf %s \"$T\" | vt secrets set T",
       .flags = {{.name = "from-file",
                  .value_name = "KEY=PATH",
                  .help = "the value is the file's bytes, exactly (PATH - for stdin)",
                  .repeatable = true},
                 kStage},
       .positionals =
           {{.name = "KEY[=VALUE]", .help = "one or more", .required = false, .variadic = true}},
       .mutating = true,
       .run = secretsSet});
  c.children.push_back({.name = "unset",
                        .summary = "Remove secrets",
                        .flags = {kStage},
                        .positionals = {{.name = "KEY", .help = "one or more", .variadic = true}},
                        .mutating = true,
                        .run = secretsUnset});
  c.children.push_back({.name = "import",
                        .summary = "Set the secrets of a dotenv file (FILE, or - for stdin)",
                        .help =
                            "Accepts comments, `export`, quotes and multi-line quoted values; no\n"
                            "interpolation. Other keys of the env stay. Errors name the line.",
                        .flags = {kStage},
                        .positionals = {{.name = "FILE",
                                         .help = "a dotenv file; - or nothing: stdin",
                                         .required = false}},
                        .mutating = true,
                        .run = secretsImport});
  c.children.push_back({.name = "list",
                        .summary = "List the env's secret keys (names only), by key",
                        .run = secretsList});
  c.children.push_back({.name = "versions",
                        .summary = "List the env's secrets versions, oldest first",
                        .run = secretsVersions});
  return c;
}

}  // namespace plfm::vt
