#include "vt_harness.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <thread>

#include "plfm/core/strings.h"
#include "plfm/http/http.h"
#include "plfm/testing/pg_cluster.h"

namespace plfm::vt::testing {

ControlPlaneProcess startControlPlane(const std::string& conninfo,
                                      const plfm::testing::TempDir& dir,
                                      const std::vector<std::string>& env) {
  SpawnOptions o;
  o.stdout_path = dir.file("cp.out");
  o.stderr_path = dir.file("cp.log");
  o.env = {"PLFM_CP_LOG_LEVEL=info"};
  o.env.insert(o.env.end(), env.begin(), env.end());
  auto p = spawn({PLFM_CONTROL_PLANE_BIN, "serve", "--listen", "[::1]:0", "--database", conninfo,
                  "--state-dir", dir.path()},
                 o);
  if (!p) {
    std::fprintf(stderr, "cannot start the control plane: %s\n", p.error().toString().c_str());
    std::abort();
  }
  ControlPlaneProcess cp{std::move(*p), "", "", dir.file("cp.log")};
  for (int i = 0; i < 500 && cp.url.empty(); ++i) {
    auto out = readFile(dir.file("cp.out"));
    if (out && out->find("listening ") != std::string::npos) {
      std::string line = std::string(trim(out->substr(out->find("listening ") + 10)));
      cp.url = "http://" + line.substr(0, line.find(','));
    }
    if (cp.proc.poll()) {
      std::fprintf(stderr, "control plane exited:\n%s\n", tailFile(cp.log_path, 20).c_str());
      std::abort();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (cp.url.empty()) {
    std::fprintf(stderr, "control plane did not start\n");
    std::abort();
  }
  cp.admin_token = std::string(trim(readFile(dir.file("admin-token")).value_or("")));
  return cp;
}

SuiteControlPlane startSuiteControlPlane(const std::vector<std::string>& env) {
  auto cluster = plfm::testing::PgCluster::shared();
  if (!cluster) {
    std::fprintf(stderr, "no test cluster: %s\n", cluster.error().toString().c_str());
    std::abort();
  }
  auto db = (*cluster)->createDatabase();
  if (!db) {
    std::fprintf(stderr, "no test database: %s\n", db.error().toString().c_str());
    std::abort();
  }
  SuiteControlPlane s;
  s.state = std::make_unique<plfm::testing::TempDir>("vt-cp");
  s.cp = std::make_unique<ControlPlaneProcess>(
      startControlPlane((*cluster)->conninfo(*db), *s.state, env));
  return s;
}

void SecretsSuiteTest::SetUpTestSuite() {
  keys_ = new plfm::testing::TempDir("vt-keys");
  const std::string key = keys_->file("master.key");
  auto gen = spawn({PLFM_CONTROL_PLANE_BIN, "secrets", "generate-key", key});
  ASSERT_TRUE(gen.has_value());
  ASSERT_EQ(exitCodeOf(gen->wait()), 0);
  suite_ =
      new SuiteControlPlane(startSuiteControlPlane({"PLFM_CP_SECRETS_MASTER_KEY_FILE=" + key}));
  cp_ = suite_->cp.get();
  state_ = suite_->state.get();
}

void SecretsSuiteTest::TearDownTestSuite() {
  delete suite_;
  delete keys_;
}

namespace {

// The environment vt runs with: config in `config_dir`, NO_COLOR=1, no
// inherited VT_* settings, then the test's own entries (which win).
std::vector<std::string> vtEnv(const std::string& config_dir, const std::vector<std::string>& env) {
  std::map<std::string, std::string> vars = {{"VT_CONFIG_DIR", config_dir},
                                             {"NO_COLOR", "1"},
                                             {"VT_URL", ""},
                                             {"VT_TOKEN", ""},
                                             {"VT_ORG", ""},
                                             {"VT_APP", ""},
                                             {"VT_ENV", ""},
                                             {"VT_CONTEXT", ""}};
  for (const auto& e : env) {
    auto eq = e.find('=');
    vars[e.substr(0, eq)] = eq == std::string::npos ? "" : e.substr(eq + 1);
  }
  std::vector<std::string> out;
  for (const auto& [k, v] : vars) {
    std::string entry = k;
    entry += '=';
    entry += v;
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace

Result<Process> startVt(const std::vector<std::string>& args, const std::string& config_dir,
                        const std::string& out_path, const std::string& err_path,
                        const std::vector<std::string>& env) {
  std::vector<std::string> argv = {PLFM_VT_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions o;
  o.stdout_path = out_path;
  o.stderr_path = err_path;
  o.env = vtEnv(config_dir, env);
  return spawn(argv, o);
}

VtResult runVt(const std::vector<std::string>& args, const std::string& config_dir,
               const std::vector<std::string>& env, const std::string& stdin_text) {
  plfm::testing::TempDir io("vt-run");
  std::vector<std::string> argv = {PLFM_VT_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions o;
  o.stdout_path = io.file("out");
  o.stderr_path = io.file("err");
  o.env = vtEnv(config_dir, env);
  (void)writeFileAtomic(io.file("in"), stdin_text);
  int in_fd = ::open(io.file("in").c_str(), O_RDONLY | O_CLOEXEC);
  o.stdin_fd = in_fd;
  VtResult r;
  auto p = spawn(argv, o);
  ::close(in_fd);
  if (!p) {
    r.err = p.error().toString();
    return r;
  }
  auto status = p->waitFor(std::chrono::seconds(60));
  if (!status) {
    p->signal(9);
    r.err = "vt timed out";
    return r;
  }
  r.code = exitCodeOf(*status);
  r.out = readFile(io.file("out")).value_or("");
  r.err = readFile(io.file("err")).value_or("");
  return r;
}

namespace {

// A request with a node agent's (or an enrollment) bearer token.
auto agentRequest(const std::string& method, const std::string& url, const std::string& token,
                  const std::string& body) {
  http::ClientRequest req;
  req.method = method;
  req.url = url;
  req.headers.set("Authorization", "Bearer " + token);
  if (!body.empty()) req.headers.set("Content-Type", "application/json");
  req.body = body;
  return http::request(req);
}

}  // namespace

nlohmann::json enrollAgent(const std::string& url, const std::string& enrollment_token,
                           const std::string& hostname) {
  const nlohmann::json facts = {{"hostname", hostname},
                                {"cores", 8},
                                {"memory_mb", 16384},
                                {"disk_mb", 200000},
                                {"labels", {{"zone", "a"}}},
                                {"wireguard_public_key", std::string(43, 'k') + "="},
                                {"underlay_address", "2001:db8::10"},
                                {"runtimes", {"qemu"}}};
  auto resp = agentRequest("POST", url + "/v1/nodes/enroll", enrollment_token, facts.dump());
  EXPECT_TRUE(resp.has_value());
  if (!resp) return {};
  EXPECT_EQ(resp->status, 201) << resp->body;
  return nlohmann::json::parse(resp->body, nullptr, false);
}

nlohmann::json enrollAgentWithVt(const std::string& url, const std::string& config_dir,
                                 const std::string& hostname) {
  VtResult enroll = runVt({"nodes", "enroll", "-q"}, config_dir);
  EXPECT_EQ(enroll.code, 0) << enroll.err;
  if (enroll.code != 0) return nlohmann::json::object();
  std::string token = enroll.out;
  while (!token.empty() && (token.back() == '\n' || token.back() == ' ')) token.pop_back();
  auto node = enrollAgent(url, token, hostname);
  EXPECT_TRUE(node.is_object() && node.contains("node_id")) << node.dump();
  return node.is_object() ? node : nlohmann::json::object();
}

nlohmann::json nodePlan(const std::string& url, const std::string& node_id,
                        const std::string& node_token) {
  auto resp = agentRequest("GET", url + "/v1/nodes/" + node_id + "/plan?wait=0", node_token, "");
  if (!resp || resp->status != 200) return nlohmann::json::object();
  auto j = nlohmann::json::parse(resp->body, nullptr, false);
  return j.is_discarded() ? nlohmann::json::object() : j;
}

int nodeHeartbeat(const std::string& url, const std::string& node_id,
                  const std::string& node_token) {
  auto resp = agentRequest("POST", url + "/v1/nodes/" + node_id + "/heartbeat", node_token, "{}");
  return resp ? resp->status : 0;
}

int agentPost(const std::string& url, const std::string& node_id, const std::string& node_token,
              const std::string& path, const nlohmann::json& body) {
  auto resp =
      agentRequest("POST", url + "/v1/nodes/" + node_id + "/" + path, node_token, body.dump());
  return resp ? resp->status : 0;
}

int reportInstance(const std::string& url, const std::string& node_id,
                   const std::string& node_token, const std::string& instance_id,
                   const nlohmann::json& report) {
  auto resp =
      agentRequest("POST", url + "/v1/nodes/" + node_id + "/instances/" + instance_id + "/status",
                   node_token, report.dump());
  return resp ? resp->status : 0;
}

std::string transcriptEntry(const std::string& cmd, const std::string& out, const std::string& err,
                            int code) {
  std::string text = "$ " + cmd + "\n" + out;
  for (size_t start = 0; start < err.size();) {
    size_t end = err.find('\n', start);
    if (end == std::string::npos) end = err.size();
    text += "stderr| " + err.substr(start, end - start) + "\n";
    start = end + 1;
  }
  return text + "[exit " + std::to_string(code) + "]\n\n";
}

void Normalizer::literal(std::string text, std::string placeholder) {
  literals_.emplace_back(std::move(text), std::move(placeholder));
}

std::string Normalizer::apply(const std::string& text) {
  std::string s = text;
  for (const auto& [lit, ph] : literals_) {
    for (size_t pos = s.find(lit); pos != std::string::npos; pos = s.find(lit, pos + ph.size())) {
      s.replace(pos, lit.size(), ph);
    }
  }
  static const std::regex kId(
      R"(\b(org|usr|tok|app|env|rel|dep|inst|node|evt|req|route|sv|vol|snap|vop|exec|enr|dom|rcred)_[0-9a-hjkmnp-tv-z]{26}\b)");
  std::string out;
  auto begin = std::sregex_iterator(s.begin(), s.end(), kId);
  size_t last = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    const std::smatch& m = *it;
    out += s.substr(last, static_cast<size_t>(m.position()) - last);
    std::string id = m.str();
    auto found = ids_.find(id);
    if (found == ids_.end()) {
      std::string prefix = m.str(1);
      found =
          ids_.emplace(id, "<" + prefix + "_" + std::to_string(++counters_[prefix]) + ">").first;
    }
    out += found->second;
    last = static_cast<size_t>(m.position() + m.length());
  }
  out += s.substr(last);
  static const std::regex kRfc3339(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)");
  static const std::regex kTableTime(R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)");
  static const std::regex kElapsed(R"(\b\d+\.\ds\b)");
  out = std::regex_replace(out, kRfc3339, "<time>");
  out = std::regex_replace(out, kTableTime, "<time>");
  out = std::regex_replace(out, kElapsed, "<elapsed>");
  return out;
}

std::string maskTokens(const std::string& s) {
  static const std::regex kToken(R"(\bvt_[a-z2-7]{52}\b)");
  // Domain challenges (vt domains) are random too.
  static const std::regex kChallenge(R"(\bplfm-verify=[a-z2-7]{52}\b)");
  return std::regex_replace(std::regex_replace(s, kToken, "<token>"), kChallenge,
                            "plfm-verify=<challenge>");
}

VtResult Transcript::run(const std::vector<std::string>& args, const std::string& stdin_text) {
  VtResult r = runVt(args, config_dir_, {}, stdin_text);
  std::string cmd = "vt";
  for (const auto& a : args) cmd += " " + a;
  text_ += transcriptEntry(norm_.apply(cmd), norm_.apply(maskTokens(r.out)),
                           norm_.apply(maskTokens(r.err)), r.code);
  return r;
}

void AcmeOrgTest::SetUp() {
  auto cluster = plfm::testing::PgCluster::shared();
  ASSERT_TRUE(cluster) << cluster.error().toString();
  auto db = (*cluster)->createDatabase();
  ASSERT_TRUE(db) << db.error().toString();
  cp_ = std::make_unique<ControlPlaneProcess>(
      startControlPlane((*cluster)->conninfo(*db), state_, controlPlaneEnv()));
  norm_.literal(cp_->url, "<url>");
  norm_.literal(config_.path(), "<config>");
  ASSERT_EQ(t_.run({"login", "--url", cp_->url}, cp_->admin_token + "\n").code, 0);
  ASSERT_EQ(t_.run({"orgs", "create", "acme", "-q"}).code, 0);
  ASSERT_EQ(t_.run({"context", "use", "--org", "acme", "-q"}).code, 0);
}

}  // namespace plfm::vt::testing
