// codec/cipher6: AES as xpra 6.x speaks it, against vectors from 6.5.3's own code
// (tools/golden/crypto6.py -> testdata/crypto6/vectors.h), and every malformed case on its own.
#include "codec/cipher6.h"

#include <doctest/doctest.h>

#include <functional>
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

// ---- the "encryption" dict of a 6.x hello (ParseParams): each malformed case on its own

namespace {

// A hello whose "encryption" dict is what 6.5.3's get_cipher_caps() writes, with `edit` applied.
Value Hello6(const std::function<void(Value&)>& edit = {}) {
  Value enc{Dict{}};
  enc.set("cipher", "AES");
  enc.set("mode", "CBC");
  enc.set("iv", kStreamIv);
  enc.set("key_salt", Value::bytes(Salt()));
  enc.set("key_size", 32);
  enc.set("key_hash", "SHA1");
  enc.set("key_stretch", "PBKDF2");
  enc.set("key_stretch_iterations", 10000);
  enc.set("padding", "PKCS#7");
  enc.set("padding.options", List{Value("PKCS#7")});
  enc.set("always-pad", false);
  enc.set("stream", true);
  if (edit) edit(enc);
  Value hello{Dict{}};
  hello.set("version", "6.5");
  hello.set("encryption", enc);
  return hello;
}

void ExpectRefused(const Value& hello, ErrorCode code, std::string_view words) {
  auto p = ParseParams(hello);
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().code == code);
  CHECK(p.error().message.find(words) != std::string::npos);
}

Value Without(std::string_view key) {
  return Hello6([key](Value& e) { e.erase_if([key](std::string_view k) { return k == key; }); });
}

}  // namespace

TEST_CASE("encryption dict: 6.5.3's own is read whole, defaults as its server's") {
  auto p = ParseParams(Hello6());
  REQUIRE(p.ok());
  CHECK(p->mode == Mode::kCbc);
  CHECK(p->iv == kStreamIv);
  CHECK(p->key_salt == Salt());
  CHECK(p->key_hash == KeyHash::kSha1);
  CHECK(p->key_size == 32);
  CHECK(p->iterations == 10000);
  CHECK(p->framing.stream);
  CHECK_FALSE(p->framing.always_pad);
  // Left out: mode CBC, key_hash SHA1, key_size 32, key_stretch PBKDF2, padding PKCS#7, stream true.
  Value bare = Hello6([](Value& e) {
    e.erase_if([](std::string_view k) {
      return k == "mode" || k == "key_hash" || k == "key_size" || k == "key_stretch" || k == "padding" ||
             k == "padding.options" || k == "always-pad" || k == "stream";
    });
  });
  auto d = ParseParams(bare);
  REQUIRE(d.ok());
  CHECK(d->mode == Mode::kCbc);
  CHECK(d->key_size == 32);
  CHECK(d->framing.stream);
  // CTR, per-packet IVs, SHA512, AES-128; "AES-CTR" in the cipher as xpra's get_mode() reads it.
  auto ctr = ParseParams(Hello6([](Value& e) {
    e.set("mode", "CTR");
    e.set("stream", false);
    e.set("key_hash", "sha512");
    e.set("key_size", 16);
  }));
  REQUIRE(ctr.ok());
  CHECK(ctr->mode == Mode::kCtr);
  CHECK_FALSE(ctr->framing.stream);
  CHECK(ctr->key_hash == KeyHash::kSha512);
  CHECK(ctr->key_size == 16);
  auto named = ParseParams(Hello6([](Value& e) {
    e.set("cipher", "AES-CTR");
    e.erase_if([](std::string_view k) { return k == "mode"; });
  }));
  REQUIRE(named.ok());
  CHECK(named->mode == Mode::kCtr);
}

TEST_CASE("encryption dict: no dict at all") {
  Value hello{Dict{}};
  hello.set("version", "6.5");
  ExpectRefused(hello, ErrorCode::kMalformed, "no encryption dict");
  hello.set("encryption", "AES");
  ExpectRefused(hello, ErrorCode::kMalformed, "no encryption dict");
}

TEST_CASE("encryption dict: a cipher other than AES") {
  ExpectRefused(Hello6([](Value& e) { e.set("cipher", "ChaCha20"); }), ErrorCode::kUnsupported, "unsupported cipher");
}

TEST_CASE("encryption dict: bad mode (GCM, which 6.5.3 no longer offers; garbage)") {
  ExpectRefused(Hello6([](Value& e) { e.set("mode", "GCM"); }), ErrorCode::kUnsupported, "unsupported AES mode 'GCM'");
  ExpectRefused(Hello6([](Value& e) { e.set("mode", "XTS\x01"); }), ErrorCode::kUnsupported, "unsupported AES mode");
}

TEST_CASE("encryption dict: bad iterations (below 1,000, above 1,000,000, missing, not a number)") {
  ExpectRefused(Hello6([](Value& e) { e.set("key_stretch_iterations", 999); }), ErrorCode::kMalformed,
                "key_stretch_iterations outside");
  ExpectRefused(Hello6([](Value& e) { e.set("key_stretch_iterations", 1000001); }), ErrorCode::kMalformed,
                "key_stretch_iterations outside");
  ExpectRefused(Without("key_stretch_iterations"), ErrorCode::kMalformed, "key_stretch_iterations outside");
  ExpectRefused(Hello6([](Value& e) { e.set("key_stretch_iterations", "10000"); }), ErrorCode::kMalformed,
                "key_stretch_iterations outside");
  for (int n : {1000, 1000000}) {
    CAPTURE(n);
    CHECK(ParseParams(Hello6([n](Value& e) { e.set("key_stretch_iterations", n); })).ok());
  }
}

TEST_CASE("encryption dict: missing iv") {
  ExpectRefused(Without("iv"), ErrorCode::kMalformed, "missing iv");
  ExpectRefused(Hello6([](Value& e) { e.set("iv", ""); }), ErrorCode::kMalformed, "missing iv");
  ExpectRefused(Hello6([](Value& e) { e.set("iv", 1234); }), ErrorCode::kMalformed, "missing iv");
}

TEST_CASE("encryption dict: wrong iv size") {
  ExpectRefused(Hello6([](Value& e) { e.set("iv", "0123456789abcde"); }), ErrorCode::kMalformed, "16 bytes");
  ExpectRefused(Hello6([](Value& e) { e.set("iv", "0123456789abcdef0"); }), ErrorCode::kMalformed, "16 bytes");
}

TEST_CASE("encryption dict: missing or out-of-bounds key_salt") {
  ExpectRefused(Without("key_salt"), ErrorCode::kMalformed, "missing key_salt");
  ExpectRefused(Hello6([](Value& e) { e.set("key_salt", Value::bytes(std::string(15, 's'))); }), ErrorCode::kMalformed,
                "key_salt outside");
  ExpectRefused(Hello6([](Value& e) { e.set("key_salt", Value::bytes(std::string(1025, 's'))); }),
                ErrorCode::kMalformed, "key_salt outside");
  CHECK(ParseParams(Hello6([](Value& e) { e.set("key_salt", Value::bytes(std::string(1024, 's'))); })).ok());
}

TEST_CASE("encryption dict: unknown key_hash") {
  ExpectRefused(Hello6([](Value& e) { e.set("key_hash", "MD5"); }), ErrorCode::kUnsupported, "unsupported key hash");
  ExpectRefused(Hello6([](Value& e) { e.set("key_hash", "SHA3_256"); }), ErrorCode::kUnsupported,
                "unsupported key hash");
}

TEST_CASE("encryption dict: bad key_size") {
  for (int n : {0, 8, 20, 64}) {
    CAPTURE(n);
    ExpectRefused(Hello6([n](Value& e) { e.set("key_size", n); }), ErrorCode::kMalformed, "invalid key_size");
  }
}

TEST_CASE("encryption dict: key stretching other than PBKDF2") {
  ExpectRefused(Hello6([](Value& e) { e.set("key_stretch", "scrypt"); }), ErrorCode::kUnsupported,
                "unsupported key stretching");
}

TEST_CASE("encryption dict: padding other than PKCS#7") {
  ExpectRefused(Hello6([](Value& e) { e.set("padding", "legacy"); }), ErrorCode::kUnsupported, "unsupported padding");
}

TEST_CASE("the relay's own parameters: the peer's framing, fresh iv and salt, 6.x's defaults, as a dict 6.x reads") {
  auto peer = ParseParams(Hello6([](Value& e) {
    e.set("mode", "CTR");
    e.set("stream", false);
    e.set("key_hash", "SHA256");
  }));
  REQUIRE(peer.ok());
  Params a = NewParams(*peer);
  Params b = NewParams(*peer);
  CHECK(a.mode == Mode::kCtr);
  CHECK_FALSE(a.framing.stream);
  CHECK(a.iv.size() == kIvSize);
  CHECK(a.key_salt.size() == kOwnSaltBytes);
  CHECK(a.iv != b.iv);
  CHECK(a.key_salt != b.key_salt);
  CHECK(a.key_hash == KeyHash::kSha1);
  CHECK(a.iterations == kDefaultIterations);
  // What the relay announces parses back to the same parameters (a 6.x client reads the same keys).
  Value hello{Dict{}};
  hello.set("encryption", ParamsDict(a));
  auto back = ParseParams(hello);
  REQUIRE(back.ok());
  CHECK(back->iv == a.iv);
  CHECK(back->key_salt == a.key_salt);
  CHECK(back->mode == a.mode);
  CHECK(back->framing.stream == a.framing.stream);
  CHECK(back->iterations == a.iterations);
  CHECK(CipherBlock(a.framing) == 0);
  CHECK(CipherBlock(Framing{Mode::kCbc, false, true}) == 16);
}
