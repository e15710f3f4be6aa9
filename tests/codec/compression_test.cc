#include "codec/compression.h"

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <new>
#include <string>

#include "codec/header.h"
#include "tests/codec/framing_test_util.h"

// Records the largest single allocation, to prove a decompression bomb is never allocated.
static std::atomic<size_t> g_max_alloc{0};
static void NoteAlloc(size_t n) {
  size_t cur = g_max_alloc.load();
  while (n > cur && !g_max_alloc.compare_exchange_weak(cur, n)) {
  }
}
void* operator new(size_t n) {
  NoteAlloc(n);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace xr {
namespace {

using framing_test::ReadGolden;

// Header level byte and payload of a golden file holding a single frame.
struct Single {
  uint8_t level;
  std::string payload;
};
Single GoldenPayload(const std::string& name) {
  std::string data = ReadGolden(name);
  auto h = DecodeHeader(data);
  REQUIRE(h.ok());
  REQUIRE(data.size() == kHeaderSize + h->payload_size);
  return {h->level, data.substr(kHeaderSize)};
}

constexpr size_t kMax = 16u << 20;

TEST_CASE("compression: xpra's zlib and lz4 payloads decompress to the plain packet") {
  std::string rencoded = GoldenPayload("rencode_hello.bin").payload;
  std::string bencoded = GoldenPayload("bencode_hello.bin").payload;
  struct Case {
    const char* file;
    uint8_t level;
    const std::string* plain;
  };
  for (const Case& c : {Case{"zlib_hello.bin", 0x01, &rencoded}, Case{"lz4_hello.bin", 0x11, &rencoded},
                        Case{"lz4_9_hello.bin", 0x19, &rencoded}, Case{"lz4_5_hello.bin", 0x15, &bencoded},
                        Case{"zlib6_bencode_hello.bin", 0x06, &bencoded}}) {
    CAPTURE(c.file);
    Single s = GoldenPayload(c.file);
    CHECK(s.level == c.level);
    auto out = Decompress(s.level, s.payload, kMax);
    REQUIRE(out.ok());
    CHECK(*out == *c.plain);
  }
}

TEST_CASE("compression: compressing reproduces xpra's bytes and level byte exactly") {
  std::string rencoded = GoldenPayload("rencode_hello.bin").payload;
  std::string bencoded = GoldenPayload("bencode_hello.bin").payload;
  struct Case {
    std::string file;
    Compressor c;
    int level;
    const std::string* plain;
  };
  for (const Case& c : {Case{"zlib_hello.bin", Compressor::kZlib, 1, &rencoded},
                        Case{"zlib6_bencode_hello.bin", Compressor::kZlib, 6, &bencoded},
                        Case{"lz4_hello.bin", Compressor::kLz4, 1, &rencoded},    // fast mode
                        Case{"lz4_5_hello.bin", Compressor::kLz4, 5, &bencoded},  // default mode
                        Case{"lz4_9_hello.bin", Compressor::kLz4, 9, &rencoded}}) {  // HC mode
    CAPTURE(c.file);
    Single s = GoldenPayload(c.file);
    std::string out = "prefix";
    auto level = Compress(c.c, c.level, *c.plain, &out);
    REQUIRE(level.ok());
    CHECK(*level == s.level);
    CHECK(out == "prefix" + s.payload);
  }
}

TEST_CASE("compression: round trip at every level") {
  std::string data;
  for (int i = 0; i < 100000; ++i) data += static_cast<char>((i * 7 + i / 13) % 251);
  for (Compressor c : {Compressor::kZlib, Compressor::kLz4}) {
    for (int level = 1; level <= 9; ++level) {
      CAPTURE(level);
      std::string out;
      auto lb = Compress(c, level, data, &out);
      REQUIRE(lb.ok());
      CHECK(CompressorForLevel(*lb) == c);
      CHECK((*lb & 0x0f) == level);
      auto back = Decompress(*lb, out, data.size());
      REQUIRE(back.ok());
      CHECK(*back == data);
      // One byte less room is too little.
      auto small = Decompress(*lb, out, data.size() - 1);
      REQUIRE(!small.ok());
      CHECK(small.error().code == ErrorCode::kTooLarge);
    }
  }
}

TEST_CASE("compression: empty input round trips") {
  for (Compressor c : {Compressor::kZlib, Compressor::kLz4}) {
    std::string out;
    auto lb = Compress(c, 1, "", &out);
    REQUIRE(lb.ok());
    auto back = Decompress(*lb, out, 0);
    REQUIRE(back.ok());
    CHECK(back->empty());
  }
}

TEST_CASE("compression: level 0 passes data through, within the limit") {
  auto out = Decompress(0, "abc", 3);
  REQUIRE(out.ok());
  CHECK(*out == "abc");
  auto big = Decompress(0, "abcd", 3);
  REQUIRE(!big.ok());
  CHECK(big.error().code == ErrorCode::kTooLarge);
  std::string sink;
  auto lb = Compress(Compressor::kNone, 0, "xyz", &sink);
  REQUIRE(lb.ok());
  CHECK(*lb == 0);
  CHECK(sink == "xyz");
}

TEST_CASE("compression: lz4 bomb is refused from its size prefix without allocating") {
  std::string zeros(64u << 20, '\0');
  std::string bomb;
  REQUIRE(Compress(Compressor::kLz4, 1, zeros, &bomb).ok());
  zeros.clear();
  zeros.shrink_to_fit();
  CHECK(bomb.size() < (1u << 20));
  g_max_alloc = 0;
  auto out = Decompress(0x11, bomb, kMax);
  REQUIRE(!out.ok());
  CHECK(out.error().code == ErrorCode::kTooLarge);
  CHECK(out.error().message.find("67108864") != std::string::npos);
  CHECK(out.error().message.find("16777216") != std::string::npos);
  CHECK(g_max_alloc.load() < 4096);
}

TEST_CASE("compression: lz4 prefix claiming 4 GiB is refused") {
  std::string bomb("\xff\xff\xff\xff\x00", 5);
  g_max_alloc = 0;
  auto out = Decompress(0x11, bomb, size_t{256} << 20);
  REQUIRE(!out.ok());
  CHECK(out.error().code == ErrorCode::kTooLarge);
  CHECK(g_max_alloc.load() < 4096);
}

// Issue 13: a 13-byte frame whose lz4 prefix claims ~256 MiB, within the hard cap; main zero-filled
// the claimed size before decompressing (3.8 s of relay CPU for 300 such frames).
TEST_CASE("compression: lz4 prefix claiming more than its bytes can expand to is refused before allocating") {
  std::string lie("\xff\xff\xff\x0f\x00", 5);
  g_max_alloc = 0;
  auto out = Decompress(0x11, lie, size_t{256} << 20);
  REQUIRE(!out.ok());
  CHECK(out.error().code == ErrorCode::kMalformed);
  CHECK(out.error().message.find("more than lz4 can produce") != std::string::npos);
  CHECK(g_max_alloc.load() < 4096);
  // A real block at its largest ratio still decodes: 1 MiB of zeros.
  std::string zeros(1u << 20, '\0');
  std::string z;
  REQUIRE(Compress(Compressor::kLz4, 9, zeros, &z).ok());
  auto back = Decompress(0x19, z, kMax);
  REQUIRE(back.ok());
  CHECK(*back == zeros);
}

TEST_CASE("compression: zlib bomb stops at the limit") {
  std::string zeros(64u << 20, '\0');
  std::string bomb;
  REQUIRE(Compress(Compressor::kZlib, 9, zeros, &bomb).ok());
  zeros.clear();
  zeros.shrink_to_fit();
  CHECK(bomb.size() < (1u << 20));
  g_max_alloc = 0;
  auto out = Decompress(0x09, bomb, 1u << 20);
  REQUIRE(!out.ok());
  CHECK(out.error().code == ErrorCode::kTooLarge);
  CHECK(out.error().message.find("1048576 byte limit") != std::string::npos);
  // Never more than the limit (plus the byte that proves it is exceeded and a terminator).
  CHECK(g_max_alloc.load() <= (1u << 20) + 2);
}

TEST_CASE("compression: zlib output exactly at the limit is fine") {
  std::string data(300000, 'q');
  std::string z;
  REQUIRE(Compress(Compressor::kZlib, 6, data, &z).ok());
  auto out = Decompress(0x06, z, data.size());
  REQUIRE(out.ok());
  CHECK(*out == data);
}

TEST_CASE("compression: corrupt lz4 data is malformed") {
  Single s = GoldenPayload("lz4_hello.bin");
  std::string bad = s.payload;
  // Point the first match far before the start of the output.
  for (size_t i = 4; i < bad.size(); ++i) bad[i] = static_cast<char>(0xff);
  auto out = Decompress(s.level, bad, kMax);
  REQUIRE(!out.ok());
  CHECK(out.error().code == ErrorCode::kMalformed);
}

TEST_CASE("compression: lz4 size prefix that disagrees with the data is malformed") {
  Single s = GoldenPayload("lz4_hello.bin");
  std::string bad = s.payload;
  bad[0] = static_cast<char>(static_cast<uint8_t>(bad[0]) + 1);  // claims one byte more
  auto out = Decompress(s.level, bad, kMax);
  REQUIRE(!out.ok());
  CHECK(out.error().code == ErrorCode::kMalformed);
}

TEST_CASE("compression: lz4 data without its size prefix is malformed") {
  auto out = Decompress(0x11, std::string_view("\x05\x00", 2), kMax);
  REQUIRE(!out.ok());
  CHECK(out.error().code == ErrorCode::kMalformed);
}

TEST_CASE("compression: corrupt zlib data is malformed") {
  Single s = GoldenPayload("zlib_hello.bin");
  std::string bad = s.payload;
  bad[bad.size() / 2] = static_cast<char>(bad[bad.size() / 2] ^ 0x55);
  auto out = Decompress(s.level, bad, kMax);
  REQUIRE(!out.ok());
  CHECK(out.error().code == ErrorCode::kMalformed);
  auto garbage = Decompress(0x01, "this is not zlib", kMax);
  REQUIRE(!garbage.ok());
  CHECK(garbage.error().code == ErrorCode::kMalformed);
}

TEST_CASE("compression: truncated zlib data is malformed at every cut") {
  Single s = GoldenPayload("zlib_hello.bin");
  for (size_t cut = 0; cut < s.payload.size(); ++cut) {
    auto out = Decompress(s.level, std::string_view(s.payload).substr(0, cut), kMax);
    REQUIRE(!out.ok());
    CHECK(out.error().code == ErrorCode::kMalformed);
  }
}

TEST_CASE("compression: bytes after the zlib stream are ignored, as python's zlib does") {
  Single s = GoldenPayload("zlib_hello.bin");
  auto out = Decompress(s.level, s.payload + "trailing", kMax);
  REQUIRE(out.ok());
  CHECK(*out == GoldenPayload("rencode_hello.bin").payload);
}

TEST_CASE("compression: lzo and brotli are unsupported") {
  for (uint8_t level : {uint8_t{0x21}, uint8_t{0x41}}) {
    auto out = Decompress(level, "data", kMax);
    REQUIRE(!out.ok());
    CHECK(out.error().code == ErrorCode::kUnsupported);
    CHECK(out.error().message.find("not supported") != std::string::npos);
  }
  std::string sink;
  auto lb = Compress(Compressor::kLzo, 1, "x", &sink);
  REQUIRE(!lb.ok());
  CHECK(lb.error().code == ErrorCode::kUnsupported);
  lb = Compress(Compressor::kBrotli, 1, "x", &sink);
  REQUIRE(!lb.ok());
  CHECK(lb.error().code == ErrorCode::kUnsupported);
  CHECK(sink.empty());
}

TEST_CASE("compression: level outside 1..9 is refused") {
  std::string sink;
  for (int level : {0, 10, -1}) {
    auto lb = Compress(Compressor::kZlib, level, "x", &sink);
    REQUIRE(!lb.ok());
    CHECK(lb.error().code == ErrorCode::kMalformed);
  }
  CHECK(sink.empty());
}

}  // namespace
}  // namespace xr
