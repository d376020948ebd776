// vt-test-workload: the program the agent's end-to-end tests run inside a
// microVM, linked statically so that its image is one file.
//
//   vt-test-workload exit CODE [TEXT]   print TEXT (and the env it was given) then exit CODE
//   vt-test-workload serve PORT [SECS]  answer each TCP connection on [::]:PORT with
//                                       "hello from <PLFM_INSTANCE_ID>\n"; exit 0 on SIGTERM;
//                                       with SECS, stop listening after that long and hang
//                                       (a hung app: its checks fail, it never exits)
//   vt-test-workload sleep              wait for SIGTERM, then exit 0
//   vt-test-workload netprobe PORT | ask ADDR PORT LINE | udp-listen PORT
//                                       network probes (netprobe.cc)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "workload/netprobe.h"

namespace {

volatile std::sig_atomic_t g_term = 0;
extern "C" void onTerm(int) { g_term = 1; }

// What vt-init delivered: the secrets file's presence, mode and owner, then
// its lines as they are (tests check that the agent masks the values).
void reportSecrets() {
  const char* path = "/run/secrets/platform.env";
  struct stat st {};
  if (::stat(path, &st) != 0) {
    std::printf("secrets: absent\n");
    return;
  }
  std::printf("secrets: present mode=%o uid=%u gid=%u\n", st.st_mode & 07777, st.st_uid, st.st_gid);
  if (FILE* f = std::fopen(path, "r")) {
    char line[4096];
    while (std::fgets(line, sizeof line, f) != nullptr) std::printf("secrets file: %s", line);
    std::fclose(f);
  }
}

int serve(int port, int seconds) {
  reportSecrets();
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  int off = 0;
  ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(static_cast<uint16_t>(port));
  a.sin6_addr = in6addr_any;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0) {
    std::fprintf(stderr, "cannot listen on %d: %s\n", port, std::strerror(errno));
    return 2;
  }
  const char* id = std::getenv("PLFM_INSTANCE_ID");
  std::string answer = std::string("hello from ") + (id != nullptr ? id : "?") + "\n";
  std::printf("listening on [::]:%d\n", port);
  std::fflush(stdout);
  const time_t until = seconds > 0 ? ::time(nullptr) + seconds : 0;
  while (g_term == 0) {
    if (until != 0 && fd >= 0 && ::time(nullptr) >= until) {
      ::close(fd);
      fd = -1;
      std::printf("stopped listening; hanging\n");
      std::fflush(stdout);
    }
    if (fd < 0) {
      ::usleep(200'000);
      continue;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    int c = ::accept(fd, nullptr, nullptr);
    if (c < 0) continue;
    (void)::write(c, answer.data(), answer.size());
    ::close(c);
    std::printf("served a connection\n");
    std::fflush(stdout);
  }
  std::printf("got SIGTERM, exiting\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGTERM, onTerm);
  std::string mode = argc > 1 ? argv[1] : "sleep";
  if (mode == "exit") {
    int code = argc > 2 ? std::atoi(argv[2]) : 0;
    std::printf("%s\n", argc > 3 ? argv[3] : "exiting");
    const char* mode_env = std::getenv("MODE");
    std::printf("MODE=%s\n", mode_env != nullptr ? mode_env : "");
    std::fprintf(stderr, "to stderr\n");
    std::fflush(stdout);
    return code;
  }
  if (mode == "serve") {
    return serve(argc > 2 ? std::atoi(argv[2]) : 8080, argc > 3 ? std::atoi(argv[3]) : 0);
  }
  if (mode == "netprobe") return vt_test::netprobe(argc > 2 ? std::atoi(argv[2]) : 8080, g_term);
  if (mode == "udp-listen") return vt_test::udpListen(argc > 2 ? std::atoi(argv[2]) : 9999, g_term);
  if (mode == "ask" && argc > 4) return vt_test::ask(argv[2], std::atoi(argv[3]), argv[4]);
  std::printf("sleeping\n");
  std::fflush(stdout);
  while (g_term == 0) ::pause();
  std::printf("got SIGTERM, exiting\n");
  return 0;
}
