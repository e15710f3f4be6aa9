#include "codec/packet.h"

#include <doctest/doctest.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "codec/cipher.h"
#include "codec/compression.h"
#include "codec/frame_reader.h"
#include "codec/header.h"
#include "codec/rencode.h"
#include "codec/rencodeplus.h"
#include "tests/codec/framing_test_util.h"

namespace xr {
namespace {

using framing_test::ReadGolden;
using framing_test::Header;

// ---- data generators, the same as tools/golden/framing.py ----------------------------------

std::string LcgBytes(size_t n, uint32_t seed) {
  uint64_t x = seed;
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    x = (x * 1103515245u + 12345u) & 0x7fffffff;
    out[i] = static_cast<char>((x >> 16) & 0xff);
  }
  return out;
}

std::string DrawPixels(int width, int height) {
  size_t runs = static_cast<size_t>(width / 8) * static_cast<size_t>(height);
  std::string colors = LcgBytes(runs * 3, 1);
  std::string out;
  for (size_t r = 0; r < runs; ++r) {
    std::string px = colors.substr(r * 3, 3) + "\xff";
    for (int i = 0; i < 8; ++i) out += px;
  }
  return out;
}

std::string ClipboardText(size_t n) {
  std::string s = LcgBytes(n, 2);
  for (char& c : s) c = static_cast<char>('a' + static_cast<uint8_t>(c) % 26);
  return s;
}

std::string BigBlob(size_t n, uint32_t seed) {
  std::string s = LcgBytes(n, seed);
  for (char& c : s) c = static_cast<char>(static_cast<uint8_t>(c) & 0x0f);
  return s;
}

constexpr int kDrawW = 160;
constexpr int kDrawH = 160;

// ---- expected packets (tools/golden/framing.py) ---------------------------------------------

// Python True/False: rencode keeps bools, xpra's bencode writes them as 1/0.
Value Bool(bool b, bool bencoded) { return bencoded ? Value(b ? 1 : 0) : Value(b); }

Value List_(std::initializer_list<Value> items) { return Value(List(items)); }

Value Hello(bool bencoded) {
  Dict d;
  auto add = [&](const char* k, Value v) { d.emplace_back(Value(k), std::move(v)); };
  add("version", "3.1.3");
  add("rencode", Bool(true, bencoded));
  add("bencode", Bool(true, bencoded));
  add("yaml", Bool(false, bencoded));
  add("lz4", Bool(true, bencoded));
  add("zlib", Bool(true, bencoded));
  add("compressors", List_({"zlib", "lz4"}));
  add("compression_level", 1);
  add("encodings", List_({"rgb24", "rgb32", "png", "jpeg", "webp", "h264"}));
  add("desktop_size", List_({1920, 1080}));
  add("screen_sizes",
      List_({List_({":0.0", 1920, 1080, 508, 286, List_({List_({"DP-1", 0, 0, 1920, 1080, 508, 286})}), 0, 0, 1920,
                    1080})}));
  add("dpi", -1);
  add("uuid", "3f2a8c1e9b7d4e6fa0c5d2b8e1f47a93");
  add("username", "alice");
  add("display", ":100");
  add("platform", "linux");
  add("build.revision", 26000);
  add("start_time", 1700000000123LL);
  add("big", 1LL << 40);
  add("digest", List_({"hmac", "hmac+sha256", "xor"}));
  add("salt-digest", List_({"hmac+sha256", "xor"}));
  add("clipboard", Bool(true, bencoded));
  add("notifications", Bool(true, bencoded));
  add("cursors", Bool(true, bencoded));
  add("bell", Bool(true, bencoded));
  add("keyboard", Bool(true, bencoded));
  add("xkbmap_layout", "us");
  add("xkbmap_variant", "");
  add("sound.receive", Bool(false, bencoded));
  add("encoding.rgb_lz4", Bool(true, bencoded));
  add("encoding.transparency", Bool(true, bencoded));
  add("websocket.multi-packet", Bool(true, bencoded));
  return List_({"hello", Value(std::move(d))});
}

Value Ping() { return List_({"ping", 1700000000123LL, 1700000000, ""}); }
Value PingEcho() { return List_({"ping_echo", 1700000000123LL, 12, 34, 56, 7890, 0}); }
Value Ping64() { return List_({"ping", 1700000000123LL, 1700000000, Value::text(std::string(43, 'p'))}); }

// Text and Bytes compare equal after this (rencode has one string type; decoders may pick either).
Value Norm(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kText: return Value::bytes(v.as_string());
    case Value::Kind::kList: {
      List out;
      for (const auto& e : v.as_list()) out.push_back(Norm(e));
      return Value(std::move(out));
    }
    case Value::Kind::kDict: {
      Dict out;
      for (const auto& [k, e] : v.as_dict()) out.emplace_back(Norm(k), Norm(e));
      return Value(std::move(out));
    }
    default: return v;
  }
}

// ---- helpers -------------------------------------------------------------------------------

RawFrame Frame(uint8_t flags, uint8_t level, uint8_t index, std::string payload) {
  RawFrame f;
  f.header = FrameHeader{flags, level, index, static_cast<uint32_t>(payload.size())};
  f.payload = std::move(payload);
  return f;
}

std::string Rencoded(const Value& v) {
  std::string out;
  REQUIRE(rencode::Encode(v, &out).ok());
  return out;
}

struct Decoded {
  std::vector<Value> packets;
  std::vector<Encoding> encodings;
  std::optional<Error> error;
};

// Bytes -> FrameReader -> PacketDecoder, fed `step` bytes at a time (0 = all at once).
Decoded DecodeStream(const std::string& data, size_t step, crypto::Decryptor* dec = nullptr, FrameLimits limits = {}) {
  FrameReader reader(limits);
  PacketDecoder decoder(limits);
  decoder.set_decryptor(dec);
  Decoded out;
  size_t pos = 0;
  do {
    size_t n = step == 0 ? data.size() : std::min(step, data.size() - pos);
    reader.Feed(std::string_view(data).substr(pos, n));
    pos += n;
    while (true) {
      auto f = reader.Next();
      if (!f.ok()) {
        out.error = f.error();
        return out;
      }
      if (!f->has_value()) break;
      auto p = decoder.Push(std::move(**f));
      if (!p.ok()) {
        out.error = p.error();
        return out;
      }
      if (p->has_value()) {
        out.packets.push_back(std::move(**p));
        out.encodings.push_back(decoder.last_encoding());
      }
    }
  } while (pos < data.size());
  CHECK(reader.buffered() == 0);
  CHECK(decoder.pending_chunks() == 0);
  return out;
}

// Decodes a golden file whole and one byte at a time; both must give the same packets.
std::vector<Value> DecodeGolden(const std::string& name, crypto::Decryptor* (*make_dec)() = nullptr) {
  std::string data = ReadGolden(name);
  std::unique_ptr<crypto::Decryptor> d1(make_dec ? make_dec() : nullptr);
  Decoded whole = DecodeStream(data, 0, d1.get());
  REQUIRE_MESSAGE(!whole.error.has_value(), name << ": " << (whole.error ? whole.error->message : ""));
  std::unique_ptr<crypto::Decryptor> d2(make_dec ? make_dec() : nullptr);
  Decoded bytewise = DecodeStream(data, 1, d2.get());
  REQUIRE(!bytewise.error.has_value());
  REQUIRE(whole.packets.size() == bytewise.packets.size());
  for (size_t i = 0; i < whole.packets.size(); ++i) CHECK(whole.packets[i] == bytewise.packets[i]);
  return whole.packets;
}

void CheckSame(const Value& got, const Value& want) {
  Value g = Norm(got), w = Norm(want);
  CHECK_MESSAGE(g == w, "got " << g.repr(2000) << "\nwant " << w.repr(2000));
}

std::string DrawChunk() {
  std::string chunk;
  auto lb = Compress(Compressor::kLz4, 1, DrawPixels(kDrawW, kDrawH), &chunk);
  REQUIRE(lb.ok());
  return chunk;
}

Value Draw(int seq) {
  Dict opts;
  opts.emplace_back(Value("rgb_format"), Value("BGRX"));
  opts.emplace_back(Value("lz4"), Value(1));
  return List_({"draw", 3, 10, 20, kDrawW, kDrawH, Value::bytes("rgb32"), Value::bytes(DrawChunk()), seq,
                kDrawW * 4, Value(std::move(opts))});
}

// ---- golden packets ------------------------------------------------------------------------

TEST_CASE("packet: golden plain rencode and bencode packets") {
  auto p = DecodeGolden("rencode_hello.bin");
  REQUIRE(p.size() == 1);
  CheckSame(p[0], Hello(false));
  p = DecodeGolden("bencode_hello.bin");
  REQUIRE(p.size() == 1);
  CheckSame(p[0], Hello(true));
  p = DecodeGolden("rencode_ping.bin");
  REQUIRE(p.size() == 1);
  CheckSame(p[0], Ping());
  p = DecodeGolden("bencode_ping_echo.bin");
  REQUIRE(p.size() == 1);
  CheckSame(p[0], PingEcho());
}

TEST_CASE("packet: last_encoding follows the frame flags") {
  Decoded d = DecodeStream(ReadGolden("rencode_ping.bin") + ReadGolden("bencode_ping_echo.bin"), 0);
  REQUIRE(!d.error.has_value());
  REQUIRE(d.encodings.size() == 2);
  CHECK(d.encodings[0] == Encoding::kRencode);
  CHECK(d.encodings[1] == Encoding::kBencode);
}

TEST_CASE("packet: golden zlib and lz4 compressed packets") {
  for (const char* name : {"zlib_hello.bin", "lz4_hello.bin", "lz4_9_hello.bin"}) {
    CAPTURE(std::string(name));
    auto p = DecodeGolden(name);
    REQUIRE(p.size() == 1);
    CheckSame(p[0], Hello(false));
  }
  for (const char* name : {"zlib6_bencode_hello.bin", "lz4_5_hello.bin"}) {
    CAPTURE(std::string(name));
    auto p = DecodeGolden(name);
    REQUIRE(p.size() == 1);
    CheckSame(p[0], Hello(true));
  }
}

TEST_CASE("packet: re-encoding golden packets gives xpra's exact bytes") {
  struct Case {
    std::string file;
    EncodeOptions opts;
  };
  const Case cases[] = {
      {"rencode_hello.bin", {Encoding::kRencode, Compressor::kNone, 0}},
      {"bencode_hello.bin", {Encoding::kBencode, Compressor::kNone, 0}},
      {"rencode_ping.bin", {Encoding::kRencode, Compressor::kNone, 0}},
      {"bencode_ping_echo.bin", {Encoding::kBencode, Compressor::kNone, 0}},
      {"zlib_hello.bin", {Encoding::kRencode, Compressor::kZlib, 1}},
      {"zlib6_bencode_hello.bin", {Encoding::kBencode, Compressor::kZlib, 6}},
      {"lz4_hello.bin", {Encoding::kRencode, Compressor::kLz4, 1}},
      {"lz4_5_hello.bin", {Encoding::kBencode, Compressor::kLz4, 5}},
      {"lz4_9_hello.bin", {Encoding::kRencode, Compressor::kLz4, 9}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.file);
    std::string golden = ReadGolden(c.file);
    auto p = DecodeGolden(c.file);
    REQUIRE(p.size() == 1);
    std::string out = "x";
    REQUIRE(EncodePacket(p[0], c.opts, nullptr, &out).ok());
    CHECK(out == "x" + golden);
  }
}

TEST_CASE("packet: a small packet is not compressed, as in xpra") {
  std::string out;
  REQUIRE(EncodePacket(Ping(), {Encoding::kRencode, Compressor::kLz4, 1}, nullptr, &out).ok());
  CHECK(out == ReadGolden("rencode_ping.bin"));
}

TEST_CASE("packet: golden chunked draw packet (pixels as xpra's rgb encoder sends them)") {
  auto p = DecodeGolden("chunked_draw.bin");
  REQUIRE(p.size() == 1);
  CheckSame(p[0], Draw(5));
  // The chunk holds the lz4 block the client's draw thread decompresses.
  const std::string& chunk = p[0].as_list()[7].as_string();
  auto pixels = Decompress(level_flags::kLz4 | 1, chunk, 1u << 20);
  REQUIRE(pixels.ok());
  CHECK(*pixels == DrawPixels(kDrawW, kDrawH));
  CHECK(p[0].as_list()[7].is_bytes());
}

TEST_CASE("packet: golden chunk compressed by the sender's network layer is decompressed") {
  auto p = DecodeGolden("chunked_clipboard.bin");
  REQUIRE(p.size() == 1);
  CheckSame(p[0], List_({"clipboard-contents", 7, "CLIPBOARD", "UTF8_STRING", 8, "bytes",
                         Value::bytes(ClipboardText(65536))}));
}

TEST_CASE("packet: golden packet with three chunks (the most xpra accepts)") {
  auto p = DecodeGolden("chunked_three.bin");
  REQUIRE(p.size() == 1);
  CheckSame(p[0], List_({"xr-test-chunks", Value::bytes(BigBlob(5000, 3)), Value::bytes(BigBlob(6000, 4)),
                         Value::bytes(BigBlob(7000, 5)), 42}));
}

TEST_CASE("packet: golden stream of concatenated frames") {
  auto p = DecodeGolden("multi_frames.bin");
  REQUIRE(p.size() == 5);
  CheckSame(p[0], Ping());
  CheckSame(p[1], Draw(6));
  CheckSame(p[2], PingEcho());
  CheckSame(p[3], Hello(false));
  CheckSame(p[4], Draw(7));
}

TEST_CASE("packet: golden stream split at every offset into two reads") {
  std::string data = ReadGolden("chunked_three.bin") + ReadGolden("rencode_ping.bin");
  for (size_t cut = 0; cut <= data.size(); cut += 97) {
    FrameReader reader;
    PacketDecoder decoder;
    std::vector<Value> packets;
    for (std::string_view part : {std::string_view(data).substr(0, cut), std::string_view(data).substr(cut)}) {
      reader.Feed(part);
      while (true) {
        auto f = reader.Next();
        REQUIRE(f.ok());
        if (!f->has_value()) break;
        auto pk = decoder.Push(std::move(**f));
        REQUIRE(pk.ok());
        if (pk->has_value()) packets.push_back(std::move(**pk));
      }
    }
    REQUIRE(packets.size() == 2);
    CheckSame(packets[1], Ping());
  }
}

TEST_CASE("packet: stream truncated at every offset gives only the complete packets, no error") {
  std::string first = ReadGolden("chunked_three.bin");
  std::string data = first + ReadGolden("rencode_ping.bin");
  for (size_t cut = 0; cut < data.size(); ++cut) {
    Decoded d;
    FrameReader reader;
    PacketDecoder decoder;
    reader.Feed(std::string_view(data).substr(0, cut));
    while (true) {
      auto f = reader.Next();
      REQUIRE(f.ok());
      if (!f->has_value()) break;
      auto p = decoder.Push(std::move(**f));
      REQUIRE(p.ok());
      if (p->has_value()) d.packets.push_back(std::move(**p));
    }
    REQUIRE(d.packets.size() == (cut >= first.size() ? 1u : 0u));
  }
}

// ---- encryption ----------------------------------------------------------------------------

struct CipherParams {
  const char* iv;
  crypto::Padding padding;
};
constexpr const char* kPassword = "relay-secret";
constexpr const char* kKeySalt = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
constexpr CipherParams kPkcs7{"0123456789abcdef", crypto::Padding::kPkcs7};
constexpr CipherParams kLegacy{"fedcba9876543210", crypto::Padding::kLegacy};

std::string Key() {
  auto key = crypto::DeriveKey(kPassword, kKeySalt, 1000);
  REQUIRE(key.ok());
  return *key;
}

crypto::Decryptor* MakePkcs7Decryptor() {
  auto d = crypto::Decryptor::Create(Key(), kPkcs7.iv, kPkcs7.padding);
  REQUIRE(d.ok());
  return d->release();
}

crypto::Decryptor* MakeLegacyDecryptor() {
  auto d = crypto::Decryptor::Create(Key(), kLegacy.iv, kLegacy.padding);
  REQUIRE(d.ok());
  return d->release();
}

TEST_CASE("packet: golden AES stream with PKCS#7 padding, chunk encrypted on its own") {
  auto p = DecodeGolden("encrypted_pkcs7.bin", &MakePkcs7Decryptor);
  REQUIRE(p.size() == 5);
  CheckSame(p[0], Ping());
  CheckSame(p[1], Hello(false));
  CheckSame(p[2], Draw(8));
  CheckSame(p[3], PingEcho());
  CheckSame(p[4], Ping64());  // 64-byte payload: a full 32-byte pad
}

TEST_CASE("packet: golden AES stream with legacy (space) padding") {
  auto p = DecodeGolden("encrypted_legacy.bin", &MakeLegacyDecryptor);
  REQUIRE(p.size() == 5);
  CheckSame(p[0], Ping());
  CheckSame(p[1], Hello(false));
  CheckSame(p[2], Draw(8));
  CheckSame(p[3], PingEcho());
  CheckSame(p[4], Ping64());
}

TEST_CASE("packet: encrypting a packet gives xpra's exact bytes") {
  auto enc = crypto::Encryptor::Create(Key(), kPkcs7.iv, kPkcs7.padding);
  REQUIRE(enc.ok());
  std::string out;
  REQUIRE(EncodePacket(Ping(), {}, enc->get(), &out).ok());
  CHECK(out == ReadGolden("encrypted_ping.bin"));
  auto h = DecodeHeader(out);
  REQUIRE(h.ok());
  CHECK(h->flags == (flags::kRencode | flags::kCipher));
  CHECK(h->payload_size == 21);  // unpadded
  CHECK(out.size() == kHeaderSize + 32);
}

TEST_CASE("packet: encrypted stream re-encoded with one encryptor decodes again") {
  auto enc = crypto::Encryptor::Create(Key(), kLegacy.iv, kLegacy.padding);
  REQUIRE(enc.ok());
  std::string stream;
  REQUIRE(EncodePacket(Hello(false), {Encoding::kRencode, Compressor::kLz4, 1}, enc->get(), &stream).ok());
  REQUIRE(EncodePacket(Ping64(), {}, enc->get(), &stream).ok());
  REQUIRE(EncodePacket(PingEcho(), {Encoding::kBencode, Compressor::kZlib, 3}, enc->get(), &stream).ok());
  std::unique_ptr<crypto::Decryptor> dec(MakeLegacyDecryptor());
  Decoded d = DecodeStream(stream, 1, dec.get());
  REQUIRE(!d.error.has_value());
  REQUIRE(d.packets.size() == 3);
  CheckSame(d.packets[0], Hello(false));
  CheckSame(d.packets[1], Ping64());
  CheckSame(d.packets[2], PingEcho());
}

TEST_CASE("packet: encrypted frame without a decryptor is an error") {
  Decoded d = DecodeStream(ReadGolden("encrypted_ping.bin"), 0);
  REQUIRE(d.error.has_value());
  CHECK(d.error->code == ErrorCode::kMalformed);
  CHECK(d.packets.empty());
}

TEST_CASE("packet: unencrypted frame once the link is encrypted is an error") {
  std::unique_ptr<crypto::Decryptor> dec(MakePkcs7Decryptor());
  Decoded d = DecodeStream(ReadGolden("rencode_ping.bin"), 0, dec.get());
  REQUIRE(d.error.has_value());
  CHECK(d.error->code == ErrorCode::kMalformed);
  CHECK(d.error->message.find("unencrypted") != std::string::npos);
}

TEST_CASE("packet: wrong key is an error, not a packet") {
  auto key = crypto::DeriveKey("not-the-secret", kKeySalt, 1000);
  REQUIRE(key.ok());
  auto dec = crypto::Decryptor::Create(*key, kPkcs7.iv, kPkcs7.padding);
  REQUIRE(dec.ok());
  Decoded d = DecodeStream(ReadGolden("encrypted_pkcs7.bin"), 0, dec->get());
  REQUIRE(d.error.has_value());
  CHECK(d.packets.empty());
}

// ---- malformed input -----------------------------------------------------------------------

TEST_CASE("packet: 4 pending chunks are refused") {
  PacketDecoder dec;
  for (uint8_t i = 1; i <= 3; ++i) {
    auto r = dec.Push(Frame(0, 0, i, "chunk"));
    REQUIRE(r.ok());
    CHECK(!r->has_value());
  }
  auto r = dec.Push(Frame(0, 0, 4, "chunk"));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kTooLarge);
  CHECK(r.error().message.find("too many pending chunks") != std::string::npos);
}

TEST_CASE("packet: 4 pending chunks in a byte stream are refused") {
  std::string data;
  for (uint8_t i = 1; i <= 4; ++i) data += Header(0, 0, i, 3) + "abc";
  data += ReadGolden("rencode_ping.bin");
  Decoded d = DecodeStream(data, 1);
  REQUIRE(d.error.has_value());
  CHECK(d.error->code == ErrorCode::kTooLarge);
  CHECK(d.packets.empty());
}

TEST_CASE("packet: max_pending_chunks is configurable") {
  FrameLimits limits;
  limits.max_pending_chunks = 1;
  PacketDecoder dec(limits);
  REQUIRE(dec.Push(Frame(0, 0, 1, "a")).ok());
  CHECK(!dec.Push(Frame(0, 0, 2, "b")).ok());
}

TEST_CASE("packet: chunk index beyond the packet length is malformed") {
  PacketDecoder dec;
  REQUIRE(dec.Push(Frame(0, 0, 4, "pixels")).ok());
  auto r = dec.Push(Frame(flags::kRencode, 0, 0, Rencoded(Ping())));  // 4 elements: 0..3
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
  CHECK(r.error().message == "chunk index 4 beyond packet length 4");
}

TEST_CASE("packet: a chunk at the last element is placed") {
  PacketDecoder dec;
  REQUIRE(dec.Push(Frame(0, 0, 3, "raw")).ok());
  auto r = dec.Push(Frame(flags::kRencode, 0, 0, Rencoded(Ping())));
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  CHECK((**r).as_list()[3] == Value::bytes("raw"));
  CHECK(dec.pending_chunks() == 0);
}

TEST_CASE("packet: duplicate chunk index is malformed") {
  PacketDecoder dec;
  REQUIRE(dec.Push(Frame(0, 0, 2, "a")).ok());
  auto r = dec.Push(Frame(0, 0, 2, "b"));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
}

TEST_CASE("packet: an empty chunk is malformed (the framing rules apply to pushed frames)") {
  PacketDecoder dec;
  auto r = dec.Push(Frame(0, 0, 2, ""));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
  CHECK(r.error().message == "frame with an empty payload");
}

TEST_CASE("packet: yaml flag is unsupported") {
  std::string yaml = "[ping, 1, 2]";
  Decoded d = DecodeStream(Header(flags::kYaml, 0, 0, static_cast<uint32_t>(yaml.size())) + yaml, 0);
  REQUIRE(d.error.has_value());
  CHECK(d.error->code == ErrorCode::kUnsupported);
  CHECK(d.error->message.find("yaml") != std::string::npos);
}

TEST_CASE("packet: rencode flag wins over yaml, as in xpra") {
  PacketDecoder dec;
  auto r = dec.Push(Frame(flags::kRencode | flags::kYaml, 0, 0, Rencoded(Ping())));
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  CheckSame(**r, Ping());
}

TEST_CASE("packet: index-0 packet that is not a list is malformed") {
  PacketDecoder dec;
  auto r = dec.Push(Frame(flags::kRencode, 0, 0, Rencoded(Value("hello"))));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
  CHECK(r.error().message == "packet is not a list");
  r = dec.Push(Frame(0, 0, 0, "d5:helloi1ee"));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
}

TEST_CASE("packet: packet type that is not a string is malformed") {
  PacketDecoder dec;
  auto r = dec.Push(Frame(flags::kRencode, 0, 0, Rencoded(List_({7, "x"}))));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
  CHECK(r.error().message == "packet type is not a string");
  r = dec.Push(Frame(0, 0, 0, "le"));  // empty bencoded list
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
}

TEST_CASE("packet: undecodable payload is an error") {
  PacketDecoder dec;
  auto r = dec.Push(Frame(0, 0, 0, "l4:pingi12"));  // truncated bencode
  REQUIRE(!r.ok());
  r = dec.Push(Frame(flags::kRencode, 0, 0, std::string("\xc2\x84ping\x01trailing", 15)));
  REQUIRE(!r.ok());
}

TEST_CASE("packet: lz4 decompression bomb is refused") {
  std::string zeros(64u << 20, '\0');
  std::string bomb;
  REQUIRE(Compress(Compressor::kLz4, 1, zeros, &bomb).ok());
  zeros = std::string();
  Decoded d = DecodeStream(Header(flags::kRencode, level_flags::kLz4 | 1, 0, static_cast<uint32_t>(bomb.size())) + bomb, 0);
  REQUIRE(d.error.has_value());
  CHECK(d.error->code == ErrorCode::kTooLarge);
  CHECK(d.error->message.find("lz4") != std::string::npos);
}

TEST_CASE("packet: zlib decompression bomb is refused") {
  std::string zeros(64u << 20, '\0');
  std::string bomb;
  REQUIRE(Compress(Compressor::kZlib, 9, zeros, &bomb).ok());
  zeros = std::string();
  Decoded d = DecodeStream(Header(flags::kRencode, 9, 0, static_cast<uint32_t>(bomb.size())) + bomb, 0);
  REQUIRE(d.error.has_value());
  CHECK(d.error->code == ErrorCode::kTooLarge);
  CHECK(d.error->message.find("zlib") != std::string::npos);
}

TEST_CASE("packet: decompressed size limit follows max_payload") {
  std::string plain = Rencoded(List_({"blob", Value::bytes(std::string(5000, 'a'))}));
  std::string z;
  auto level = Compress(Compressor::kZlib, 6, plain, &z);
  REQUIRE(level.ok());
  FrameLimits limits;
  limits.max_payload = 4096;
  PacketDecoder small(limits);
  auto r = small.Push(Frame(flags::kRencode, *level, 0, z));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kTooLarge);
  PacketDecoder raised(limits);
  raised.set_max_payload(8192);
  r = raised.Push(Frame(flags::kRencode, *level, 0, z));
  REQUIRE(r.ok());
  CHECK(r->has_value());
}

TEST_CASE("packet: corrupt compressed data is malformed") {
  std::string golden = ReadGolden("lz4_hello.bin");
  // The block is one literal run (token f0, length bytes ff ff 38): make the length run past the end.
  golden[kHeaderSize + 7] = static_cast<char>(0xff);
  golden[kHeaderSize + 8] = static_cast<char>(0xff);
  Decoded d = DecodeStream(golden, 0);
  REQUIRE(d.error.has_value());
  CHECK(d.error->code == ErrorCode::kMalformed);

  std::string zg = ReadGolden("zlib_hello.bin");
  zg[kHeaderSize + 20] = static_cast<char>(zg[kHeaderSize + 20] ^ 0x5a);
  d = DecodeStream(zg, 0);
  REQUIRE(d.error.has_value());
  CHECK(d.error->code == ErrorCode::kMalformed);
}

TEST_CASE("packet: corrupt compressed chunk is malformed") {
  PacketDecoder dec;
  auto r = dec.Push(Frame(0, 0x11, 7, "\x10\x00\x00\x00garbage"));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
}

TEST_CASE("packet: lzo and brotli frames are unsupported") {
  PacketDecoder dec;
  auto r = dec.Push(Frame(flags::kRencode, level_flags::kLzo | 1, 0, "whatever"));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kUnsupported);
  r = dec.Push(Frame(0, level_flags::kBrotli | 1, 3, "whatever"));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kUnsupported);
}

TEST_CASE("packet: frame whose payload disagrees with its header is malformed") {
  RawFrame f = Frame(flags::kRencode, 0, 0, Rencoded(Ping()));
  f.header.payload_size += 1;
  PacketDecoder dec;
  auto r = dec.Push(std::move(f));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
}

// ---- encoding ------------------------------------------------------------------------------

TEST_CASE("packet: encode/decode round trip across encodings and compressors") {
  Value big = List_({"xr-blob", Value::bytes(BigBlob(20000, 9)), "tail", 123});
  for (Encoding e : {Encoding::kRencode, Encoding::kBencode}) {
    for (Compressor c : {Compressor::kNone, Compressor::kZlib, Compressor::kLz4}) {
      std::string out;
      REQUIRE(EncodePacket(big, {e, c, c == Compressor::kNone ? 0 : 4}, nullptr, &out).ok());
      auto h = DecodeHeader(out);
      REQUIRE(h.ok());
      CHECK(h->compressor() == c);
      CHECK(((h->flags & flags::kRencode) != 0) == (e == Encoding::kRencode));
      Decoded d = DecodeStream(out, 1);
      REQUIRE(!d.error.has_value());
      REQUIRE(d.packets.size() == 1);
      CheckSame(d.packets[0], big);
      CHECK(d.encodings[0] == e);
    }
  }
}

TEST_CASE("packet: encoding a non-list fails and leaves the output alone") {
  std::string out = "keep";
  Status s = EncodePacket(Value("hello"), {}, nullptr, &out);
  REQUIRE(!s.ok());
  CHECK(s.error().code == ErrorCode::kMalformed);
  s = EncodePacket(Value(List{}), {}, nullptr, &out);
  REQUIRE(!s.ok());
  // bencode has no None.
  s = EncodePacket(List_({"x", Value()}), {Encoding::kBencode, Compressor::kNone, 0}, nullptr, &out);
  REQUIRE(!s.ok());
  CHECK(out == "keep");
}

TEST_CASE("packet: unsupported compressor fails the encode") {
  std::string out;
  Value big = List_({"xr-blob", Value::bytes(BigBlob(2000, 9))});
  Status s = EncodePacket(big, {Encoding::kRencode, Compressor::kBrotli, 3}, nullptr, &out);
  REQUIRE(!s.ok());
  CHECK(s.error().code == ErrorCode::kUnsupported);
  CHECK(out.empty());
}

TEST_CASE("packet: the draw chunk matches python-lz4 on a block over 64 KiB") {
  // The golden chunk was made by xpra (python-lz4) from the same pixels.
  std::string golden = ReadGolden("chunked_draw.bin");
  auto h = DecodeHeader(golden);
  REQUIRE(h.ok());
  CHECK(h->index == 7);
  CHECK(golden.substr(kHeaderSize, h->payload_size) == DrawChunk());
}


// ---- xpra 6.x: rencodeplus (flag 0x10), flush (0x08), lz4 ----------------------------------

using namespace std::string_literals;

TEST_CASE("packet: a real xpra 6.5.3 client's first hello (flags 0x18 = rencodeplus + flush, lz4)") {
  // Captured from `xpra attach` of 6.5.3 (tools/golden/xpra6_hello.py), whole and byte by byte.
  const std::string data = ReadGolden("xpra6_client_hello.bin");
  CHECK(data.substr(0, 4) == "P\x18\x11\x00"s);
  auto packets = DecodeGolden("xpra6_client_hello.bin");
  REQUIRE(packets.size() == 1);
  const Value& p = packets[0];
  CHECK(p.as_list()[0] == Value::text("hello"));
  Caps caps(p.as_list()[1]);
  CHECK(caps.get_string("version").starts_with("6."));
  CHECK(caps.get_strings("encoders") == std::vector<std::string>{"rencodeplus", "yaml", "none"});
  CHECK(caps.get_strings("compressors") == std::vector<std::string>{"lz4", "none"});
  // 5.0+ nests a key's own value under "": {"lz4": {"": True}}.
  CHECK(caps.get("lz4")->is_dict());
  CHECK(caps.get_bool("lz4"));
  CHECK(caps.get_bool("rencodeplus"));
  CHECK_FALSE(caps.get_bool("rencode"));
  CHECK(caps.get_strings("digest").size() > 3);
  CHECK(caps.get_string("username") == "alice");
  PacketDecoder dec;
  RawFrame f = Frame(0x18, 0x11, 0, data.substr(8));
  auto r = dec.Push(std::move(f));
  REQUIRE(r.ok());
  CHECK(dec.last_encoding() == Encoding::kRencodePlus);
}

TEST_CASE("packet: rencodeplus packets encode with flag 0x10, flush on request, lz4, and decode back") {
  const Value hello = List_({"hello", Value(Dict{{Value("version"), Value("6.5.3")},
                                                 {Value("salt"), Value::bytes(std::string(64, '\x01'))},
                                                 {Value("pad"), Value::text(std::string(600, 'x'))}})});
  EncodeOptions opts;
  opts.encoding = Encoding::kRencodePlus;
  opts.compressor = Compressor::kLz4;
  opts.level = 1;
  opts.flush = true;
  std::string wire;
  REQUIRE(EncodePacket(hello, opts, nullptr, &wire).ok());
  CHECK(static_cast<uint8_t>(wire[1]) == (flags::kRencodePlus | flags::kFlush));
  CHECK(static_cast<uint8_t>(wire[2]) == (level_flags::kLz4 | 1));
  Decoded d = DecodeStream(wire, 1);
  REQUIRE_FALSE(d.error.has_value());
  REQUIRE(d.packets.size() == 1);
  CHECK(d.packets[0] == hello);  // str stays str, bytes stay bytes
  CHECK(d.encodings[0] == Encoding::kRencodePlus);
}

TEST_CASE("packet: rencodeplus wins over rencode and yaml, as xpra 6.x reads the flags") {
  std::string payload;
  REQUIRE(rencodeplus::Encode(Ping(), &payload).ok());
  PacketDecoder dec;
  auto r = dec.Push(Frame(flags::kRencodePlus | flags::kRencode | flags::kYaml, 0, 0, payload));
  REQUIRE(r.ok());
  CHECK(dec.last_encoding() == Encoding::kRencodePlus);
}

TEST_CASE("packet: yaml refused with a reason naming what the relay speaks") {
  auto e = EncodingForFlags(flags::kYaml | flags::kFlush);
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().code == ErrorCode::kUnsupported);
  CHECK(e.error().message.find("rencodeplus") != std::string::npos);
}

TEST_CASE("packet: a malformed rencodeplus payload names the encoding") {
  PacketDecoder dec;
  auto r = dec.Push(Frame(flags::kRencodePlus, 0, 0, "\xc2\x81\xff\x01"));  // str that is not UTF-8
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
  CHECK(r.error().message.rfind("rencodeplus packet: rencodeplus: ", 0) == 0);
}

TEST_CASE("packet: header flag bits xpra does not define are refused before the payload") {
  for (uint8_t bit : {uint8_t{0x20}, uint8_t{0x40}, uint8_t{0x80}}) {
    Decoded d = DecodeStream(Header(flags::kRencodePlus | bit, 0, 0, 4) + "abcd", 0);
    REQUIRE(d.error.has_value());
    CHECK(d.error->code == ErrorCode::kMalformed);
    CHECK(d.error->message.find("unknown flag bits") != std::string::npos);
  }
}

}  // namespace
}  // namespace xr
