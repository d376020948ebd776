// Times `vt --help` (process start to exit) against /bin/true as the floor
// of fork+exec on this machine. Target: vt --help under 10 ms.
//
//   build/bench/vt_startup_bench [runs]
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

extern char** environ;

namespace {

double runOnce(const std::vector<std::string>& argv) {
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 01, 0);  // O_WRONLY
  auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  if (posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), environ) != 0) {
    std::fprintf(stderr, "cannot run %s\n", cargv[0]);
    std::exit(1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  auto end = std::chrono::steady_clock::now();
  posix_spawn_file_actions_destroy(&fa);
  return std::chrono::duration<double, std::milli>(end - start).count();
}

void report(const char* name, const std::vector<std::string>& argv, int runs) {
  std::vector<double> t;
  t.reserve(static_cast<size_t>(runs));
  for (int i = 0; i < 5; ++i) runOnce(argv);  // warm the page cache
  for (int i = 0; i < runs; ++i) t.push_back(runOnce(argv));
  std::sort(t.begin(), t.end());
  auto at = [&](double q) { return t[std::min(t.size() - 1, static_cast<size_t>(q * t.size()))]; };
  std::printf("%-16s runs=%d  p50=%.2f ms  p90=%.2f ms  p99=%.2f ms  max=%.2f ms\n", name, runs,
              at(0.5), at(0.9), at(0.99), t.back());
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 200;
  report("/bin/true", {"/bin/true"}, runs);
  report("vt --help", {PLFM_VT_BIN, "--help"}, runs);
  report("vt deploy --help", {PLFM_VT_BIN, "deploy", "--help"}, runs);
  return 0;
}
