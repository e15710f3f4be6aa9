#include "codec/frame_tracker.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "tests/codec/framing_test_util.h"

namespace xr {
namespace {

using framing_test::ReadGolden;
using framing_test::Header;

std::string Frame(uint8_t index, const std::string& payload, uint8_t flags = 0) {
  return Header(flags, 0, index, static_cast<uint32_t>(payload.size())) + payload;
}

// What a walk over a stream saw.
struct Walked {
  std::vector<FrameHeader> headers;
  std::vector<std::string> payloads;  // the payload bytes of each frame, as consumed
  std::vector<uint64_t> ends;         // stream offset just past each complete frame
  std::optional<Error> error;
  uint64_t error_start = 0;  // frame_start() at the error
  uint64_t error_fed = 0;    // stream bytes given to the tracker when the error came
};

// Feeds `data` in pieces of `step` bytes (0 = whole), each piece until it is consumed.
Walked Walk(const std::string& data, size_t step, FrameLimits limits = {}) {
  FrameTracker t(limits);
  Walked w;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t n = step == 0 ? data.size() : std::min(step, data.size() - pos);
    std::string_view piece = std::string_view(data).substr(pos, n);
    pos += n;
    while (!piece.empty()) {
      const bool payload = t.in_payload();
      auto r = t.Feed(piece);
      if (!r.ok()) {
        w.error = r.error();
        w.error_start = t.frame_start();
        w.error_fed = pos;
        return w;
      }
      REQUIRE(r->consumed > 0);
      if (payload) w.payloads.back().append(piece.substr(0, r->consumed));
      if (r->event == FrameTracker::Event::kHeader) {
        w.headers.push_back(t.header());
        w.payloads.emplace_back();
      }
      if (r->event == FrameTracker::Event::kFrameEnd) w.ends.push_back(t.offset());
      piece.remove_prefix(r->consumed);
    }
  }
  CHECK(t.offset() == data.size());
  return w;
}

// Walks `data` whole and byte by byte; both must see the same.
std::vector<Walked> WalkBoth(const std::string& data, FrameLimits limits = {}) {
  std::vector<Walked> out{Walk(data, 0, limits), Walk(data, 1, limits)};
  const Walked& a = out[0];
  const Walked& b = out[1];
  CHECK(a.headers == b.headers);
  CHECK(a.payloads == b.payloads);
  CHECK(a.ends == b.ends);
  CHECK(a.error.has_value() == b.error.has_value());
  if (a.error && b.error) {
    CHECK(a.error->code == b.error->code);
    CHECK(a.error->message == b.error->message);
    CHECK(a.error_start == b.error_start);
  }
  return out;
}

// ---- walking good streams --------------------------------------------------------------------

TEST_CASE("frame tracker: golden streams, whole and byte by byte, boundaries where the frames end") {
  for (const char* name : {"rencode_hello.bin", "chunked_three.bin", "multi_frames.bin", "encrypted_pkcs7.bin"}) {
    CAPTURE(name);
    std::string data = ReadGolden(name);
    for (const Walked& w : WalkBoth(data)) {
      CHECK(!w.error.has_value());
      REQUIRE(!w.ends.empty());
      CHECK(w.ends.back() == data.size());
      uint64_t at = 0;
      for (size_t i = 0; i < w.headers.size(); ++i) {
        // The payload is exactly the wire bytes after each header.
        CHECK(w.payloads[i] == data.substr(at + kHeaderSize, w.headers[i].wire_payload_size()));
        at += kHeaderSize + w.headers[i].wire_payload_size();
        CHECK(w.ends[i] == at);
      }
    }
  }
}

TEST_CASE("frame tracker: each Feed stops after an event; header and payload bytes never mix") {
  FrameTracker t;
  std::string data = Frame(1, "abc") + Frame(0, "de", flags::kRencode);
  CHECK(t.at_boundary());
  auto s = t.Feed(data);
  REQUIRE(s.ok());
  CHECK(s->consumed == kHeaderSize);
  CHECK(s->event == FrameTracker::Event::kHeader);
  CHECK(t.in_payload());
  CHECK(t.payload_remaining() == 3);
  CHECK(t.header().index == 1);
  CHECK(t.pending_chunks() == 1);
  s = t.Feed(std::string_view(data).substr(8));
  REQUIRE(s.ok());
  CHECK(s->consumed == 3);
  CHECK(s->event == FrameTracker::Event::kFrameEnd);
  CHECK(t.at_boundary());
  CHECK(t.offset() == 11);
  s = t.Feed(std::string_view(data).substr(11, 3));
  REQUIRE(s.ok());
  CHECK(s->consumed == 3);
  CHECK(s->event == FrameTracker::Event::kNone);
  CHECK(t.in_header());
  CHECK(t.payload_remaining() == 0);
  CHECK(t.frame_start() == 11);
  s = t.Feed(std::string_view(data).substr(14));
  REQUIRE(s.ok());
  CHECK(s->consumed == 5);
  CHECK(s->event == FrameTracker::Event::kHeader);
  CHECK(t.pending_chunks() == 0);  // the main packet takes its chunks
  CHECK(t.Feed("").ok());
}

TEST_CASE("frame tracker: Skip moves over payload it never sees, as the splice path does") {
  std::string data = ReadGolden("chunked_draw.bin");  // a 35079-byte chunk, then its main packet
  FrameTracker t;
  auto s = t.Feed(data);
  REQUIRE(s.ok());
  REQUIRE(s->event == FrameTracker::Event::kHeader);
  CHECK(t.payload_remaining() == 35079);
  CHECK(t.Skip(35000) == FrameTracker::Event::kNone);
  CHECK(t.payload_remaining() == 79);
  CHECK(t.Skip(79) == FrameTracker::Event::kFrameEnd);
  CHECK(t.at_boundary());
  CHECK(t.offset() == kHeaderSize + 35079);
  // Skip at a boundary or inside a header moves nothing.
  CHECK(t.Skip(10) == FrameTracker::Event::kNone);
  CHECK(t.offset() == kHeaderSize + 35079);
  s = t.Feed(std::string_view(data).substr(t.offset(), 4));
  REQUIRE(s.ok());
  CHECK(t.Skip(1) == FrameTracker::Event::kNone);
  CHECK(t.offset() == kHeaderSize + 35079 + 4);
  // The rest walks normally.
  while (t.offset() < data.size()) {
    s = t.Feed(std::string_view(data).substr(t.offset()));
    REQUIRE(s.ok());
  }
  CHECK(t.at_boundary());
}

TEST_CASE("frame tracker: Skip past the frame's end is clamped to it") {
  FrameTracker t;
  REQUIRE(t.Feed(Header(0, 0, 0, 5)).ok());
  CHECK(t.Skip(100) == FrameTracker::Event::kFrameEnd);
  CHECK(t.offset() == kHeaderSize + 5);
  CHECK(t.at_boundary());
}

TEST_CASE("frame tracker: set_max_payload holds from the next header") {
  FrameTracker t;
  t.set_max_payload(32u << 20);
  CHECK(t.max_payload() == 32u << 20);
  auto s = t.Feed(Header(0, 0, 0, 20u << 20));
  REQUIRE(s.ok());
  CHECK(s->event == FrameTracker::Event::kHeader);
  t.set_max_payload(size_t{1} << 40);
  CHECK(t.max_payload() == kHardMaxPayload);
}

TEST_CASE("frame tracker: a main packet clears its chunks, so their indices may come again") {
  std::string data = Frame(1, "a") + Frame(2, "b") + Frame(3, "c") + Frame(0, "main", flags::kRencode) +
                     Frame(1, "a") + Frame(2, "b") + Frame(3, "c") + Frame(0, "main", flags::kRencode);
  for (const Walked& w : WalkBoth(data)) {
    CHECK(!w.error.has_value());
    CHECK(w.headers.size() == 8);
  }
}

TEST_CASE("frame tracker: an encrypted frame with no data still carries 32 padding bytes") {
  std::string data = Header(flags::kCipher | flags::kRencode, 0, 0, 0) + std::string(32, 'z');
  for (const Walked& w : WalkBoth(data)) {
    CHECK(!w.error.has_value());
    REQUIRE(w.ends.size() == 1);
    CHECK(w.ends[0] == 40);
  }
}

TEST_CASE("frame tracker: xpra 6.x AES frames: padded to 16 (CBC) or not at all (CTR), from the next header") {
  // Sizes as 6.x's header carries them: 20 -> 12 padding bytes with CBC, none with CTR; 32 -> a
  // whole block of 16 with CBC (never 0).
  struct Case {
    size_t block;
    uint32_t size;
    uint64_t wire;
  };
  for (const Case& c : {Case{16, 20, 32}, Case{16, 32, 48}, Case{0, 20, 20}, Case{0, 1, 1}, Case{32, 20, 32}}) {
    CAPTURE(c.block);
    CAPTURE(c.size);
    for (size_t step : {size_t{0}, size_t{1}}) {
      FrameTracker t;
      t.set_cipher_block(c.block);
      std::string data = Header(flags::kCipher | flags::kRencodePlus, 0, 0, c.size) + std::string(c.wire, 'z') +
                         Header(flags::kRencodePlus, 0, 0, 3) + "abc";
      std::vector<uint64_t> ends;
      for (size_t pos = 0; pos < data.size();) {
        std::string_view piece = std::string_view(data).substr(pos, step == 0 ? data.size() : 1);
        while (!piece.empty()) {
          auto st = t.Feed(piece);
          REQUIRE(st.ok());
          if (st->event == FrameTracker::Event::kFrameEnd) ends.push_back(t.offset());
          piece.remove_prefix(st->consumed);
          pos += st->consumed;
        }
      }
      REQUIRE(ends.size() == 2);
      CHECK(ends[0] == kHeaderSize + c.wire);
      CHECK(ends[1] == 2 * kHeaderSize + c.wire + 3);  // a plain frame is never padded
    }
  }
  // Changed between frames: the frame already walked keeps its size, the next one gets the new.
  FrameTracker t;
  REQUIRE(t.Feed(Header(flags::kCipher, 0, 0, 20)).ok());
  t.set_cipher_block(0);
  CHECK(t.payload_remaining() == 32);
  CHECK(t.Skip(32) == FrameTracker::Event::kFrameEnd);
  REQUIRE(t.Feed(Header(flags::kCipher, 0, 0, 20)).ok());
  CHECK(t.payload_remaining() == 20);
}

TEST_CASE("frame tracker: a 6.x CTR frame of size 0 is empty (no padding to make it whole)") {
  FrameTracker t;
  t.set_cipher_block(0);
  auto st = t.Feed(Header(flags::kCipher | flags::kRencodePlus, 0, 0, 0));
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("empty payload") != std::string::npos);
}

// A forwarder of a plain stream (what the relay's passthrough does with it): of each piece
// received, the bytes before a bad header may go on; the bad header's own bytes may not.
TEST_CASE("frame tracker: a forwarder knows how many bytes precede a bad header") {
  std::string good = Frame(0, "hello", flags::kRencode);
  std::string bad = Header(0, 0, 2, 4) + "abcd" + Header(0, 0, 2, 4) + "abcd";  // index 2 twice
  std::string data = good + bad;
  const size_t bad_at = good.size() + 12;
  for (size_t step : {size_t{0}, size_t{1}, size_t{5}, size_t{16}}) {
    CAPTURE(step);
    FrameTracker t;
    size_t forwarded = 0;
    bool clean = true;
    for (size_t pos = 0; pos < data.size();) {
      size_t n = step == 0 ? data.size() : std::min(step, data.size() - pos);
      std::string_view piece = std::string_view(data).substr(pos, n);
      const uint64_t piece_at = t.offset();
      bool failed = false;
      while (!piece.empty()) {
        auto r = t.Feed(piece);
        if (!r.ok()) {
          failed = true;
          break;
        }
        piece.remove_prefix(r->consumed);
      }
      if (failed) {
        // Bytes of this piece before the bad header may go; if the header began in an earlier
        // piece, some of it already went and the stream cannot end clean.
        clean = t.frame_start() >= piece_at;
        forwarded += clean ? t.frame_start() - piece_at : 0;
        break;
      }
      forwarded += n;
      pos += n;
    }
    CHECK(t.failed());
    CHECK(t.frame_start() == bad_at);
    CHECK(forwarded >= bad_at);
    CHECK(forwarded < bad_at + kHeaderSize);  // never a whole bad header
    CHECK(clean == (forwarded == bad_at));
    // Whole: everything before the bad header, nothing of it. Byte by byte: its first 7 bytes
    // went before the 8th decided.
    if (step == 0) CHECK(clean);
    if (step == 1) CHECK(forwarded == bad_at + kHeaderSize - 1);
  }
}

// ---- malformed input: every case its own test, fed whole and byte by byte --------------------

TEST_CASE("frame tracker: bad magic fails on the first byte") {
  FrameTracker t;
  auto r = t.Feed("G");
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
  CHECK(r.error().message == "invalid packet header byte 0x47, expected 'P'");
  CHECK(t.frame_start() == 0);
  for (const Walked& w : WalkBoth("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) {
    REQUIRE(w.error.has_value());
    CHECK(w.error->code == ErrorCode::kMalformed);
    CHECK(w.headers.empty());
    CHECK(w.error_start == 0);
  }
  CHECK(WalkBoth("GET / HTTP/1.1")[1].error_fed == 1);  // byte by byte: the first byte decides
}

TEST_CASE("frame tracker: bad magic after a good frame") {
  std::string ping = ReadGolden("rencode_ping.bin");
  for (const Walked& w : WalkBoth(ping + "XYZ")) {
    REQUIRE(w.error.has_value());
    CHECK(w.error->code == ErrorCode::kMalformed);
    CHECK(w.headers.size() == 1);
    CHECK(w.ends == std::vector<uint64_t>{ping.size()});
    CHECK(w.error_start == ping.size());
  }
}

TEST_CASE("frame tracker: frame over max_payload is refused from its header, one byte over the limit") {
  FrameLimits limits;
  limits.max_payload = 1000;
  for (const Walked& w : WalkBoth(Header(0, 0, 0, 1001) + std::string(1001, 'x'), limits)) {
    REQUIRE(w.error.has_value());
    CHECK(w.error->code == ErrorCode::kTooLarge);
    CHECK(w.error->message == "frame of 1001 bytes exceeds the 1000 byte limit");
    CHECK(w.headers.empty());
  }
  // Decided on the header: the payload need not arrive.
  CHECK(WalkBoth(Header(0, 0, 0, 1001) + std::string(1001, 'x'), limits)[1].error_fed == kHeaderSize);
  for (const Walked& w : WalkBoth(Header(0, 0, 0, 1000) + std::string(1000, 'x'), limits)) {
    CHECK(!w.error.has_value());
    CHECK(w.ends.size() == 1);
  }
}

TEST_CASE("frame tracker: frame claiming 4 GiB is refused, the limit capped at the hard maximum") {
  FrameLimits limits;
  limits.max_payload = size_t{1} << 40;
  for (const Walked& w : WalkBoth(Header(flags::kRencode, 0, 0, 0xffffffffu), limits)) {
    REQUIRE(w.error.has_value());
    CHECK(w.error->code == ErrorCode::kTooLarge);
    CHECK(w.error->message == "frame of 4294967295 bytes exceeds the 268435456 byte limit");
  }
}

TEST_CASE("frame tracker: the limit on an encrypted frame counts its padding") {
  FrameLimits limits;
  limits.max_payload = 1024;
  for (const Walked& w : WalkBoth(Header(flags::kCipher, 0, 0, 1024), limits)) {
    REQUIRE(w.error.has_value());
    CHECK(w.error->message == "frame of 1056 bytes exceeds the 1024 byte limit");
  }
  for (const Walked& w : WalkBoth(Header(flags::kCipher, 0, 0, 1020) + std::string(1024, 'x'), limits)) {
    CHECK(!w.error.has_value());
  }
}

TEST_CASE("frame tracker: an empty main packet is malformed") {
  std::string ping = ReadGolden("rencode_ping.bin");
  for (const Walked& w : WalkBoth(ping + Header(flags::kRencode, 0, 0, 0) + ping)) {
    REQUIRE(w.error.has_value());
    CHECK(w.error->code == ErrorCode::kMalformed);
    CHECK(w.error->message == "frame with an empty payload");
    CHECK(w.headers.size() == 1);
    CHECK(w.error_start == ping.size());
  }
}

TEST_CASE("frame tracker: an empty chunk is malformed") {
  for (const Walked& w : WalkBoth(Header(0, 0, 5, 0) + ReadGolden("rencode_ping.bin"))) {
    REQUIRE(w.error.has_value());
    CHECK(w.error->code == ErrorCode::kMalformed);
    CHECK(w.error->message == "frame with an empty payload");
    CHECK(w.headers.empty());
  }
}

TEST_CASE("frame tracker: a chunk index repeated before its main packet is malformed") {
  std::string data = Frame(2, "ab") + Frame(1, "cd") + Frame(2, "ef") + ReadGolden("rencode_ping.bin");
  for (const Walked& w : WalkBoth(data)) {
    REQUIRE(w.error.has_value());
    CHECK(w.error->code == ErrorCode::kMalformed);
    CHECK(w.error->message == "duplicate chunk at index 2");
    CHECK(w.headers.size() == 2);
    CHECK(w.error_start == 20);
  }
  // Decided on the header, before the repeated chunk's payload.
  CHECK(WalkBoth(data)[1].error_fed == 20 + kHeaderSize);
}

TEST_CASE("frame tracker: a 4th pending chunk is refused") {
  std::string data;
  for (uint8_t i = 1; i <= 4; ++i) data += Frame(i, "abc");
  data += ReadGolden("rencode_ping.bin");
  for (const Walked& w : WalkBoth(data)) {
    REQUIRE(w.error.has_value());
    CHECK(w.error->code == ErrorCode::kTooLarge);
    CHECK(w.error->message == "more than 3 chunks before their main packet (too many pending chunks)");
    CHECK(w.headers.size() == 3);
    CHECK(w.error_start == 33);
  }
}

TEST_CASE("frame tracker: max_pending_chunks is the tracker's") {
  FrameLimits limits;
  limits.max_pending_chunks = 1;
  for (const Walked& w : WalkBoth(Frame(1, "a") + Frame(2, "b"), limits)) {
    REQUIRE(w.error.has_value());
    CHECK(w.error->code == ErrorCode::kTooLarge);
    CHECK(w.error->message == "more than 1 chunks before their main packet (too many pending chunks)");
  }
  limits.max_pending_chunks = 0;
  for (const Walked& w : WalkBoth(Frame(1, "a"), limits)) {
    REQUIRE(w.error.has_value());
    CHECK(w.error->code == ErrorCode::kTooLarge);
  }
}

TEST_CASE("frame tracker: the checks run in order: size before empty before chunk rules") {
  FrameLimits limits;
  limits.max_payload = 10;
  // Index 1 twice, the second also over the limit: the size decides.
  for (const Walked& w : WalkBoth(Frame(1, "a") + Header(0, 0, 1, 11), limits)) {
    REQUIRE(w.error.has_value());
    CHECK(w.error->code == ErrorCode::kTooLarge);
  }
  // Index 1 twice, the second also empty: the empty payload decides.
  for (const Walked& w : WalkBoth(Frame(1, "a") + Header(0, 0, 1, 0), limits)) {
    REQUIRE(w.error.has_value());
    CHECK(w.error->message == "frame with an empty payload");
  }
}

TEST_CASE("frame tracker: errors are sticky") {
  FrameTracker t;
  REQUIRE(!t.Feed("X").ok());
  auto r = t.Feed(ReadGolden("rencode_ping.bin"));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
  CHECK(t.failed());
  CHECK(!t.at_boundary());
  CHECK(!t.in_payload());
  CHECK(t.payload_remaining() == 0);
  CHECK(t.Skip(5) == FrameTracker::Event::kNone);
  CHECK(!t.AcceptFrame(FrameHeader{flags::kRencode, 0, 0, 4}).ok());
}

// ---- whole frames (PacketDecoder's path) -------------------------------------------------------

TEST_CASE("frame tracker: AcceptFrame applies the same rules to whole frames") {
  FrameTracker t;
  CHECK(t.AcceptFrame(FrameHeader{0, 0, 1, 3}).ok());
  CHECK(t.offset() == kHeaderSize + 3);
  CHECK(t.at_boundary());
  CHECK(t.pending_chunks() == 1);
  Status s = t.AcceptFrame(FrameHeader{0, 0, 1, 3});
  REQUIRE(!s.ok());
  CHECK(s.error().message == "duplicate chunk at index 1");
  CHECK(t.frame_start() == kHeaderSize + 3);

  FrameTracker e;
  s = e.AcceptFrame(FrameHeader{flags::kRencode, 0, 0, 0});
  REQUIRE(!s.ok());
  CHECK(s.error().message == "frame with an empty payload");

  FrameLimits limits;
  limits.max_payload = 100;
  FrameTracker big(limits);
  s = big.AcceptFrame(FrameHeader{flags::kRencode, 0, 0, 101});
  REQUIRE(!s.ok());
  CHECK(s.error().code == ErrorCode::kTooLarge);
}

TEST_CASE("frame tracker: AcceptFrame inside a walked frame is refused") {
  FrameTracker t;
  REQUIRE(t.Feed(Header(0, 0, 0, 5)).ok());
  Status s = t.AcceptFrame(FrameHeader{flags::kRencode, 0, 0, 4});
  REQUIRE(!s.ok());
  CHECK(s.error().code == ErrorCode::kInternal);
}


TEST_CASE("frame tracker: xpra 6.x frames (flags 0x18) walk; an unknown flag bit fails at its header") {
  const std::string six = ReadGolden("xpra6_client_hello.bin");
  auto good = WalkBoth(six + Frame(0, "ping", 0x10));
  CHECK_FALSE(good[0].error.has_value());
  REQUIRE(good[0].headers.size() == 2);
  CHECK(good[0].headers[0].flags == 0x18);
  const std::string bad = Frame(0, "ping", 0x10) + Frame(0, "pong", 0x30);
  auto w = WalkBoth(bad);
  REQUIRE(w[0].error.has_value());
  CHECK(w[0].error->code == ErrorCode::kMalformed);
  CHECK(w[0].error->message == "invalid header flags 0x30: unknown flag bits");
  CHECK(w[0].error_start == 12);  // the second frame, nothing of it admitted
  CHECK(w[0].headers.size() == 1);
}

}  // namespace
}  // namespace xr
