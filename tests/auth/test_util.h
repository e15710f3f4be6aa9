#pragma once
// Helpers for the auth tests: temporary directories and files, client responses.

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>

#include <doctest/doctest.h>

#include "auth/auth_module.h"
#include "codec/digest.h"

namespace xr::auth::testing {

// Every digest a client may be asked for.
inline const char* const kAllDigests[] = {"hmac",        "hmac+md5",    "hmac+sha1",   "hmac+sha224",
                                          "hmac+sha256", "hmac+sha384", "hmac+sha512", "xor"};

// A directory removed (with its content) by the destructor.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl = std::string(base != nullptr && std::string_view(base).size() < 60 ? base : "/tmp") +
                       "/xr-auth-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The directory.
  const std::string& path() const { return path_; }

  // path()/name.
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

  // Writes `content` to path()/name and returns the full path.
  std::string Write(std::string_view name, std::string_view content) const {
    const std::string p = file(name);
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    return p;
  }

 private:
  std::string path_;
};

// A salt never used before in this process (the modules refuse re-used salts).
inline std::string FreshSalt() {
  static std::atomic<int> counter{0};
  static const std::string run = [] {
    std::random_device rd;
    return std::to_string(rd()) + std::to_string(rd());
  }();
  // 64 characters, like a combined salt hexdigest.
  std::string s = run + "-" + std::to_string(counter++) + "-";
  while (s.size() < 64) s += static_cast<char>('a' + s.size() % 26);
  return s;
}

// password XOR salt[:len(password)], the "xor" response (computed here, independently).
inline std::string XorResponse(std::string_view password, std::string_view salt) {
  std::string out(password);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(out[i] ^ (i < salt.size() ? salt[i] : 0));
  return out;
}

// The request a client holding `password` sends for `digest`, over a fresh salt.
inline AuthRequest ClientRequest(std::string_view username, std::string_view digest, std::string_view password) {
  AuthRequest req;
  req.username = std::string(username);
  req.digest = std::string(digest);
  req.salt = FreshSalt();
  if (digest == "xor") {
    req.response = XorResponse(password, req.salt);
  } else {
    Expected<std::string> r = xr::digest::ComputeResponse(digest, password, req.salt);
    req.response = r.ok() ? r.value() : std::string("compute-response-failed");
  }
  req.peer = "127.0.0.1:5555";
  return req;
}

// For every digest: `password` is accepted for `username` (the result is returned for the last
// one), a wrong password is refused with kAuthFailed and the log detail never shows a password.
inline AuthResult ExpectAcceptsOnly(AuthModule& m, std::string_view username, std::string_view password) {
  AuthResult last;
  for (const char* digest : kAllDigests) {
    CAPTURE(digest);
    Expected<AuthResult> ok = m.Authenticate(ClientRequest(username, digest, password));
    if (!ok.ok()) FAIL_CHECK("refused: " << ok.error().message);
    if (ok.ok()) last = ok.value();
    const std::string wrong = std::string(password) + "x";
    Expected<AuthResult> bad = m.Authenticate(ClientRequest(username, digest, wrong));
    REQUIRE(!bad.ok());
    CHECK(bad.error().code == ErrorCode::kAuthFailed);
    CHECK(bad.error().message.find(std::string(password)) == std::string::npos);
    Expected<AuthResult> bad2 = m.Authenticate(ClientRequest(username, digest, "completely-different"));
    CHECK(!bad2.ok());
  }
  return last;
}

}  // namespace xr::auth::testing
