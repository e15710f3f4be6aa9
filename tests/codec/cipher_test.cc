// Tests for codec/cipher: byte-for-byte against vectors produced by xpra 3.1.3's own code
// (tools/golden/crypto.py), in both directions, plus every malformed case on its own.

#include "codec/cipher.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tests/codec/testdata/crypto/vectors.h"

namespace {

using xr::ErrorCode;
using xr::Status;
using xr::crypto::Decryptor;
using xr::crypto::Encryptor;
using xr::crypto::Padding;
using xr::testing::CryptoRecord;
using xr::testing::LoadCryptoVectors;

// One golden stream: its parameters and frames in wire order.
struct Stream {
  Padding padding;
  std::string key, iv;
  struct Frame {
    std::string plain, wire;
    size_t index;
  };
  std::vector<Frame> frames;
};

uint32_t HeaderSize(const std::string& wire) {
  REQUIRE(wire.size() >= 8);
  const auto* p = reinterpret_cast<const unsigned char*>(wire.data());
  return (uint32_t{p[4]} << 24) | (uint32_t{p[5]} << 16) | (uint32_t{p[6]} << 8) | uint32_t{p[7]};
}

Stream LoadStream(const std::string& file, Padding padding) {
  const std::vector<CryptoRecord> recs = LoadCryptoVectors(file);
  REQUIRE(recs.size() >= 2);
  const CryptoRecord& params = recs[0];
  Stream s;
  s.padding = padding;
  s.iv = params.bytes("iv");
  auto key = xr::crypto::DeriveKey(params.bytes("secret"), params.bytes("salt"),
                                   static_cast<int>(params.num("iterations_int")));
  REQUIRE(key.ok());
  CHECK(*key == params.bytes("key"));  // our PBKDF2 == xpra's get_key()
  s.key = *key;
  for (size_t i = 1; i < recs.size(); ++i) {
    s.frames.push_back({recs[i].bytes("plain"), recs[i].bytes("wire"),
                        static_cast<size_t>(recs[i].num("index_int"))});
  }
  REQUIRE(static_cast<long>(s.frames.size()) == params.num("frames_int"));
  return s;
}

Stream Legacy() { return LoadStream("stream_legacy.txt", Padding::kLegacy); }
Stream Pkcs7() { return LoadStream("stream_pkcs7.txt", Padding::kPkcs7); }

std::unique_ptr<Encryptor> MakeEncryptor(const std::string& key, const std::string& iv, Padding p) {
  auto e = Encryptor::Create(key, iv, p);
  REQUIRE(e.ok());
  return std::move(*e);
}

std::unique_ptr<Decryptor> MakeDecryptor(const std::string& key, const std::string& iv, Padding p) {
  auto d = Decryptor::Create(key, iv, p);
  REQUIRE(d.ok());
  return std::move(*d);
}

// We encrypt the stream's plain payloads: each ciphertext equals xpra's, frame after frame.
void CheckEncryptMatches(const Stream& s) {
  auto enc = MakeEncryptor(s.key, s.iv, s.padding);
  for (const auto& f : s.frames) {
    CAPTURE(f.plain.size());
    REQUIRE(f.wire[0] == 'P');
    CHECK((static_cast<unsigned char>(f.wire[1]) & 0x2) != 0);  // FLAGS_CIPHER
    CHECK(HeaderSize(f.wire) == f.plain.size());                 // header keeps the unpadded size
    CHECK(f.wire.size() - 8 == xr::crypto::PaddedSize(f.plain.size()));
    std::string out = "prefix";
    REQUIRE(enc->Encrypt(f.plain, &out).ok());
    CHECK(out.substr(0, 6) == "prefix");
    CHECK(out.substr(6) == f.wire.substr(8));
  }
}

// We decrypt xpra's stream: each frame gives back the plain payload.
void CheckDecryptMatches(const Stream& s) {
  auto dec = MakeDecryptor(s.key, s.iv, s.padding);
  for (const auto& f : s.frames) {
    std::string out = "x";
    REQUIRE(dec->Decrypt(std::string_view(f.wire).substr(8), HeaderSize(f.wire), &out).ok());
    CHECK(out == "x" + f.plain);
  }
}

}  // namespace

TEST_CASE("PaddedSize adds 1..32 bytes, never 0") {
  CHECK(xr::crypto::PaddedSize(0) == 32);
  CHECK(xr::crypto::PaddedSize(1) == 32);
  CHECK(xr::crypto::PaddedSize(31) == 32);
  CHECK(xr::crypto::PaddedSize(32) == 64);
  CHECK(xr::crypto::PaddedSize(33) == 64);
  CHECK(xr::crypto::PaddedSize(1000) == 1024);
  for (size_t n = 0; n < 200; ++n) {
    const size_t p = xr::crypto::PaddedSize(n);
    CHECK(p % 32 == 0);
    CHECK(p - n >= 1);
    CHECK(p - n <= 32);
  }
}

TEST_CASE("padding names and negotiation follow xpra's choose_padding") {
  CHECK(xr::crypto::PaddingName(Padding::kLegacy) == "legacy");
  CHECK(xr::crypto::PaddingName(Padding::kPkcs7) == "PKCS#7");
  CHECK(*xr::crypto::ParsePadding("legacy") == Padding::kLegacy);
  CHECK(*xr::crypto::ParsePadding("PKCS#7") == Padding::kPkcs7);
  CHECK(xr::crypto::ParsePadding("pkcs7").error().code == ErrorCode::kUnsupported);
  // the peer's order decides: xpra 3.1 sends ["PKCS#7", "legacy"]
  CHECK(*xr::crypto::ChoosePadding({"PKCS#7", "legacy"}) == Padding::kPkcs7);
  CHECK(*xr::crypto::ChoosePadding({"legacy", "PKCS#7"}) == Padding::kLegacy);
  CHECK(*xr::crypto::ChoosePadding({"zero", "legacy"}) == Padding::kLegacy);
  CHECK(xr::crypto::ChoosePadding({"zero"}).error().code == ErrorCode::kUnsupported);
  CHECK(xr::crypto::ChoosePadding({}).error().code == ErrorCode::kUnsupported);
}

TEST_CASE("DeriveKey equals xpra's PBKDF2-HMAC-SHA1 key for every golden case") {
  const auto recs = LoadCryptoVectors("kdf.txt");
  REQUIRE(recs.size() == 6);
  for (const auto& r : recs) {
    auto key = xr::crypto::DeriveKey(r.bytes("secret"), r.bytes("salt"),
                                     static_cast<int>(r.num("iterations_int")));
    REQUIRE(key.ok());
    CHECK(key->size() == 32);
    CHECK(*key == r.bytes("key"));
  }
}

TEST_CASE("DeriveKey: iterations out of range") {
  for (int it : {-1, 0, 99, 10001, 1000000}) {
    CAPTURE(it);
    auto key = xr::crypto::DeriveKey("secret", "salt", it);
    REQUIRE_FALSE(key.ok());
    CHECK(key.error().code == ErrorCode::kMalformed);
  }
  CHECK(xr::crypto::DeriveKey("secret", "salt", 100).ok());
  CHECK(xr::crypto::DeriveKey("secret", "salt", 10000).ok());
}

TEST_CASE("DeriveKey: empty secret") {
  auto key = xr::crypto::DeriveKey("", "salt", 1000);
  REQUIRE_FALSE(key.ok());
  CHECK(key.error().code == ErrorCode::kMalformed);
}

TEST_CASE("legacy stream: we encrypt exactly as xpra's Protocol sends") { CheckEncryptMatches(Legacy()); }
TEST_CASE("legacy stream: we decrypt xpra's frames") { CheckDecryptMatches(Legacy()); }
TEST_CASE("PKCS#7 stream: we encrypt exactly as xpra's Protocol sends") { CheckEncryptMatches(Pkcs7()); }
TEST_CASE("PKCS#7 stream: we decrypt xpra's frames") { CheckDecryptMatches(Pkcs7()); }

TEST_CASE("the golden streams cover every padding edge and differ only by padding") {
  const Stream l = Legacy();
  const Stream p = Pkcs7();
  REQUIRE(l.frames.size() == p.frames.size());
  bool pad1 = false, pad16 = false, pad32 = false, chunk = false, main = false;
  for (size_t i = 0; i < l.frames.size(); ++i) {
    CHECK(l.frames[i].plain == p.frames[i].plain);
    const size_t pad = xr::crypto::PaddedSize(l.frames[i].plain.size()) - l.frames[i].plain.size();
    pad1 |= pad == 1;
    pad16 |= pad == 16;
    pad32 |= pad == 32;
    chunk |= l.frames[i].index > 0;
    main |= l.frames[i].index == 0;
    // same key, iv and payloads: only the pad bytes differ, yet the ciphertexts differ
    if (i == 0) CHECK(l.frames[i].wire != p.frames[i].wire);
  }
  CHECK(pad1);
  CHECK(pad16);
  CHECK(pad32);
  CHECK(chunk);
  CHECK(main);
}

TEST_CASE("the CBC stream continues across packets: frame k's iv is frame k-1's last block") {
  for (const Stream& s : {Legacy(), Pkcs7()}) {
    std::string iv = s.iv;
    for (const auto& f : s.frames) {
      // a fresh decryptor seeded with the previous ciphertext block decrypts this frame alone
      auto dec = MakeDecryptor(s.key, iv, s.padding);
      std::string out;
      REQUIRE(dec->Decrypt(std::string_view(f.wire).substr(8), f.plain.size(), &out).ok());
      CHECK(out == f.plain);
      iv = f.wire.substr(f.wire.size() - 16);
    }
    // ...and restarting from the original iv for a later frame does not work
    auto restart = MakeDecryptor(s.key, s.iv, s.padding);
    std::string out;
    const auto& f = s.frames[5];
    const bool ok = restart->Decrypt(std::string_view(f.wire).substr(8), f.plain.size(), &out).ok();
    CHECK((!ok || out != f.plain));
  }
}

TEST_CASE("round trip: empty, block-sized and large payloads, both paddings") {
  const std::string key = *xr::crypto::DeriveKey("k", "s", 1000);
  for (Padding pad : {Padding::kLegacy, Padding::kPkcs7}) {
    auto enc = MakeEncryptor(key, "0000000000000000", pad);
    auto dec = MakeDecryptor(key, "0000000000000000", pad);
    std::vector<std::string> plains = {"", std::string(16, 'a'), std::string(32, ' '),
                                       xr::crypto::RandomBytes(1 << 20), "tail"};
    for (const std::string& plain : plains) {
      std::string wire;
      REQUIRE(enc->Encrypt(plain, &wire).ok());
      CHECK(wire.size() == xr::crypto::PaddedSize(plain.size()));
      std::string back;
      REQUIRE(dec->Decrypt(wire, plain.size(), &back).ok());
      CHECK(back == plain);
    }
  }
}

TEST_CASE("bad legacy padding") {
  // A PKCS#7 sender and a legacy receiver: the pad bytes are 0x1f, not spaces.
  const std::string key = *xr::crypto::DeriveKey("k", "s", 1000);
  auto enc = MakeEncryptor(key, "0123456789abcdef", Padding::kPkcs7);
  auto dec = MakeDecryptor(key, "0123456789abcdef", Padding::kLegacy);
  std::string wire, out = "keep";
  REQUIRE(enc->Encrypt("a", &wire).ok());
  Status s = dec->Decrypt(wire, 1, &out);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == ErrorCode::kMalformed);
  CHECK(out == "keep");  // nothing appended on failure
}

TEST_CASE("bad PKCS#7 padding") {
  // A legacy sender and a PKCS#7 receiver: spaces (0x20) are valid PKCS#7 only for 32 pad
  // bytes, so a 1-byte payload (31 pad bytes, expected 0x1f) must be refused.
  const std::string key = *xr::crypto::DeriveKey("k", "s", 1000);
  auto enc = MakeEncryptor(key, "0123456789abcdef", Padding::kLegacy);
  auto dec = MakeDecryptor(key, "0123456789abcdef", Padding::kPkcs7);
  std::string wire, out;
  REQUIRE(enc->Encrypt("a", &wire).ok());
  Status s = dec->Decrypt(wire, 1, &out);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == ErrorCode::kMalformed);
  CHECK(out.empty());
}

TEST_CASE("bad PKCS#7 padding: the header size decides the pad count, not the last byte") {
  // 16 bytes are padded with 16 x 0x10; a header claiming 17 bytes expects 15 x 0x0f.
  const std::string key = *xr::crypto::DeriveKey("k", "s", 1000);
  auto enc = MakeEncryptor(key, "0123456789abcdef", Padding::kPkcs7);
  auto dec = MakeDecryptor(key, "0123456789abcdef", Padding::kPkcs7);
  std::string wire, out;
  REQUIRE(enc->Encrypt(std::string(16, 'q'), &wire).ok());
  CHECK(dec->Decrypt(wire, 17, &out).error().code == ErrorCode::kMalformed);
}

TEST_CASE("bad padding: a flipped bit in the last block breaks the padding and the stream") {
  const Stream s = Legacy();
  auto dec = MakeDecryptor(s.key, s.iv, s.padding);
  std::string cipher = s.frames[0].wire.substr(8);
  cipher[cipher.size() - 1] ^= 0x01;
  std::string out;
  CHECK(dec->Decrypt(cipher, s.frames[0].plain.size(), &out).error().code == ErrorCode::kMalformed);
  // the chaining has moved on: even the genuine next frame is refused now
  const auto& next = s.frames[1];
  CHECK_FALSE(dec->Decrypt(std::string_view(next.wire).substr(8), next.plain.size(), &out).ok());
  CHECK(out.empty());
}

TEST_CASE("wrong key: the padding check fails") {
  // With a wrong key every block decrypts to unrelated pseudo-random bytes, so the padding
  // check fails: the first golden frame has 1 payload byte and 31 pad bytes, which a wrong key
  // matches with probability 2^-248. (A 1-byte pad would pass with probability 1/256 and give
  // garbage plain text, which then fails decompression or packet decoding.)
  const Stream s = Legacy();
  const std::string wrong = *xr::crypto::DeriveKey("not the key", "salt", 1000);
  auto dec = MakeDecryptor(wrong, s.iv, s.padding);
  std::string out;
  Status st = dec->Decrypt(std::string_view(s.frames[0].wire).substr(8), s.frames[0].plain.size(), &out);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kMalformed);
  CHECK(out.empty());
  // every frame, each tried with a fresh wrong-key decryptor: refused or different text
  std::string iv = s.iv;
  for (const auto& f : s.frames) {
    auto d = MakeDecryptor(wrong, iv, s.padding);
    std::string o;
    const bool ok = d->Decrypt(std::string_view(f.wire).substr(8), f.plain.size(), &o).ok();
    CHECK((!ok || o != f.plain));
    iv = f.wire.substr(f.wire.size() - 16);
  }
}

TEST_CASE("wrong iv: the padding check passes but the first 16 bytes differ") {
  // CBC: the iv only enters the first block, so the padding (in the last block) is intact.
  const Stream s = Pkcs7();
  const Stream::Frame* longest = &s.frames[0];
  for (const auto& fr : s.frames) {
    if (fr.plain.size() > longest->plain.size()) longest = &fr;
  }
  const auto& f = *longest;  // the 1000-byte chunk
  REQUIRE(f.plain.size() == 1000);
  auto dec = MakeDecryptor(s.key, "ffffffffffffffff", s.padding);
  std::string out;
  // (the golden first frame has 1 byte only, so take the longest frame and give the
  // decryptor a wrong iv instead of the previous frame's last block)
  Status st = dec->Decrypt(std::string_view(f.wire).substr(8), f.plain.size(), &out);
  REQUIRE(st.ok());
  CHECK(out.substr(16) == f.plain.substr(16));
  CHECK(out.substr(0, 16) != f.plain.substr(0, 16));
}

TEST_CASE("ciphertext not a multiple of the block") {
  const Stream s = Legacy();
  auto dec = MakeDecryptor(s.key, s.iv, s.padding);
  const std::string good = s.frames[0].wire.substr(8);  // 32 bytes for 1 payload byte
  std::string out;
  // one byte short, one byte long, a 16-byte (AES block, not xpra block) ciphertext
  CHECK(dec->Decrypt(good.substr(0, 31), 1, &out).error().code == ErrorCode::kMalformed);
  CHECK(dec->Decrypt(good + "x", 1, &out).error().code == ErrorCode::kMalformed);
  CHECK(dec->Decrypt(good.substr(0, 16), 1, &out).error().code == ErrorCode::kMalformed);
  // a size that is a multiple but not PaddedSize(plain_size): 32 bytes cannot hold 32 bytes
  CHECK(dec->Decrypt(good, 32, &out).error().code == ErrorCode::kMalformed);
  CHECK(dec->Decrypt("", 0, &out).error().code == ErrorCode::kMalformed);
  CHECK(out.empty());
  // size errors are found before decrypting: the stream is still usable
  REQUIRE(dec->Decrypt(good, 1, &out).ok());
  CHECK(out == s.frames[0].plain);
}

TEST_CASE("Create rejects keys and ivs of the wrong size") {
  const std::string key(32, 'k');
  CHECK(Encryptor::Create(key, "short", Padding::kLegacy).error().code == ErrorCode::kMalformed);
  CHECK(Decryptor::Create(key, std::string(17, '0'), Padding::kLegacy).error().code == ErrorCode::kMalformed);
  CHECK(Encryptor::Create("password", std::string(16, '0'), Padding::kPkcs7).error().code == ErrorCode::kMalformed);
  CHECK(Decryptor::Create(std::string(16, 'k'), std::string(16, '0'), Padding::kPkcs7).error().code ==
        ErrorCode::kMalformed);
  CHECK(Encryptor::Create(key, std::string(16, '0'), Padding::kPkcs7).ok());
}

TEST_CASE("RandomIv is 16 lower-case hex characters; RandomBytes gives fresh bytes") {
  const std::string a = xr::crypto::RandomIv();
  const std::string b = xr::crypto::RandomIv();
  CHECK(a.size() == 16);
  CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(a != b);
  CHECK(xr::crypto::RandomBytes(0).empty());
  CHECK(xr::crypto::RandomBytes(64).size() == 64);
  CHECK(xr::crypto::RandomBytes(64) != xr::crypto::RandomBytes(64));
}
