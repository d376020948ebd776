// `vt secrets` end to end: the real vt binary against a real control plane
// (with a master key) on a real PostgreSQL. One scripted session is a golden
// transcript in table and JSON form; the values are canaries, and afterwards
// no canary may appear in any output of vt, in the control plane's log or
// state dir, or in vt's config dir (plfm::testing::LeakScanner).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pty.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "plfm/testing/leak_scan.h"
#include "vt_harness.h"

namespace plfm::vt {
namespace {

using plfm::testing::TempDir;
using testing::runVt;
using testing::VtResult;

const std::string kTestData = std::string(PLFM_TEST_DIR) + "/test/testdata";

using VtSecretsTest = testing::SecretsSuiteTest;

// Runs vt, records a transcript, and keeps every output for the leak scan.
class Session {
 public:
  Session(std::string config_dir, testing::Normalizer& norm, plfm::testing::LeakScanner& scan)
      : config_dir_(std::move(config_dir)), norm_(norm), scan_(scan) {}

  VtResult run(const std::vector<std::string>& args, const std::string& stdin_text = "") {
    VtResult r = runVt(args, config_dir_, {}, stdin_text);
    std::string cmd = "vt";
    for (const auto& a : args) cmd += " " + a;
    scan_.scanText(cmd + " (stdout)", r.out);
    scan_.scanText(cmd + " (stderr)", r.err);
    text_ +=
        testing::transcriptEntry(norm_.apply(cmd), norm_.apply(r.out), norm_.apply(r.err), r.code);
    return r;
  }
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  std::string config_dir_;
  testing::Normalizer& norm_;
  plfm::testing::LeakScanner& scan_;
  std::string text_;
};

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

TEST_F(VtSecretsTest, SetImportUnsetListVersionsMatchGoldenAndNoValueLeaks) {
  TempDir config("vt-config");
  TempDir files("vt-files");
  plfm::testing::LeakScanner scan;
  testing::Normalizer norm;
  norm.literal(cp_->url, "<url>");
  norm.literal(config.path(), "<config>");
  norm.literal(files.path(), "<files>");
  norm.literal(kTestData, "<testdata>");
  // Canaries: each stands in the transcript's command lines as <NAME>.
  auto canary = [&](const std::string& name) {
    std::string v = scan.addCanary(name);
    norm.literal(v, "<" + name + ">");
    return v;
  };
  const std::string db_url = canary("DATABASE_URL");
  const std::string token = canary("API_TOKEN");
  const std::string tls = canary("TLS_KEY");
  const std::string prompted = canary("PROMPTED");
  const std::string imported = canary("IMPORTED");
  const std::string refused = canary("REFUSED");
  writeFile(files.file("tls.pem"), tls + "\n-----END-----\n");
  writeFile(files.file("app.env"), "# imported\nexport IMPORTED='" + imported + "'\nMODE=prod\n");
  writeFile(files.file("big"), std::string(64 * 1024 + 1, 'b'));
  Session s(config.path(), norm, scan);
  const std::string manifest = kTestData + "/hello/vt.toml";
  const std::vector<std::string> scope = {"--app", "hello", "--env", "prod"};
  auto cmd = [&](std::vector<std::string> args, const std::string& format) {
    args.insert(args.end(), scope.begin(), scope.end());
    args.insert(args.end(), {"--format", format});
    return args;
  };

  ASSERT_EQ(s.run({"login", "--url", cp_->url}, cp_->admin_token + "\n").code, 0);
  ASSERT_EQ(s.run({"orgs", "create", "acme", "--format", "json"}).code, 0);
  ASSERT_EQ(s.run({"apps", "create", "hello", "--org", "acme", "--format", "json"}).code, 0);
  ASSERT_EQ(
      s.run({"envs", "create", "prod", "--app", "hello", "--org", "acme", "--format", "json"}).code,
      0);
  ASSERT_EQ(s.run({"context", "use", "--org", "acme", "--format", "json"}).code, 0);
  // Before any release: the version is only staged.
  EXPECT_EQ(
      s.run(cmd({"secrets", "set", "DATABASE_URL=" + db_url, "API_TOKEN=" + token}, "table")).code,
      0);
  EXPECT_EQ(s.run(cmd({"deploy", "--manifest", manifest, "--detach"}, "json")).code, 0);
  // After a deploy: a change redeploys the release with the new version.
  EXPECT_EQ(
      s.run(cmd({"secrets", "set", "--from-file", "TLS_KEY=" + files.file("tls.pem")}, "table"))
          .code,
      0);
  EXPECT_EQ(s.run(cmd({"secrets", "set", "PROMPTED", "--stage"}, "json"), prompted + "\n").code, 0);
  EXPECT_EQ(s.run(cmd({"secrets", "import", files.file("app.env")}, "table")).code, 0);
  EXPECT_EQ(s.run(cmd({"secrets", "unset", "MODE", "--stage"}, "table")).code, 0);
  EXPECT_EQ(s.run(cmd({"secrets", "list"}, "table")).code, 0);
  EXPECT_EQ(s.run(cmd({"secrets", "list"}, "json")).code, 0);
  EXPECT_EQ(s.run(cmd({"secrets", "versions"}, "table")).code, 0);
  VtResult versions = s.run(cmd({"secrets", "versions"}, "json"));
  EXPECT_EQ(versions.code, 0);
  const size_t count = nlohmann::json::parse(versions.out)["items"].size();
  EXPECT_EQ(count, 5U);

  // Bad input: refused with a clear message; client-side checks send nothing.
  EXPECT_EQ(s.run(cmd({"secrets", "set", "bad-key=" + refused}, "table")).code, 2);
  EXPECT_EQ(s.run(cmd({"secrets", "set", refused}, "table")).code, 2);
  EXPECT_EQ(s.run(cmd({"secrets", "set", "--from-file", "BIG=" + files.file("big")}, "table")).code,
            1);
  EXPECT_EQ(
      s.run(cmd({"secrets", "import", "-"}, "table"), "A=1\nB=2\nthis line holds " + refused + "\n")
          .code,
      1);
  EXPECT_EQ(s.run(cmd({"secrets", "unset", "NOT_SET"}, "table")).code, 1);
  EXPECT_EQ(s.run({"secrets", "list", "--app", "hello", "--env", "nope", "--format", "table"}).code,
            1);
  VtResult after = runVt(cmd({"secrets", "versions"}, "json"), config.path());
  EXPECT_EQ(nlohmann::json::parse(after.out)["items"].size(), count) << "a refused change was sent";
  PLFM_EXPECT_GOLDEN("golden/secrets.txt", s.text());

  // The leak scan: every vt output (scanned as it came), the control plane's
  // log and state dir, and vt's config dir.
  scan.scanDir(state_->path());
  scan.scanDir(config.path());
  EXPECT_GT(scan.scanned(), 40);
  scan.expectClean();
}

// On a terminal, `vt secrets set KEY` prompts on stderr and turns echo off:
// what is typed never comes back on the terminal, stdout or stderr.
TEST_F(VtSecretsTest, APromptedValueIsNotEchoed) {
  TempDir config("vt-config");
  ASSERT_EQ(runVt({"login", "--url", cp_->url}, config.path(), {}, cp_->admin_token + "\n").code,
            0);
  ASSERT_EQ(runVt({"orgs", "create", "tty"}, config.path()).code, 0);
  ASSERT_EQ(runVt({"apps", "create", "hello", "--org", "tty"}, config.path()).code, 0);
  ASSERT_EQ(runVt({"envs", "create", "prod", "--app", "hello", "--org", "tty"}, config.path()).code,
            0);
  plfm::testing::LeakScanner scan;
  const std::string value = scan.addCanary("TYPED");

  int master = -1;
  int slave = -1;
  ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  TempDir io("vt-tty");
  SpawnOptions o;
  o.stdout_path = io.file("out");
  o.stderr_path = io.file("err");
  o.stdin_fd = slave;
  o.env = {"VT_CONFIG_DIR=" + config.path(), "NO_COLOR=1"};
  auto p = spawn({PLFM_VT_BIN, "secrets", "set", "TYPED", "--org", "tty", "--app", "hello", "--env",
                  "prod", "--format", "json"},
                 o);
  ::close(slave);
  ASSERT_TRUE(p.has_value());
  // Type only once echo is off (the prompt is printed just before).
  bool prompted = false;
  for (int i = 0; i < 200 && !prompted; ++i) {
    prompted = readFile(io.file("err")).value_or("").find("(not shown)") != std::string::npos;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(prompted) << readFile(io.file("err")).value_or("");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::string typed = value + "\n";
  ASSERT_EQ(::write(master, typed.data(), typed.size()), static_cast<ssize_t>(typed.size()));
  auto status = p->waitFor(std::chrono::seconds(30));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(exitCodeOf(*status), 0) << readFile(io.file("err")).value_or("");
  // Whatever the terminal would have shown.
  std::string shown;
  ::fcntl(master, F_SETFL, O_NONBLOCK);
  char buf[4096];
  for (ssize_t n = 0; (n = ::read(master, buf, sizeof(buf))) > 0;) {
    shown.append(buf, static_cast<size_t>(n));
  }
  ::close(master);
  scan.scanText("the terminal", shown);
  scan.scanFile(io.file("out"));
  scan.scanFile(io.file("err"));
  scan.expectClean();
  EXPECT_NE(readFile(io.file("out")).value_or("").find("\"TYPED\""), std::string::npos);
}

}  // namespace
}  // namespace plfm::vt
