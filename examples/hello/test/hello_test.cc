// Unit tests of hello's parsing and answers, without sockets.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "answer.h"
#include "config.h"
#include "http.h"

namespace plfm::hello {
namespace {

EnvLookup envOf(std::map<std::string, std::string> env) {
  return [env = std::move(env)](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
}

TEST(ConfigTest, Defaults) {
  auto c = configFromEnv(envOf({}));
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->port, 8443);
  EXPECT_EQ(c->health_port, 8080);
  EXPECT_EQ(c->cert_file, "/etc/hello/cert.pem");
  EXPECT_EQ(c->key_file, "/etc/hello/key.pem");
  EXPECT_EQ(c->secrets_file, "/run/secrets/platform.env");
  EXPECT_EQ(c->instance_id, "");
}

TEST(ConfigTest, FromEnv) {
  auto c = configFromEnv(envOf({{"PORT", "9443"},
                                {"HEALTH_PORT", "0"},
                                {"TLS_CERT_FILE", "/c"},
                                {"TLS_KEY_FILE", "/k"},
                                {"PLFM_INSTANCE_ID", "inst_1"},
                                {"PLFM_RELEASE_ID", "rel_1"},
                                {"GREETING", "hi"}}));
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->port, 9443);
  EXPECT_EQ(c->health_port, 0);
  EXPECT_EQ(c->cert_file, "/c");
  EXPECT_EQ(c->key_file, "/k");
  EXPECT_EQ(c->instance_id, "inst_1");
  EXPECT_EQ(c->release_id, "rel_1");
  EXPECT_EQ(c->greeting, "hi");
}

TEST(ConfigTest, BadPorts) {
  for (const char* bad : {"x", "65536", "-1", "80 ", "1e3"}) {
    auto c = configFromEnv(envOf({{"PORT", bad}}));
    ASSERT_FALSE(c) << bad;
    EXPECT_NE(c.error().message().find("PORT"), std::string::npos);
  }
  EXPECT_FALSE(configFromEnv(envOf({{"PORT", "8080"}, {"HEALTH_PORT", "8080"}})));
}

TEST(HttpTest, HeadLength) {
  EXPECT_FALSE(headLength("GET / HTTP/1.1\r\nHost: x\r\n"));
  EXPECT_EQ(headLength("GET / HTTP/1.1\r\n\r\nbody"), 18U);
}

TEST(HttpTest, ParsesRequestLine) {
  auto r = parseRequestHead("GET /healthz?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->method, "GET");
  EXPECT_EQ(r->path, "/healthz");
  EXPECT_TRUE(parseRequestHead("HEAD / HTTP/1.0\r\n\r\n"));
}

TEST(HttpTest, RejectsMalformed) {
  for (const char* bad :
       {"GET / HTTP/2\r\n\r\n", "GET http://x/ HTTP/1.1\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n", "GET /\r\n\r\n", "\x16\x03\x01 / HTTP/1.1\r\n\r\n"}) {
    EXPECT_FALSE(parseRequestHead(bad)) << bad;
  }
}

TEST(HttpTest, Serializes) {
  Response r;
  r.body = "ok\n";
  EXPECT_EQ(serialize(r, false),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\nok\n");
  EXPECT_EQ(serialize(r, true).find("ok\n"), std::string::npos);
  EXPECT_NE(serialize(r, true).find("Content-Length: 3\r\n"), std::string::npos);
}

TEST(AnswerTest, ClientText) {
  EXPECT_EQ(clientText(*net::IpEndpoint::parse("[2001:db8::1]:54321")), "[2001:db8::1]:54321");
  EXPECT_EQ(clientText(*net::IpEndpoint::parse("192.0.2.7:80")), "192.0.2.7:80");
  // How a dual-stack socket and a mixed-family PROXY header show IPv4.
  EXPECT_EQ(clientText(*net::IpEndpoint::parse("[::ffff:127.0.0.1]:4000")), "127.0.0.1:4000");
}

TEST(AnswerTest, RootBodyFormat) {
  Config c;
  c.greeting = "Hello from plfm-vt";
  c.instance_id = "inst_01";
  c.release_id = "rel_01";
  RequestContext ctx;
  ctx.client = *net::IpEndpoint::parse("[2001:db8::1]:54321");
  ctx.via_proxy = true;
  ctx.sni = "hello-pp.localhost";
  ctx.secrets_present = true;
  EXPECT_EQ(rootBody(c, ctx),
            "greeting: Hello from plfm-vt\n"
            "instance: inst_01\n"
            "release: rel_01\n"
            "secrets: present\n"
            "client: [2001:db8::1]:54321\n"
            "proxy: v2\n"
            "sni: hello-pp.localhost\n");
}

TEST(AnswerTest, UnsetValuesAreDashesAndControlBytesAreMasked) {
  Config c;
  c.greeting = "two\nlines";
  RequestContext ctx;
  ctx.client = *net::IpEndpoint::parse("192.0.2.1:1");
  EXPECT_EQ(rootBody(c, ctx),
            "greeting: two?lines\n"
            "instance: -\n"
            "release: -\n"
            "secrets: absent\n"
            "client: 192.0.2.1:1\n"
            "proxy: none\n"
            "sni: -\n");
}

TEST(AnswerTest, Routes) {
  Config c;
  RequestContext https;
  RequestContext health;
  health.listener = Listener::kHealth;
  EXPECT_EQ(answer({"GET", "/"}, c, https).status, 200);
  EXPECT_EQ(answer({"GET", "/healthz"}, c, https).body, "ok\n");
  EXPECT_EQ(answer({"GET", "/healthz"}, c, health).body, "ok\n");
  EXPECT_EQ(answer({"HEAD", "/healthz"}, c, health).status, 200);
  EXPECT_EQ(answer({"GET", "/"}, c, health).status, 404);
  EXPECT_EQ(answer({"GET", "/nope"}, c, https).status, 404);
  Response post = answer({"POST", "/"}, c, https);
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.allow, "GET, HEAD");
}

TEST(AnswerTest, StreamIsAPacedDownloadOfNSeconds) {
  EXPECT_EQ(streamSeconds("/stream/10"), 10);
  EXPECT_EQ(streamSeconds("/stream/60"), 60);
  for (const char* bad : {"/stream/", "/stream/0", "/stream/61", "/stream/07", "/stream/1x",
                          "/stream/100", "/streams/1", "/stream/-1"}) {
    EXPECT_EQ(streamSeconds(bad), std::nullopt) << bad;
  }
  Config c;
  RequestContext https;
  Response r = answer({"GET", "/stream/2"}, c, https);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 200U);
  EXPECT_EQ(r.body.substr(0, 10), "tick 0000\n");
  EXPECT_EQ(r.body.substr(190), "tick 0019\n");
  EXPECT_EQ(r.pace, std::chrono::milliseconds(100));
  EXPECT_EQ(r.chunk, 10U);
  RequestContext health;
  health.listener = Listener::kHealth;
  EXPECT_EQ(answer({"GET", "/stream/2"}, c, health).status, 404);  // HTTPS only
}

}  // namespace
}  // namespace plfm::hello
