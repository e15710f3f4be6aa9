#include "codec/header.h"

#include <doctest/doctest.h>

#include <string>

namespace xr {
namespace {

std::string Encode(const FrameHeader& h) {
  char buf[kHeaderSize];
  EncodeHeader(h, buf);
  return std::string(buf, kHeaderSize);
}

TEST_CASE("header: encodes big-endian with the P magic") {
  FrameHeader h{flags::kRencode | flags::kCipher, level_flags::kLz4 | 3, 7, 0x01020304};
  CHECK(Encode(h) == std::string("P\x03\x13\x07\x01\x02\x03\x04", 8));
}

TEST_CASE("header: decode inverts encode") {
  FrameHeader h{flags::kRencode, 0x06, 0, 0xfedcba98};
  auto d = DecodeHeader(Encode(h));
  REQUIRE(d.ok());
  CHECK(*d == h);
  CHECK(d->payload_size == 0xfedcba98u);
}

TEST_CASE("header: header bytes of a real xpra rencode ping") {
  // First 8 bytes of tests/codec/testdata/framing/rencode_ping.bin.
  auto d = DecodeHeader(std::string_view("P\x01\x00\x00\x00\x00\x00\x15", 8));
  REQUIRE(d.ok());
  CHECK(d->flags == flags::kRencode);
  CHECK(d->level == 0);
  CHECK(d->index == 0);
  CHECK(d->payload_size == 21);
  CHECK(d->compressor() == Compressor::kNone);
  CHECK(!d->encrypted());
  CHECK(d->wire_payload_size() == 21);
}

TEST_CASE("header: bad magic is malformed") {
  auto d = DecodeHeader(std::string_view("Q\x01\x00\x00\x00\x00\x00\x15", 8));
  REQUIRE(!d.ok());
  CHECK(d.error().code == ErrorCode::kMalformed);
  CHECK(d.error().message.find("0x51") != std::string::npos);
}

TEST_CASE("header: bad magic is reported from the first byte alone") {
  auto d = DecodeHeader("G");
  REQUIRE(!d.ok());
  CHECK(d.error().code == ErrorCode::kMalformed);
}

TEST_CASE("header: short input is truncated") {
  for (size_t n = 0; n < kHeaderSize; ++n) {
    auto d = DecodeHeader(std::string_view("P\x01\x00\x00\x00\x00\x00\x15", n));
    REQUIRE(!d.ok());
    CHECK(d.error().code == ErrorCode::kTruncated);
  }
}

TEST_CASE("header: compressor from the level byte, in xpra's order") {
  CHECK(CompressorForLevel(0x00) == Compressor::kNone);
  CHECK(CompressorForLevel(0x01) == Compressor::kZlib);
  CHECK(CompressorForLevel(0x09) == Compressor::kZlib);
  CHECK(CompressorForLevel(0x11) == Compressor::kLz4);
  CHECK(CompressorForLevel(0x10) == Compressor::kLz4);
  CHECK(CompressorForLevel(0x21) == Compressor::kLzo);
  CHECK(CompressorForLevel(0x41) == Compressor::kBrotli);
  CHECK(CompressorForLevel(0x31) == Compressor::kLz4);  // lz4 bit wins, as in compression.decompress
  CHECK(CompressorForLevel(0x61) == Compressor::kLzo);
  CHECK(std::string(CompressorName(Compressor::kLz4)) == "lz4");
}

TEST_CASE("header: encrypted wire size adds 1..32 padding bytes") {
  FrameHeader h;
  h.flags = flags::kCipher;
  h.payload_size = 21;
  CHECK(h.wire_payload_size() == 32);
  h.payload_size = 32;
  CHECK(h.wire_payload_size() == 64);
  h.payload_size = 0;
  CHECK(h.wire_payload_size() == 32);
  h.payload_size = 589;
  CHECK(h.wire_payload_size() == 608);
  h.payload_size = 0xffffffffu;
  CHECK(h.wire_payload_size() == size_t{0x100000000});
  h.flags = 0;
  CHECK(h.wire_payload_size() == size_t{0xffffffff});
}


TEST_CASE("header: xpra 6.x flags: rencodeplus 0x10 and flush 0x08 are known bits, others are not") {
  CHECK(flags::kRencodePlus == 0x10);
  CHECK(flags::kFlush == 0x08);
  for (int f = 0; f < 256; ++f) {
    const bool known = (f & ~0x1f) == 0;
    Status s = CheckFlags(static_cast<uint8_t>(f));
    CHECK_MESSAGE(s.ok() == known, "flags " << f);
    if (!known) CHECK(s.error().message.find("unknown flag bits") != std::string::npos);
  }
  // A 6.5.3 client's first header: P 0x18 0x11 0 ...
  auto h = DecodeHeader(std::string("P\x18\x11\x00\x00\x00\x0e\x55", 8));
  REQUIRE(h.ok());
  CHECK(CheckFlags(h->flags).ok());
  CHECK(h->compressor() == Compressor::kLz4);
  CHECK((h->level & 0x0f) == 1);
  CHECK(kXpra6MaxFirstPayload == 4u << 20);
}

}  // namespace
}  // namespace xr

TEST_CASE("SerializeFrame: header then payload, readable by DecodeHeader") {
  xr::FrameHeader h{xr::flags::kRencode, 0x10 | 1, 0, 5};
  std::string wire = xr::SerializeFrame(h, "hello");
  REQUIRE(wire.size() == xr::kHeaderSize + 5);
  auto back = xr::DecodeHeader(std::string_view(wire).substr(0, xr::kHeaderSize));
  REQUIRE(back.ok());
  CHECK(*back == h);
  CHECK(wire.substr(xr::kHeaderSize) == "hello");
}
