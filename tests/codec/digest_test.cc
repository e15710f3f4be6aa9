// Tests for codec/digest against vectors produced by xpra 3.1.3's own code
// (tools/golden/crypto.py): salt combination, every digest's response, and a full client-side
// challenge response as XpraClientBase.send_challenge_reply() computes it.

#include "codec/digest.h"

#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include "tests/codec/testdata/crypto/vectors.h"

namespace {

using xr::ErrorCode;
using xr::testing::LoadCryptoVectors;

std::vector<std::string> SplitCsv(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(item);
  return out;
}

const char* const kAll[] = {"xor", "hmac", "hmac+md5", "hmac+sha1", "hmac+sha224",
                            "hmac+sha256", "hmac+sha384", "hmac+sha512"};

}  // namespace

TEST_CASE("IsSupported: the hmac family and xor only") {
  for (const char* d : kAll) CHECK(xr::digest::IsSupported(d));
  for (const char* d : {"des", "hmac+sha3_512", "hmac+blake2b", "hmac+", "HMAC", "sha512", "", "kerberos"}) {
    CAPTURE(d);
    CHECK_FALSE(xr::digest::IsSupported(d));
  }
}

TEST_CASE("ChooseDigest picks what xpra's choose_digest picks from a real client's lists") {
  const auto recs = LoadCryptoVectors("challenge.txt");
  const auto& lists = recs.back();
  const auto digests = SplitCsv(lists.raw("client_digests_str"));
  const auto salt_digests = SplitCsv(lists.raw("client_salt_digests_str"));
  REQUIRE(digests.size() > 5);
  CHECK(xr::digest::ChooseDigest(digests, false) == lists.raw("chosen_digest_str"));
  CHECK(xr::digest::ChooseDigest(digests, true) == lists.raw("chosen_digest_str"));
  CHECK(xr::digest::ChooseDigest(salt_digests, false) == lists.raw("chosen_salt_digest_str"));
}

TEST_CASE("ChooseDigest order, legacy 'hmac' and xor") {
  using V = std::vector<std::string>;
  CHECK(xr::digest::ChooseDigest(V{"hmac+md5", "hmac+sha1", "hmac+sha224"}, false) == "hmac+sha224");
  CHECK(xr::digest::ChooseDigest(V{"hmac+sha256", "hmac+sha384"}, false) == "hmac+sha384");
  CHECK(xr::digest::ChooseDigest(V{"hmac", "hmac+md5"}, false) == "hmac+md5");
  CHECK(xr::digest::ChooseDigest(V{"hmac"}, false) == "hmac");  // xpra's default for a missing key
  CHECK(xr::digest::ChooseDigest(V{"xor", "hmac"}, true) == "hmac");
  CHECK(xr::digest::ChooseDigest(V{"xor"}, true) == "xor");
  CHECK(xr::digest::ChooseDigest(V{"xor"}, false) == "");
  CHECK(xr::digest::ChooseDigest(V{"des", "hmac+sha3_256"}, true) == "");
  CHECK(xr::digest::ChooseDigest(V{}, true) == "");
}

TEST_CASE("CombineSalts equals xpra's gendigest(salt_digest, client_salt, server_salt)") {
  const auto recs = LoadCryptoVectors("salts.txt");
  REQUIRE(recs.size() == 10);
  for (const auto& r : recs) {
    const std::string sd = r.raw("salt_digest_str");
    CAPTURE(sd);
    auto combined = xr::digest::CombineSalts(sd, r.bytes("client_salt"), r.bytes("server_salt"));
    REQUIRE(combined.ok());
    CHECK(*combined == r.bytes("combined"));
    if (sd != "xor") {
      // hexdigest text: lower-case hex of the hash size
      CHECK(combined->find_first_not_of("0123456789abcdef") == std::string::npos);
    } else {
      CHECK(combined->size() == r.bytes("client_salt").size());
    }
  }
}

TEST_CASE("ComputeResponse equals xpra's gendigest for every digest; VerifyResponse accepts it") {
  const auto recs = LoadCryptoVectors("digests.txt");
  REQUIRE(recs.size() == 4 * 8);
  for (const auto& r : recs) {
    const std::string d = r.raw("digest_str");
    const std::string password = r.bytes("password");
    const std::string salt = r.bytes("salt");
    const std::string golden = r.bytes("response");
    CAPTURE(d);
    auto response = xr::digest::ComputeResponse(d, password, salt);
    REQUIRE(response.ok());
    CHECK(*response == golden);
    CHECK(xr::digest::VerifyResponse(d, password, salt, golden));
    // one flipped bit, a truncated response, a wrong password: refused
    std::string flipped = golden;
    flipped[flipped.size() / 2] ^= 0x01;
    CHECK_FALSE(xr::digest::VerifyResponse(d, password, salt, flipped));
    CHECK_FALSE(xr::digest::VerifyResponse(d, password, salt, golden.substr(0, golden.size() - 1)));
    CHECK_FALSE(xr::digest::VerifyResponse(d, password + "x", salt, golden));
  }
}

TEST_CASE("full client-side challenge response as xpra's send_challenge_reply computes it") {
  // challenge = ["challenge", server_salt, "", digest, salt_digest, "password"]; the client
  // picks client_salt, combines the salts, answers; xpra's server-side authenticators accepted
  // every one of these when the vectors were generated.
  const auto recs = LoadCryptoVectors("challenge.txt");
  REQUIRE(recs.size() == 6 * 3 + 1);
  for (size_t i = 0; i + 1 < recs.size(); ++i) {
    const auto& r = recs[i];
    const std::string digest = r.raw("digest_str");
    const std::string salt_digest = r.raw("salt_digest_str");
    CAPTURE(digest);
    CAPTURE(salt_digest);
    const std::string password = r.bytes("password");
    const std::string client_salt = r.bytes("client_salt");
    // an hmac salt digest: the client sends 32 random bytes of its own
    CHECK(client_salt.size() == 32);
    auto combined = xr::digest::CombineSalts(salt_digest, client_salt, r.bytes("server_salt"));
    REQUIRE(combined.ok());
    auto response = xr::digest::ComputeResponse(digest, password, *combined);
    REQUIRE(response.ok());
    CHECK(*response == r.bytes("response"));
    // and the server side
    CHECK(xr::digest::VerifyResponse(digest, password, *combined, r.bytes("response")));
    if (digest == "xor") {
      auto recovered = xr::digest::RecoverXorPassword(r.bytes("response"), *combined);
      REQUIRE(recovered.ok());
      CHECK(*recovered == password);
    }
  }
}

TEST_CASE("unsupported digest") {
  for (const char* d : {"des", "hmac+sha3_512", "kerberos", ""}) {
    CAPTURE(d);
    auto r = xr::digest::ComputeResponse(d, "password", "salt");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kUnsupported);
    auto c = xr::digest::CombineSalts(d, "client", "server");
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().code == ErrorCode::kUnsupported);
    CHECK_FALSE(xr::digest::VerifyResponse(d, "password", "salt", "anything"));
  }
}

TEST_CASE("empty password") {
  for (const char* d : kAll) {
    CAPTURE(d);
    auto r = xr::digest::ComputeResponse(d, "", "salt");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kMalformed);
    // xpra's verify_digest() refuses an empty password whatever the response
    CHECK_FALSE(xr::digest::VerifyResponse(d, "", "salt", ""));
    CHECK_FALSE(xr::digest::VerifyResponse(d, "", "salt", "00"));
  }
}

TEST_CASE("empty salts and responses") {
  CHECK(xr::digest::ComputeResponse("hmac+sha256", "pw", "").error().code == ErrorCode::kMalformed);
  CHECK(xr::digest::CombineSalts("hmac+sha256", "", "server").error().code == ErrorCode::kMalformed);
  CHECK(xr::digest::CombineSalts("xor", "client", "").error().code == ErrorCode::kMalformed);
  CHECK(xr::digest::RecoverXorPassword("", "salt").error().code == ErrorCode::kMalformed);
  CHECK_FALSE(xr::digest::VerifyResponse("hmac+sha256", "pw", "salt", ""));
}

TEST_CASE("xor pads the salt with NULs beyond its length and cuts it otherwise") {
  auto longer = xr::digest::ComputeResponse("xor", std::string("abcd"), std::string("\x01\x02", 2));
  REQUIRE(longer.ok());
  CHECK(*longer == std::string("\x60\x60" "cd", 4));
  auto shorter = xr::digest::ComputeResponse("xor", std::string("ab"), std::string("\x01\x02\x03\x04", 4));
  REQUIRE(shorter.ok());
  CHECK(*shorter == std::string("\x60\x60", 2));
}

TEST_CASE("ConstantTimeEquals") {
  CHECK(xr::digest::ConstantTimeEquals("", ""));
  CHECK(xr::digest::ConstantTimeEquals("abc", "abc"));
  CHECK(xr::digest::ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0b", 3)));
  CHECK_FALSE(xr::digest::ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0c", 3)));
  CHECK_FALSE(xr::digest::ConstantTimeEquals("abc", "abd"));
  CHECK_FALSE(xr::digest::ConstantTimeEquals("abc", "abcd"));  // a prefix is not equal
  CHECK_FALSE(xr::digest::ConstantTimeEquals("abcd", "abc"));
  CHECK_FALSE(xr::digest::ConstantTimeEquals("", "a"));
  CHECK_FALSE(xr::digest::ConstantTimeEquals("a", ""));
}
