// The workload of the boot tests, built static and copied into a rootfs.
//   guest_testapp hello CODE   prints to stdout and stderr, exits CODE
//   guest_testapp sleep        waits for SIGTERM, says so, exits 0
//   guest_testapp stubborn     says it ignores SIGTERM, until SIGKILL
//   guest_testapp inspect      prints what vt-init set up (uid, cwd, env,
//                              hostname, the secrets file, mounts)
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

namespace {
volatile sig_atomic_t g_term = 0;
void onTerm(int) { g_term = 1; }

// SIGTERM blocked except inside sigsuspend, so it cannot slip in between
// checking g_term and going to sleep.
sigset_t blockTerm() {
  sigset_t term;
  sigset_t old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, &old);
  signal(SIGTERM, onTerm);
  return old;
}

std::string slurp(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Processes in state Z (zombies) anywhere in the guest.
int zombies() {
  int n = 0;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return -1;
  while (dirent* e = readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const std::string stat = slurp((std::string("/proc/") + e->d_name + "/stat").c_str());
    const size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z') ++n;
  }
  closedir(proc);
  return n;
}

// Leaves an orphan that exits after its parent: it is reparented to PID 1,
// and only PID 1 can reap it.
void makeOrphan() {
  const pid_t child = fork();
  if (child == 0) {
    if (fork() == 0) {
      usleep(50'000);
      _exit(0);
    }
    _exit(0);
  }
  waitpid(child, nullptr, 0);
  usleep(400'000);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "hello";
  if (mode == "hello") {
    std::printf("hello from the guest\n");
    std::fflush(stdout);
    std::fprintf(stderr, "a line on stderr\n");
    return argc > 2 ? std::atoi(argv[2]) : 0;
  }
  if (mode == "sleep") {
    const sigset_t old = blockTerm();
    std::printf("sleeping\n");
    std::fflush(stdout);
    while (!g_term) sigsuspend(&old);
    std::printf("got SIGTERM\n");
    std::fflush(stdout);
    return 0;
  }
  if (mode == "stubborn") {  // ignores SIGTERM: only SIGKILL ends it
    const sigset_t old = blockTerm();
    std::printf("sleeping\n");
    std::fflush(stdout);
    while (true) {
      while (!g_term) sigsuspend(&old);
      if (g_term) {
        std::printf("ignoring SIGTERM\n");
        std::fflush(stdout);
        g_term = 0;
      }
    }
  }
  if (mode == "inspect") {
    char cwd[256] = {};
    char host[256] = {};
    if (getcwd(cwd, sizeof cwd) == nullptr) cwd[0] = '?';
    gethostname(host, sizeof host);
    gid_t groups[16];
    const int ngroups = getgroups(16, groups);
    std::cout << "uid=" << getuid() << " gid=" << getgid() << " groups=" << ngroups;
    for (int i = 0; i < ngroups; ++i) std::cout << (i ? "," : ":") << groups[i];
    std::cout << "\ncwd=" << cwd << "\nhostname=" << host << "\n";
    for (const char* key : {"APP_MODE", "TOKEN", "PATH", "HOSTNAME"}) {
      const char* v = std::getenv(key);
      std::cout << "env " << key << "=" << (v ? v : "<unset>") << "\n";
    }
    struct stat st {};
    if (stat("/run/secrets/platform.env", &st) == 0) {
      std::cout << "secrets mode=" << std::oct << (st.st_mode & 0777) << std::dec
                << " owner=" << st.st_uid << "\n";
      std::cout << "secrets content="
                << (slurp("/run/secrets/platform.env").find("TOKEN=") != std::string::npos ? "ok"
                                                                                           : "bad")
                << "\n";
    } else {
      std::cout << "secrets absent\n";
    }
    std::ofstream probe("/srv/written-by-guest");
    std::cout << "rootfs writable=" << (probe ? "yes" : "no") << "\n";
    std::cout << "hosts=" << slurp("/etc/hosts");
    std::cout << "resolv=" << slurp("/etc/resolv.conf");
    const std::string mounts = slurp("/proc/mounts");
    std::cout << "overlay root="
              << (mounts.find("overlay / overlay") != std::string::npos ? "yes" : "no") << "\n";
    makeOrphan();
    std::cout << "zombies=" << zombies() << "\n";
    std::cout << "mtu=" << slurp("/sys/class/net/eth0/mtu");
    std::cout << "if_inet6:\n" << slurp("/proc/net/if_inet6");
    std::cout << "ipv6_route:\n" << slurp("/proc/net/ipv6_route");
    std::cout << "route:\n" << slurp("/proc/net/route");
    std::cout.flush();
    return 0;
  }
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
