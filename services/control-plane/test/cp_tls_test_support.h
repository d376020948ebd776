// CpTlsTest: the real control-plane binary over TLS needs a CA and a server
// certificate; tests that link plfm_http use this (cp_test_support.h stays
// free of http for the store tests).
#pragma once

#include <string>

#include "cp_test_support.h"
#include "plfm/http/pki.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::cp::testsupport {

// A CpTest with a temp dir and, in it, a local CA and a server certificate
// for localhost, ::1 and 127.0.0.1, made at test time (for the real binary
// over TLS).
class CpTlsTest : public CpTest {
 protected:
  explicit CpTlsTest(const std::string& dir_prefix) : dir_(dir_prefix) {}

  void SetUp() override {
    CpTest::SetUp();
    if (HasFatalFailure()) return;
    auto pki = http::writeLocalPki(dir_.path(), {"localhost", "::1", "127.0.0.1"});
    ASSERT_TRUE(pki.has_value()) << pki.error().toString();
    pki_ = *pki;
  }

  plfm::testing::TempDir dir_;
  http::LocalPki pki_;
};

}  // namespace plfm::cp::testsupport
