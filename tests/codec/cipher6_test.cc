// codec/cipher6: AES as xpra 6.x speaks it, against vectors from 6.5.3's own code
// (tools/golden/crypto6.py -> testdata/crypto6/vectors.h), and every malformed case on its own.
#include "codec/cipher6.h"

#include <doctest/doctest.h>

#include <string>

#include "codec/cipher.h"
#include "tests/codec/testdata/crypto6/vectors.h"

using namespace xr;
using namespace xr::crypto6;

namespace {

std::string Unhex(std::string_view hex) {
  auto nib = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(nib(hex[i]) << 4 | nib(hex[i + 1])));
  return out;
}

const std::string kSecret = "relay-test-keyfile-secret";
std::string Salt() {
  std::string s;
  for (int i = 0; i < 64; ++i) s.push_back(static_cast<char>(i));
  return s;
}
const std::string kStreamIv = "0123456789abcdef";

std::string GoldenKey() { return Unhex(golden::kKeys[0].key_hex); }

Framing FramingOf(const golden::FrameCase& c) {
  Framing f;
  f.mode = *ParseMode(c.mode);
  f.stream = c.stream;
  return f;
}

}  // namespace

TEST_CASE("PBKDF2 keys as 6.5.3's get_key makes them: SHA1..SHA512, 16/24/32 bytes, 1,000..10,000 iterations") {
  for (const auto& k : golden::kKeys) {
    CAPTURE(k.hash);
    CAPTURE(k.iterations);
    auto hash = ParseKeyHash(k.hash);
    REQUIRE(hash.ok());
    auto key = DeriveKey(kSecret, Salt(), *hash, static_cast<size_t>(k.key_size), k.iterations);
    REQUIRE(key.ok());
    CHECK(*key == Unhex(k.key_hex));
  }
}

TEST_CASE("frames as 6.5.3 sends them: CBC and CTR, stream and per-packet IVs, byte-exact both ways") {
  for (const auto& c : golden::kFrames) {
    CAPTURE(c.mode);
    CAPTURE(c.stream);
    auto enc = Encryptor::Create(GoldenKey(), kStreamIv, FramingOf(c));
    auto dec = Decryptor::Create(GoldenKey(), kStreamIv, FramingOf(c));
    REQUIRE(enc.ok());
    REQUIRE(dec.ok());
    for (const auto& p : c.packets) {
      const std::string plain = Unhex(p.plain_hex), wire = Unhex(p.wire_hex);
      CAPTURE(plain.size());
      std::string out;
      uint32_t hsize = 0;
      REQUIRE((*enc)->EncryptWithIv(plain, Unhex(p.packet_iv_hex), &out, &hsize).ok());
      CHECK(hsize == p.header_size);
      CHECK(out == wire);
      CHECK(WireSize(FramingOf(c), p.header_size) == wire.size());
      std::string back;
      REQUIRE((*dec)->Decrypt(wire, p.header_size, &back).ok());
      CHECK(back == plain);
    }
  }
}

TEST_CASE("per-packet IVs from the RNG: every frame differs, each decrypts alone and in any order") {
  for (Mode m : {Mode::kCbc, Mode::kCtr}) {
    Framing f{m, false, false};
    auto enc = Encryptor::Create(GoldenKey(), "", f);
    auto dec = Decryptor::Create(GoldenKey(), "", f);
    REQUIRE(enc.ok());
    REQUIRE(dec.ok());
    std::string a, b;
    uint32_t ha = 0, hb = 0;
    REQUIRE((*enc)->Encrypt("same payload", &a, &ha).ok());
    REQUIRE((*enc)->Encrypt("same payload", &b, &hb).ok());
    CHECK(a != b);
    CHECK(ha == 12 + kIvSize);
    std::string out;
    REQUIRE((*dec)->Decrypt(b, hb, &out).ok());
    REQUIRE((*dec)->Decrypt(a, ha, &out).ok());
    CHECK(out == "same payloadsame payload");
  }
}

TEST_CASE("iterations below 6.2's 1,000 are refused") {
  auto k = DeriveKey(kSecret, Salt(), KeyHash::kSha1, 32, 999);
  REQUIRE(!k.ok());
  CHECK(k.error().message.find("[1000, 1000000]") != std::string::npos);
  CHECK(DeriveKey(kSecret, Salt(), KeyHash::kSha1, 32, 1000).ok());
}

TEST_CASE("iterations above 6.x's 1,000,000 are refused") {
  CHECK(!DeriveKey(kSecret, Salt(), KeyHash::kSha1, 32, 1000001).ok());
}

TEST_CASE("a key size other than 16, 24, 32 is refused") {
  CHECK(!DeriveKey(kSecret, Salt(), KeyHash::kSha1, 20, 1000).ok());
  CHECK(!Encryptor::Create(std::string(20, 'k'), kStreamIv, Framing{}).ok());
  CHECK(!Decryptor::Create(std::string(20, 'k'), kStreamIv, Framing{}).ok());
}

TEST_CASE("an empty secret is refused") {
  CHECK(!DeriveKey("", Salt(), KeyHash::kSha1, 32, 1000).ok());
}

TEST_CASE("modes other than CBC and CTR are refused with a reason naming them") {
  CHECK(*ParseMode("CBC") == Mode::kCbc);
  CHECK(*ParseMode("CTR") == Mode::kCtr);
  for (const char* m : {"GCM", "CFB", "cbc", "", "CBC\n"}) {
    auto r = ParseMode(m);
    REQUIRE(!r.ok());
    CHECK(r.error().code == ErrorCode::kUnsupported);
    CHECK(r.error().message.find("CBC and CTR") != std::string::npos);
  }
}

TEST_CASE("key hashes: SHA1..SHA512 in any case, nothing else") {
  CHECK(*ParseKeyHash("sha256") == KeyHash::kSha256);
  CHECK(*ParseKeyHash("SHA512") == KeyHash::kSha512);
  for (const char* h : {"MD5", "SHA3_512", "", "SHA1SHA1SHA1"}) CHECK(!ParseKeyHash(h).ok());
}

TEST_CASE("a stream iv that is not 16 bytes is refused") {
  CHECK(!Encryptor::Create(GoldenKey(), "short", Framing{}).ok());
  CHECK(!Decryptor::Create(GoldenKey(), std::string(17, 'i'), Framing{}).ok());
}

TEST_CASE("a frame whose size does not match its header is refused, nothing consumed") {
  const auto& c = golden::kFrames[0];  // CBC stream
  auto dec = Decryptor::Create(GoldenKey(), kStreamIv, FramingOf(c));
  REQUIRE(dec.ok());
  const std::string wire = Unhex(c.packets[0].wire_hex);
  std::string out;
  CHECK(!(*dec)->Decrypt(wire.substr(1), c.packets[0].header_size, &out).ok());
  CHECK(!(*dec)->Decrypt(wire, c.packets[0].header_size + 16, &out).ok());
  REQUIRE((*dec)->Decrypt(wire, c.packets[0].header_size, &out).ok());  // the stream did not move
  CHECK(out == Unhex(c.packets[0].plain_hex));
}

TEST_CASE("a per-packet frame shorter than its iv is refused; one of just the iv is an empty payload") {
  auto dec = Decryptor::Create(GoldenKey(), "", Framing{Mode::kCtr, false, false});
  REQUIRE(dec.ok());
  std::string out;
  CHECK(!(*dec)->Decrypt(std::string(15, 'x'), 15, &out).ok());
  CHECK((*dec)->Decrypt(std::string(16, 'x'), 16, &out).ok());
  CHECK(out.empty());
}

TEST_CASE("wrong key: invalid padding, nothing appended, and a broken stream stays broken") {
  const auto& c = golden::kFrames[0];  // CBC stream
  auto wrong = crypto::Pbkdf2Hmac("another secret", Salt(), "SHA1", 32, 1000);
  REQUIRE(wrong.ok());
  auto dec = Decryptor::Create(*wrong, kStreamIv, FramingOf(c));
  REQUIRE(dec.ok());
  std::string out;
  const auto& p = c.packets[5];
  auto s = (*dec)->Decrypt(Unhex(p.wire_hex), p.header_size, &out);
  REQUIRE(!s.ok());
  CHECK(s.error().message.find("wrong key") != std::string::npos);
  CHECK(out.empty());
  auto right = Decryptor::Create(GoldenKey(), kStreamIv, FramingOf(c));
  REQUIRE(right.ok());
  CHECK(!(*dec)->Decrypt(Unhex(c.packets[0].wire_hex), c.packets[0].header_size, &out).ok());
}

TEST_CASE("padding: CBC adds 1..16 bytes (a full block on a multiple), CTR none") {
  Framing cbc{Mode::kCbc, false, true}, ctr{Mode::kCtr, false, true};
  CHECK(PaddingSize(cbc, 1) == 15);
  CHECK(PaddingSize(cbc, 16) == 16);
  CHECK(PaddingSize(cbc, 17) == 15);
  CHECK(PaddingSize(ctr, 17) == 0);
  CHECK(WireSize(ctr, 100) == 100);
}
