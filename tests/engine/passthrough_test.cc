// The passthrough path's stream followers on codec/frame_tracker: frame boundaries, packets,
// limits and where a bad header began, fed whole and byte by byte; the small-frame capture;
// the receive limit that lines a large frame up for splicing.
#include "engine/passthrough.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "codec/packet.h"

using namespace xr;
using namespace xr::engine;

namespace {

std::string Frame(size_t payload, uint8_t index = 0, uint8_t flags = flags::kRencode) {
  FrameHeader h;
  h.flags = flags;
  h.index = index;
  h.payload_size = static_cast<uint32_t>(payload);
  return SerializeFrame(h, std::string(payload, 'x'));
}

std::string Packet(const char* type) {
  std::string out;
  REQUIRE(EncodePacket(Value(List{Value(type), Value(1)}), EncodeOptions{}, nullptr, &out).ok());
  return out;
}

// Feeds `bytes` whole, or one byte per Feed.
void FeedAll(FrameBoundary& f, const std::string& bytes, bool bytewise) {
  if (!bytewise) return f.Feed(bytes);
  for (char c : bytes) f.Feed(std::string_view(&c, 1));
}

}  // namespace

TEST_CASE("boundaries and packet counts, whole and byte by byte") {
  for (bool bytewise : {false, true}) {
    CAPTURE(bytewise);
    FrameBoundary f(FrameLimits{1 << 20, 3});
    CHECK(f.at_boundary());
    FeedAll(f, Frame(100), bytewise);
    CHECK(f.at_boundary());
    CHECK(f.packets() == 1);
    std::string two = Frame(10, 1) + Frame(20);  // a chunk, then its main packet
    FeedAll(f, two.substr(0, 12), bytewise);
    CHECK_FALSE(f.at_boundary());
    CHECK(f.payload_remaining() == 6);
    FeedAll(f, two.substr(12), bytewise);
    CHECK(f.at_boundary());
    CHECK(f.packets() == 2);  // chunks are not packets
    CHECK(f.last_payload() == 20);
    CHECK(f.last_flags() == flags::kRencode);
    CHECK_FALSE(f.failed());
  }
}

TEST_CASE("a frame over the leg's limit: the bytes before it are good, nothing after") {
  FrameBoundary f(FrameLimits{1000, 3});
  std::string good = Frame(50);
  std::string bytes = good + Frame(1001) + Frame(5);
  f.Feed(bytes);
  REQUIRE(f.failed());
  CHECK(f.error() == "frame of 1001 bytes exceeds the 1000 byte limit");
  CHECK(f.good_bytes() == good.size());
  CHECK(f.at_boundary());  // no byte of the bad header went out
  f.Feed(Frame(5));
  CHECK(f.good_bytes() == 0);  // failed: nothing more is good
}

TEST_CASE("a bad header split across reads: part of it already went out") {
  FrameBoundary f(FrameLimits{1000, 3});
  std::string bad = Frame(1001).substr(0, 8);
  f.Feed(bad.substr(0, 4));  // 'P' and three more header bytes: not yet decidable
  CHECK_FALSE(f.failed());
  f.Feed(bad.substr(4));
  REQUIRE(f.failed());
  CHECK(f.good_bytes() == 0);
  CHECK_FALSE(f.at_boundary());  // the client cannot be told cleanly
}

TEST_CASE("garbage fails at its first byte") {
  FrameBoundary f;
  std::string good = Frame(3);
  f.Feed(good + "GET / HTTP/1.1\r\n");
  REQUIRE(f.failed());
  CHECK(f.good_bytes() == good.size());
  CHECK(f.at_boundary());
}

TEST_CASE("an empty frame and a repeated chunk are refused in passthrough too") {
  FrameBoundary empty;
  empty.Feed(Frame(0));
  CHECK(empty.failed());
  CHECK(empty.error() == "frame with an empty payload");
  FrameBoundary repeated;
  repeated.Feed(Frame(4, 2) + Frame(4, 2));
  CHECK(repeated.failed());
  CHECK(repeated.error() == "duplicate chunk at index 2");
  FrameBoundary many(FrameLimits{1000, 3});
  many.Feed(Frame(4, 1) + Frame(4, 2) + Frame(4, 3) + Frame(4, 4));
  CHECK(many.failed());
}

TEST_CASE("FeedToBoundary stops at the end of the current frame") {
  FrameBoundary f;
  std::string a = Frame(10), b = Frame(10);
  f.Feed(a.substr(0, 12));
  std::string rest = a.substr(12) + b;
  size_t n = f.FeedToBoundary(rest);
  CHECK(n == a.size() - 12);
  CHECK(f.at_boundary());
}

TEST_CASE("spliced payload is skipped, not seen") {
  FrameBoundary f;
  std::string big = Frame(100000);
  f.Feed(big.substr(0, 8 + 4096));
  CHECK(f.payload_remaining() == 100000 - 4096);
  f.Skip(100000 - 4096);
  CHECK(f.at_boundary());
  f.Feed(Frame(7));
  CHECK(f.packets() == 2);
}

TEST_CASE("the small-frame capture returns whole small main packets only") {
  for (bool bytewise : {false, true}) {
    CAPTURE(bytewise);
    SmallFrameCapture cap(64);
    std::string stream = Packet("info-request") + Frame(100) + Frame(10, 1) + Packet("ping");
    std::vector<RawFrame> got;
    if (bytewise) {
      for (char c : stream) cap.Feed(std::string_view(&c, 1), &got);
    } else {
      cap.Feed(stream, &got);
    }
    REQUIRE(got.size() == 2);
    auto first = DecodeFrame(got[0], kHardMaxPayload);
    REQUIRE(first.has_value());
    CHECK(first->as_list()[0].as_string() == "info-request");
    auto second = DecodeFrame(got[1], kHardMaxPayload);
    REQUIRE(second.has_value());
    CHECK(second->as_list()[0].as_string() == "ping");
  }
}

TEST_CASE("passthrough: packets of the relay's own only at a boundary once started") {
  Passthrough p(FrameLimits{1 << 20, 3}, FrameLimits{1 << 20, 3});
  p.toward(kClientLeg).Feed(Frame(100).substr(0, 20));
  CHECK(p.CanInsert(kClientLeg));  // the session still writes whole packets itself
  p.Start();
  CHECK_FALSE(p.CanInsert(kClientLeg));
  CHECK(p.CanInsert(kServerLeg));
}

TEST_CASE("after a large frame the next receive reads its end and a peek of the next") {
  Passthrough p(FrameLimits{1 << 20, 3}, FrameLimits{1 << 24, 3});
  FrameBoundary& f = p.toward(kClientLeg);
  f.Feed(Frame(8000).substr(0, 8 + 1000));
  CHECK(p.ServerRecvLimit(/*splice_min=*/4096, /*peek=*/4096) == 7000 + 4096);
  CHECK(p.ServerRecvLimit(0, 4096) == 0);  // splicing off
  Passthrough small(FrameLimits{1 << 20, 3}, FrameLimits{1 << 20, 3});
  small.toward(kClientLeg).Feed(Frame(100));
  CHECK(small.ServerRecvLimit(4096, 4096) == 0);  // small frames: whole buffers
}
