// Unit tests for the vt argument parser, help, completions and output
// ordering (against an in-process HTTP server that answers out of order).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "args.h"
#include "cli.h"
#include "commands.h"
#include "image_resolve.h"
#include "output.h"
#include "plfm/core/process.h"
#include "plfm/http/http.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::vt {
namespace {

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

const Command& root() {
  static const Command r = buildRootCommand();
  return r;
}

TEST(VtArgsTest, ParsesCommandPathFlagsAndPositionals) {
  auto p = parseArgs(root(), words("--format json apps create hello --description=x -q"));
  ASSERT_TRUE(p) << p.error().toString();
  EXPECT_EQ(p->commandLine(), "vt apps create");
  EXPECT_EQ(p->positionals, std::vector<std::string>{"hello"});
  EXPECT_EQ(p->value("format"), "json");
  EXPECT_EQ(p->value("description"), "x");
  EXPECT_TRUE(p->has("quiet"));
}

TEST(VtArgsTest, DoubleDashEndsFlags) {
  auto p = parseArgs(root(), words("scale set -- web=1"));
  ASSERT_TRUE(p) << p.error().toString();
  EXPECT_EQ(p->positionals, std::vector<std::string>{"web=1"});
}

TEST(VtArgsTest, TyposGetSuggestions) {
  auto p = parseArgs(root(), words("aps list"));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message(),
            "unknown command `aps` for `vt` (did you mean `apps`?); see `vt --help`");
  p = parseArgs(root(), words("apps list --fromat json"));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message(),
            "unknown flag `--fromat` for `vt apps list` (did you mean `--format`?); see `vt apps "
            "list --help`");
}

TEST(VtArgsTest, ArgumentCountsAreChecked) {
  auto p = parseArgs(root(), words("apps create"));
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message().find("needs NAME"), std::string::npos);
  p = parseArgs(root(), words("apps list extra"));
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message().find("unexpected argument `extra`"), std::string::npos);
  p = parseArgs(root(), words("deploy --image"));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message(), "flag --image needs a value (REF)");
  p = parseArgs(root(), words("deploy --image a --image b"));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message(), "flag --image given more than once");
}

TEST(VtArgsTest, HelpIsAFlagAnywhere) {
  auto p = parseArgs(root(), words("apps create --help"));
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->help);
}

TEST(VtArgsTest, HelpTextsMatchGolden) {
  std::string all;
  auto p = parseArgs(root(), {"--help"});
  ASSERT_TRUE(p);
  all += renderHelp(p->path) + "\n----\n";
  for (const char* cmd : {"deploy", "scale set", "events tail", "logs", "context use", "dev up",
                          "dev logs", "instances get", "releases get", "exec", "volumes create",
                          "volumes rm", "volumes restore", "nodes rotate-key"}) {
    auto q = parseArgs(root(), words(std::string(cmd) + " --help"));
    ASSERT_TRUE(q);
    all += renderHelp(q->path) + "\n----\n";
  }
  PLFM_EXPECT_GOLDEN("golden/help.txt", all);
}

TEST(VtArgsTest, CompletionScriptsAreValidShell) {
  plfm::testing::TempDir dir("vt-completion");
  std::string bash = bashCompletion(root());
  ASSERT_TRUE(writeFileAtomic(dir.file("vt.bash"), bash));
  EXPECT_TRUE(runChecked({"bash", "-n", dir.file("vt.bash")}, {}));
  // Completing `vt ap` offers apps; `vt apps c` offers create.
  std::string probe = bash +
                      "COMP_WORDS=(vt ap); COMP_CWORD=1; _vt; echo \"${COMPREPLY[*]}\"\n"
                      "COMP_WORDS=(vt apps c); COMP_CWORD=2; _vt; echo \"${COMPREPLY[*]}\"\n";
  ASSERT_TRUE(writeFileAtomic(dir.file("probe.bash"), probe));
  SpawnOptions o;
  o.stdout_path = dir.file("probe.out");
  ASSERT_TRUE(runChecked({"bash", dir.file("probe.bash")}, o));
  EXPECT_EQ(readFile(dir.file("probe.out")).value_or(""), "apps\ncreate\n");
  EXPECT_NE(zshCompletion(root()).find("compdef _vt vt"), std::string::npos);
}

// Rows come out sorted by a stable key whatever order the server used.
TEST(VtOutputTest, TableRowsAreSortedWhateverTheServerOrder) {
  http::Router router;
  router.add("GET", "/v1/orgs", [](http::Request&) {
    return http::Response::json(
        200,
        R"({"items":[{"id":"org_01jc0000000000000000000003","name":"zulu","created_at":"2026-11-26T10:00:00Z","updated_at":"2026-11-26T10:00:00Z"},)"
        R"({"id":"org_01jc0000000000000000000001","name":"alpha","created_at":"2026-11-26T10:00:00Z","updated_at":"2026-11-26T10:00:00Z"},)"
        R"({"id":"org_01jc0000000000000000000002","name":"mike","created_at":"2026-11-26T10:00:00Z","updated_at":"2026-11-26T10:00:00Z"}],"next_cursor":null})");
  });
  http::Server server(http::ServerOptions{.listen = {"[::1]:0"}},
                      [&](http::Request& r) { return router.dispatch(r); });
  ASSERT_TRUE(server.start());
  plfm::testing::TempDir config("vt-config");
  ::setenv("VT_CONFIG_DIR", config.path().c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
  ::setenv("VT_URL", ("http://" + server.endpoints()[0]).c_str(),
           1);                         // NOLINT(concurrency-mt-unsafe)
  ::setenv("VT_TOKEN", "vt_test", 1);  // NOLINT(concurrency-mt-unsafe)
  std::ostringstream out;
  std::ostringstream err;
  int code = run(words("orgs list --format table"), out, err, false);
  EXPECT_EQ(code, 0) << err.str();
  EXPECT_EQ(out.str(),
            "ID                              NAME   CREATED\n"
            "org_01jc0000000000000000000001  alpha  2026-11-26 10:00:00\n"
            "org_01jc0000000000000000000002  mike   2026-11-26 10:00:00\n"
            "org_01jc0000000000000000000003  zulu   2026-11-26 10:00:00\n");
  out.str("");
  code = run(words("orgs list -q"), out, err, false);
  EXPECT_EQ(out.str(),
            "org_01jc0000000000000000000001\norg_01jc0000000000000000000002\n"
            "org_01jc0000000000000000000003\n");
  ::unsetenv("VT_URL");    // NOLINT(concurrency-mt-unsafe)
  ::unsetenv("VT_TOKEN");  // NOLINT(concurrency-mt-unsafe)
  server.stop(std::chrono::milliseconds(0));
}

// Restores an environment variable on scope exit.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
    if (old != nullptr) old_ = old;
    if (value == nullptr) {
      ::unsetenv(name);  // NOLINT(concurrency-mt-unsafe)
    } else {
      ::setenv(name, value, 1);  // NOLINT(concurrency-mt-unsafe)
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
    } else {
      ::unsetenv(name_);  // NOLINT(concurrency-mt-unsafe)
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Every list, whatever order the server sends: apps and envs by name,
// releases and deploys newest first (ids are time-sortable), instances by
// process then id, nodes by hostname. `-q` prints the first column (the id)
// in row order; JSON keeps the same order.
class ScrambledServer {
 public:
  ScrambledServer() {
    auto items = [](std::initializer_list<std::string> objs) {
      std::string body = R"({"items":[)";
      bool first = true;
      for (const auto& o : objs) {
        body += (first ? "" : ",") + o;
        first = false;
      }
      return http::Response::json(200, body + R"(],"next_cursor":null})");
    };
    router_.add("GET", "/v1/orgs", [items](http::Request&) {
      return items({R"({"id":"org_01jc0000000000000000000001","name":"acme"})"});
    });
    router_.add("GET", "/v1/orgs/{id}/apps", [items](http::Request&) {
      return items({R"({"id":"app_01jc0000000000000000000003","name":"zulu"})",
                    R"({"id":"app_01jc0000000000000000000001","name":"hello"})",
                    R"({"id":"app_01jc0000000000000000000002","name":"bravo"})"});
    });
    router_.add("GET", "/v1/apps/{id}/envs", [items](http::Request&) {
      return items(
          {R"({"id":"env_01jc0000000000000000000002","app_id":"app_01jc0000000000000000000001","name":"staging"})",
           R"({"id":"env_01jc0000000000000000000003","app_id":"app_01jc0000000000000000000001","name":"dev"})",
           R"({"id":"env_01jc0000000000000000000001","app_id":"app_01jc0000000000000000000001","name":"prod"})"});
    });
    router_.add("GET", "/v1/apps/{id}/releases", [items](http::Request&) {
      return items({R"({"id":"rel_01jc0000000000000000000002","image_ref":"a","manifest":{}})",
                    R"({"id":"rel_01jc0000000000000000000003","image_ref":"a","manifest":{}})",
                    R"({"id":"rel_01jc0000000000000000000001","image_ref":"a","manifest":{}})"});
    });
    router_.add("GET", "/v1/envs/{id}/deploys", [items](http::Request&) {
      return items(
          {R"({"id":"dep_01jc0000000000000000000001","release_id":"r","strategy":"rolling","status":"succeeded","reason":null})",
           R"({"id":"dep_01jc0000000000000000000003","release_id":"r","strategy":"rolling","status":"pending","reason":null})",
           R"({"id":"dep_01jc0000000000000000000002","release_id":"r","strategy":"rolling","status":"superseded","reason":null})"});
    });
    router_.add("GET", "/v1/envs/{id}/instances", [](http::Request&) {
      auto inst = [](const char* id, const char* process) {
        return std::string(R"({"id":")") + id + R"(","process_type":")" + process +
               R"(","node_id":null,"address":null,"desired_state":"run","current_state":"allocated","reason":null})";
      };
      return http::Response::json(
          200,
          R"({"items":[)" + inst("inst_01jc0000000000000000000003", "web") + "," +
              inst("inst_01jc0000000000000000000002", "worker") + "," +
              inst("inst_01jc0000000000000000000001", "web") + "," +
              inst("inst_01jc0000000000000000000004", "api") +
              R"(],"summary":[{"process_type":"worker","desired":1,"current":0,"reason":null},)"
              R"({"process_type":"api","desired":1,"current":0,"reason":null},)"
              R"({"process_type":"web","desired":2,"current":0,"reason":null}]})");
    });
    router_.add("GET", "/v1/envs/{id}/volumes", [items](http::Request&) {
      auto vol = [](const char* id, const char* process, const char* name, int slot) {
        return std::string(R"({"volume_id":")") + id + R"(","process":")" + process +
               R"(","name":")" + name + R"(","slot":)" + std::to_string(slot) +
               R"(,"full_name":")" + name + "-" + std::to_string(slot) +
               R"(","size_bytes":1073741824,"node_id":null,"state":"pending"})";
      };
      return items({vol("vol_01jc0000000000000000000001", "web", "uploads", 10),
                    vol("vol_01jc0000000000000000000002", "web", "cache", 0),
                    vol("vol_01jc0000000000000000000003", "web", "uploads", 2),
                    vol("vol_01jc0000000000000000000004", "api", "uploads", 0)});
    });
    router_.add("GET", "/v1/nodes", [items](http::Request&) {
      return items({R"({"id":"node_01jc0000000000000000000001","hostname":"n3","state":"active"})",
                    R"({"id":"node_01jc0000000000000000000003","hostname":"n1","state":"active"})",
                    R"({"id":"node_01jc0000000000000000000002","hostname":"n2","state":"down"})"});
    });
    server_ =
        std::make_unique<http::Server>(http::ServerOptions{.listen = {"[::1]:0"}},
                                       [this](http::Request& r) { return router_.dispatch(r); });
    EXPECT_TRUE(server_->start());
    env_.push_back(std::make_unique<ScopedEnv>("VT_CONFIG_DIR", config_.path().c_str()));
    env_.push_back(
        std::make_unique<ScopedEnv>("VT_URL", ("http://" + server_->endpoints()[0]).c_str()));
    env_.push_back(std::make_unique<ScopedEnv>("VT_TOKEN", "vt_test"));
  }
  ~ScrambledServer() { server_->stop(std::chrono::milliseconds(0)); }
  ScrambledServer(const ScrambledServer&) = delete;
  ScrambledServer& operator=(const ScrambledServer&) = delete;

  // stdout of `vt <args>`; fails the test on a non-zero exit.
  std::string run(const std::string& args) {
    std::ostringstream out;
    std::ostringstream err;
    EXPECT_EQ(plfm::vt::run(words(args), out, err, false), 0) << args << ": " << err.str();
    return out.str();
  }

 private:
  plfm::testing::TempDir config_{"vt-config"};
  http::Router router_;
  std::unique_ptr<http::Server> server_;
  std::vector<std::unique_ptr<ScopedEnv>> env_;
};

TEST(VtOutputTest, EveryListIsSortedWhateverTheServerOrder) {
  ScrambledServer server;
  EXPECT_EQ(server.run("apps list -q"),
            "app_01jc0000000000000000000002\napp_01jc0000000000000000000001\n"
            "app_01jc0000000000000000000003\n");  // bravo, hello, zulu
  EXPECT_EQ(server.run("envs list --app hello -q"),
            "env_01jc0000000000000000000003\nenv_01jc0000000000000000000001\n"
            "env_01jc0000000000000000000002\n");  // dev, prod, staging
  EXPECT_EQ(server.run("releases list --app hello -q"),
            "rel_01jc0000000000000000000003\nrel_01jc0000000000000000000002\n"
            "rel_01jc0000000000000000000001\n");
  EXPECT_EQ(server.run("deploys list --app hello -q"),
            "dep_01jc0000000000000000000003\ndep_01jc0000000000000000000002\n"
            "dep_01jc0000000000000000000001\n");
  EXPECT_EQ(
      server.run("instances list --app hello -q"),
      "inst_01jc0000000000000000000004\ninst_01jc0000000000000000000001\n"
      "inst_01jc0000000000000000000003\ninst_01jc0000000000000000000002\n");  // api, web, worker
  EXPECT_EQ(server.run("nodes list -q"),
            "node_01jc0000000000000000000003\nnode_01jc0000000000000000000002\n"
            "node_01jc0000000000000000000001\n");  // n1, n2, n3
  // Volumes by process, name, then slot as a number (uploads-2 before uploads-10).
  const std::string volumes = server.run("volumes list --app hello --format table");
  EXPECT_LT(volumes.find("uploads-0"), volumes.find("cache-0")) << volumes;
  EXPECT_LT(volumes.find("cache-0"), volumes.find("uploads-2")) << volumes;
  EXPECT_LT(volumes.find("uploads-2"), volumes.find("uploads-10")) << volumes;
  // Tables: the summary too is sorted by process.
  const std::string table = server.run("instances list --app hello --format table");
  EXPECT_LT(table.find("api  "), table.find("web  ")) << table;
  EXPECT_LT(table.find("web  "), table.find("worker  ")) << table;
  // JSON carries the same order as the table.
  auto ids = [](const std::string& text, const char* list) {
    std::string out;
    const nlohmann::json parsed = nlohmann::json::parse(text);
    for (const auto& i : parsed.at(list)) {
      out += i.contains("id") ? i["id"].get<std::string>() : i["process_type"].get<std::string>();
      out += " ";
    }
    return out;
  };
  EXPECT_EQ(ids(server.run("apps list --format json"), "items"),
            "app_01jc0000000000000000000002 app_01jc0000000000000000000001 "
            "app_01jc0000000000000000000003 ");
  EXPECT_EQ(ids(server.run("releases list --app hello --format json"), "items"),
            "rel_01jc0000000000000000000003 rel_01jc0000000000000000000002 "
            "rel_01jc0000000000000000000001 ");
  EXPECT_EQ(ids(server.run("nodes list --format json"), "items"),
            "node_01jc0000000000000000000003 node_01jc0000000000000000000002 "
            "node_01jc0000000000000000000001 ");
  const std::string inst = server.run("instances list --app hello --format json");
  EXPECT_EQ(ids(inst, "summary"), "api web worker ");
  EXPECT_EQ(ids(inst, "items"),
            "inst_01jc0000000000000000000004 inst_01jc0000000000000000000001 "
            "inst_01jc0000000000000000000003 inst_01jc0000000000000000000002 ");
}

// A server answering 200 with JSON of an unexpected shape gets one clear
// line and exit 3, not a terminate.
TEST(VtOutputTest, UnexpectedResponseShapeIsOneLineAndExitThree) {
  http::Router router;
  router.add("GET", "/v1/orgs", [](http::Request&) {
    return http::Response::json(200, R"({"items":[{"id":7,"name":["not","a","name"]}]})");
  });
  router.add("GET", "/v1/nodes", [](http::Request&) {
    return http::Response::json(
        200, R"({"items":[{"id":1,"hostname":"n1"},{"id":2,"hostname":"n1"}],"next_cursor":null})");
  });
  http::Server server(http::ServerOptions{.listen = {"[::1]:0"}},
                      [&](http::Request& r) { return router.dispatch(r); });
  ASSERT_TRUE(server.start());
  plfm::testing::TempDir config("vt-config");
  ScopedEnv config_dir("VT_CONFIG_DIR", config.path().c_str());
  ScopedEnv url("VT_URL", ("http://" + server.endpoints()[0]).c_str());
  ScopedEnv token("VT_TOKEN", "vt_test");
  for (const char* cmd : {"orgs list --format table", "nodes list", "apps list"}) {
    std::ostringstream out;
    std::ostringstream err;
    EXPECT_EQ(run(words(cmd), out, err, false), 3) << cmd << ": " << err.str();
    EXPECT_EQ(err.str().rfind("error: unexpected response from the control plane (", 0), 0)
        << cmd << ": " << err.str();
    EXPECT_NE(err.str().find("\nhint: check that vt and the control plane are the same version"),
              std::string::npos)
        << err.str();
  }
  server.stop(std::chrono::milliseconds(0));
}

// A pseudo-terminal: its slave side is a TTY for isatty().
class Pty {
 public:
  Pty() {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master_ >= 0 && ::grantpt(master_) == 0 && ::unlockpt(master_) == 0) {
      slave_ = ::open(::ptsname(master_), O_RDWR | O_NOCTTY);  // NOLINT(concurrency-mt-unsafe)
    }
  }
  ~Pty() {
    if (slave_ >= 0) ::close(slave_);
    if (master_ >= 0) ::close(master_);
  }
  Pty(const Pty&) = delete;
  Pty& operator=(const Pty&) = delete;
  [[nodiscard]] int slave() const { return slave_; }

 private:
  int master_ = -1;
  int slave_ = -1;
};

TEST(VtColorTest, ColourOnlyOnATerminalWithoutNoColorOrDumbTerm) {
  Pty pty;
  ASSERT_GE(pty.slave(), 0);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  {
    ScopedEnv no_color("NO_COLOR", nullptr);
    ScopedEnv term("TERM", "xterm-256color");
    EXPECT_TRUE(colorAllowed(pty.slave()));
    EXPECT_FALSE(colorAllowed(pipe_fds[1]));
  }
  {
    ScopedEnv no_color("NO_COLOR", "1");
    EXPECT_FALSE(colorAllowed(pty.slave()));
  }
  {
    // no-color.org: only a non-empty NO_COLOR disables colour.
    ScopedEnv no_color("NO_COLOR", "");
    ScopedEnv term("TERM", "xterm");
    EXPECT_TRUE(colorAllowed(pty.slave()));
  }
  {
    ScopedEnv no_color("NO_COLOR", nullptr);
    ScopedEnv term("TERM", "dumb");
    EXPECT_FALSE(colorAllowed(pty.slave()));
  }
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

// stderr's colour follows stderr, whatever stdout is: `vt ... | jq` on a
// terminal still gets a red "error:", and NO_COLOR turns it off.
TEST(VtColorTest, StderrColourFollowsStderr) {
  Pty pty;
  ASSERT_GE(pty.slave(), 0);
  const int saved = ::dup(2);
  ASSERT_GE(saved, 0);
  auto errorLine = [](bool stdout_is_tty) {
    std::ostringstream out;
    std::ostringstream err;
    EXPECT_EQ(run(words("aps list"), out, err, stdout_is_tty), 2);
    return err.str();
  };
  std::string coloured;
  std::string plain;
  std::string no_color;
  ::dup2(pty.slave(), 2);
  {
    ScopedEnv nc("NO_COLOR", nullptr);
    ScopedEnv term("TERM", "xterm");
    coloured = errorLine(false);
  }
  {
    ScopedEnv nc("NO_COLOR", "1");
    no_color = errorLine(false);
  }
  ::dup2(saved, 2);
  ::close(saved);
  {
    ScopedEnv nc("NO_COLOR", nullptr);
    ScopedEnv term("TERM", "xterm");
    // Whatever the test runner's stderr is, a pipe is never a terminal.
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    const int again = ::dup(2);
    ::dup2(pipe_fds[1], 2);
    plain = errorLine(true);
    ::dup2(again, 2);
    ::close(again);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
  }
  EXPECT_EQ(coloured.rfind("\033[31merror:\033[0m unknown command `aps`", 0), 0) << coloured;
  EXPECT_EQ(no_color.rfind("error: unknown command `aps`", 0), 0) << no_color;
  EXPECT_EQ(plain.rfind("error: unknown command `aps`", 0), 0) << plain;
}

// `vt deploy` watches until the deploy finishes, printing only changes on a
// non-terminal stderr, and exits 0 on success and 6 on failure. The server
// here is scripted: each GET of a deploy advances its status. A deploy that
// fails may have an auto-rollback (`rollback_statuses` not empty): the
// env's current deploy, which rolls back to the previous release.
class ScriptedDeployServer {
 public:
  static constexpr const char* kDeploy = "dep_01jc0000000000000000000001";
  static constexpr const char* kRollback = "dep_01jc0000000000000000000002";

  explicit ScriptedDeployServer(std::vector<std::string> statuses,
                                std::string failure = "web crashed 3 times (exit 1)",
                                std::vector<std::string> rollback_statuses = {})
      : statuses_(std::move(statuses)),
        failure_(std::move(failure)),
        rollback_statuses_(std::move(rollback_statuses)) {
    const std::string org = R"({"id":"org_01jc0000000000000000000001","name":"acme"})";
    const std::string app =
        R"({"id":"app_01jc0000000000000000000001","org_id":"org_01jc0000000000000000000001","name":"hello"})";
    router_.add("GET", "/v1/orgs", [org](http::Request&) {
      return http::Response::json(200, R"({"items":[)" + org + R"(],"next_cursor":null})");
    });
    router_.add("GET", "/v1/orgs/{id}/apps", [app](http::Request&) {
      return http::Response::json(200, R"({"items":[)" + app + R"(],"next_cursor":null})");
    });
    router_.add("GET", "/v1/apps/{id}/envs", [this](http::Request&) {
      return http::Response::json(200, R"({"items":[)" + envJson() + R"(],"next_cursor":null})");
    });
    router_.add("GET", "/v1/envs/{id}",
                [this](http::Request&) { return http::Response::json(200, envJson()); });
    router_.add("POST", "/v1/apps/{id}/releases", [](http::Request&) {
      return http::Response::json(201, R"({"id":"rel_01jc0000000000000000000001"})");
    });
    router_.add("GET", "/v1/envs/{id}/scale", [](http::Request&) {
      return http::Response::json(200, R"({"processes":{"web":1}})");
    });
    router_.add("POST", "/v1/envs/{id}/deploys", [this](http::Request& r) {
      std::lock_guard lock(mu_);
      posted_ = r.body;
      return http::Response::json(201, deployJson(kDeploy, "pending"));
    });
    router_.add("GET", "/v1/deploys/{id}", [this](http::Request& r) {
      if (r.param("id") == kRollback) {
        const std::string status =
            rollback_statuses_[std::min(rollback_step_.load(), rollback_statuses_.size() - 1)];
        ++rollback_step_;
        return http::Response::json(200, deployJson(kRollback, status));
      }
      std::string status = statuses_[std::min(step_.load(), statuses_.size() - 1)];
      ++step_;
      return http::Response::json(200, deployJson(kDeploy, status));
    });
    router_.add("GET", "/v1/envs/{id}/instances", [this](http::Request&) {
      std::string phase = step_ >= 2 ? "healthy" : "booting";
      return http::Response::json(
          200,
          R"({"items":[{"id":"inst_01jc0000000000000000000001","process_type":"web","release_id":"rel_01jc0000000000000000000001","node_id":"node_01jc0000000000000000000001","current_state":")" +
              phase +
              R"(","reason":null}],"summary":[{"process_type":"web","desired":1,"current":)" +
              (phase == "healthy" ? "1" : "0") + R"(,"reason":null}]})");
    });
    server_ =
        std::make_unique<http::Server>(http::ServerOptions{.listen = {"[::1]:0"}},
                                       [this](http::Request& r) { return router_.dispatch(r); });
    EXPECT_TRUE(server_->start());
  }
  ~ScriptedDeployServer() { server_->stop(std::chrono::milliseconds(0)); }
  [[nodiscard]] std::string url() const { return "http://" + server_->endpoints()[0]; }
  // The body of the last deploy created.
  std::string posted() {
    std::lock_guard lock(mu_);
    return posted_;
  }

 private:
  // Once the deploy failed, an auto-rollback is the env's current deploy.
  std::string envJson() const {
    const bool rolled_back = !rollback_statuses_.empty() && step_ >= statuses_.size();
    return std::string(
               R"({"id":"env_01jc0000000000000000000001","app_id":"app_01jc0000000000000000000001","name":"prod","current_release_id":"rel_01jc0000000000000000000000","current_deploy_id":")") +
           (rolled_back ? kRollback : kDeploy) + "\"}";
  }

  std::string deployJson(const std::string& id, const std::string& status) const {
    const bool rollback = id == kRollback;
    std::string reason = "null";
    if (status == "failed") reason = "\"" + failure_ + "\"";
    if (rollback) reason = "\"auto-rollback after dep_01jc0000000000000000000001 failed\"";
    return R"({"id":")" + id + R"(","release_id":")" +
           (rollback ? "rel_01jc0000000000000000000000" : "rel_01jc0000000000000000000001") +
           R"(","env_id":"env_01jc0000000000000000000001","status":")" + status + R"(","reason":)" +
           reason + R"(,"rollback_of":)" +
           (rollback ? "\"" + std::string(kDeploy) + "\"" : "null") + "}";
  }

  std::vector<std::string> statuses_;
  std::string failure_;
  std::vector<std::string> rollback_statuses_;
  std::atomic<size_t> step_{0};
  std::atomic<size_t> rollback_step_{0};
  std::mutex mu_;
  std::string posted_;
  http::Router router_;
  std::unique_ptr<http::Server> server_;
};

int runAgainst(const ScriptedDeployServer& server, const std::vector<std::string>& args,
               std::string& out, std::string& err) {
  plfm::testing::TempDir config("vt-config");
  ::setenv("VT_CONFIG_DIR", config.path().c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
  ::setenv("VT_URL", server.url().c_str(), 1);          // NOLINT(concurrency-mt-unsafe)
  ::setenv("VT_TOKEN", "vt_test", 1);                   // NOLINT(concurrency-mt-unsafe)
  std::ostringstream o;
  std::ostringstream e;
  int code = run(args, o, e, false);
  ::unsetenv("VT_URL");    // NOLINT(concurrency-mt-unsafe)
  ::unsetenv("VT_TOKEN");  // NOLINT(concurrency-mt-unsafe)
  out = o.str();
  err = e.str();
  return code;
}

int deployAgainst(const ScriptedDeployServer& server, std::string& out, std::string& err) {
  return runAgainst(
      server,
      {"deploy", "--manifest", std::string(PLFM_TEST_DIR) + "/test/testdata/hello/vt.toml",
       "--format", "table"},
      out, err);
}

TEST(VtDeployWatchTest, ShowsProgressUntilSucceeded) {
  ScriptedDeployServer server({"pending", "in_progress", "in_progress", "succeeded"});
  std::string out;
  std::string err;
  EXPECT_EQ(deployAgainst(server, out, err), 0) << err;
  EXPECT_NE(err.find("deploy dep_01jc0000000000000000000001: in_progress"), std::string::npos)
      << err;
  EXPECT_NE(err.find("inst_01jc0000000000000000000001  web  booting  on node_"), std::string::npos)
      << err;
  EXPECT_NE(out.find("deploy dep_01jc0000000000000000000001 succeeded"), std::string::npos) << out;
  EXPECT_NE(out.find("took "), std::string::npos) << out;
  EXPECT_NE(out.find("vt instances list"), std::string::npos) << out;
}

// Issue 16: a failed deploy's auto-rollback is followed live, and the
// receipt says what happened and what to look at.
TEST(VtDeployWatchTest, AFailedDeployShowsItsAutoRollbackAndExitsSix) {
  ScriptedDeployServer server({"in_progress", "failed"},
                              "new instances failed 4 times (at most 3 allowed); "
                              "rel_01jc0000000000000000000000 keeps serving; auto-rollback: "
                              "dep_01jc0000000000000000000002 redeploys it",
                              {"pending", "in_progress", "succeeded"});
  std::string out;
  std::string err;
  EXPECT_EQ(deployAgainst(server, out, err), 6) << err;
  EXPECT_NE(err.find("deploy dep_01jc0000000000000000000001: failed"), std::string::npos) << err;
  EXPECT_NE(err.find("auto-rollback: deploy dep_01jc0000000000000000000002 redeploys release "
                     "rel_01jc0000000000000000000000"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("deploy dep_01jc0000000000000000000002: in_progress"), std::string::npos)
      << err;
  EXPECT_NE(err.find("error: deploy dep_01jc0000000000000000000001 failed after"),
            std::string::npos)
      << err;
  EXPECT_NE(out.find("✗ Deploy dep_01jc0000000000000000000001 failed; rolled back to release "
                     "rel_01jc0000000000000000000000 (deploy dep_01jc0000000000000000000002 "
                     "succeeded)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("Next:\n  vt logs --app hello --env prod\n  vt instances list --app hello "
                     "--env prod\n  vt deploys get dep_01jc0000000000000000000001\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("vt rollback"), std::string::npos) << out;
}

// With auto_rollback off nothing is rolled back: the receipt says to run
// `vt rollback` (or look at the failed instances first).
TEST(VtDeployWatchTest, AFailedDeployWithoutAutoRollbackSuggestsVtRollback) {
  ScriptedDeployServer server({"in_progress", "failed"},
                              "web crashed 3 times (exit 1); rel_01jc0000000000000000000000 keeps "
                              "serving; auto_rollback is off; run `vt rollback` or deploy a fix");
  std::string out;
  std::string err;
  EXPECT_EQ(deployAgainst(server, out, err), 6);
  EXPECT_NE(err.find("failed after"), std::string::npos) << err;
  EXPECT_NE(err.find("web crashed 3 times (exit 1)"), std::string::npos) << err;
  EXPECT_EQ(err.find("auto-rollback:"), std::string::npos) << err;
  EXPECT_NE(out.find("✗ Deploy dep_01jc0000000000000000000001 failed; nothing was rolled back"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("auto_rollback is off: the failed instances stay for inspection"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("Next:\n  vt rollback --app hello --env prod\n  vt logs --app hello --env "
                     "prod\n  vt instances list --app hello --env prod\n"),
            std::string::npos)
      << out;
}

// After a failed deploy that was not rolled back, `vt rollback` goes back
// to the env's current release, the last one that succeeded.
TEST(VtDeployWatchTest, RollbackAfterAFailedDeployRedeploysTheCurrentRelease) {
  ScriptedDeployServer server({"failed"});
  std::string out;
  std::string err;
  EXPECT_EQ(
      runAgainst(server,
                 {"rollback", "--app", "hello", "--env", "prod", "--detach", "--format", "table"},
                 out, err),
      0)
      << err;
  EXPECT_EQ(nlohmann::json::parse(server.posted())["release_id"], "rel_01jc0000000000000000000000");
  EXPECT_NE(out.find("to release rel_01jc0000000000000000000000"), std::string::npos) << out;
}

// Tags resolve through a registry's bearer-token challenge; digests and
// errors are exact.
TEST(VtImageTest, PinsTagsThroughTheRegistryTokenFlow) {
  const std::string digest =
      "sha256:1111111111111111111111111111111111111111111111111111111111111111";
  std::string base;
  http::Router router;
  router.add("GET", "/token", [](http::Request& r) {
    EXPECT_EQ(r.queryParam("scope").value_or(""), "repository:team/hello:pull");
    return http::Response::json(200, R"({"token":"t0k"})");
  });
  router.add("GET", "/v2/team/hello/manifests/{tag}", [&](http::Request& r) {
    if (r.header("Authorization").value_or("") != "Bearer t0k") {
      http::Response res = http::Response::json(401, "{}");
      res.headers.set("WWW-Authenticate", "Bearer realm=\"" + base +
                                              "/token\",service=\"test\",scope=\"repository:team/"
                                              "hello:pull\"");
      return res;
    }
    if (r.param("tag") != "1.0") return http::Response::json(404, "{}");
    http::Response res = http::Response::json(200, R"({"schemaVersion":2})");
    res.headers.set("Docker-Content-Digest", digest);
    return res;
  });
  http::Server server(http::ServerOptions{.listen = {"127.0.0.1:0"}},
                      [&](http::Request& r) { return router.dispatch(r); });
  ASSERT_TRUE(server.start());
  base = "http://" + server.endpoints()[0];
  auto pinned = pinImage(server.endpoints()[0] + "/team/hello:1.0");
  ASSERT_TRUE(pinned) << pinned.error().toString();
  EXPECT_EQ(pinned->digest, digest);
  auto missing = pinImage(server.endpoints()[0] + "/team/hello:2.0");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("no such image or tag"), std::string::npos);
  auto byDigest = pinImage("team/hello@" + digest);
  ASSERT_TRUE(byDigest);
  EXPECT_EQ(byDigest->digest, digest);
  EXPECT_FALSE(pinImage("team/hello@sha256:short"));
  server.stop(std::chrono::milliseconds(0));
}

TEST(VtImageTest, PinsOciLayoutTags) {
  plfm::testing::TempDir dir("vt-oci");
  const std::string digest =
      "sha256:2222222222222222222222222222222222222222222222222222222222222222";
  ASSERT_TRUE(writeFileAtomic(
      dir.file("index.json"),
      R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
          digest + R"(","size":10,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]})"));
  auto pinned = pinImage("oci:" + dir.path() + ":v1");
  ASSERT_TRUE(pinned) << pinned.error().toString();
  EXPECT_EQ(pinned->digest, digest);
  auto wrong = pinImage("oci:" + dir.path() + ":v2");
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message().find("(it has: v1)"), std::string::npos);
}

}  // namespace
}  // namespace plfm::vt
