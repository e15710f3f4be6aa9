#include "codec/frame_reader.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "codec/frame_tracker.h"
#include "tests/codec/framing_test_util.h"

namespace xr {
namespace {

using framing_test::ReadGolden;
using framing_test::Header;

// Feeds `data` in pieces of `step` bytes (0 = all at once), collecting every frame.
// Stops at the first error, which is stored in *err.
std::vector<RawFrame> ReadAll(const std::string& data, size_t step, std::optional<Error>* err = nullptr,
                              FrameLimits limits = {}) {
  FrameReader r(limits);
  std::vector<RawFrame> frames;
  size_t pos = 0;
  do {
    size_t n = step == 0 ? data.size() : std::min(step, data.size() - pos);
    r.Feed(std::string_view(data).substr(pos, n));
    pos += n;
    while (true) {
      auto f = r.Next();
      if (!f.ok()) {
        if (err) *err = f.error();
        return frames;
      }
      if (!f->has_value()) break;
      frames.push_back(std::move(**f));
    }
  } while (pos < data.size());
  return frames;
}

struct ExpectedFrame {
  uint8_t flags, level, index;
  uint32_t size;
  size_t wire;
};

void CheckFrames(const std::string& name, const std::vector<ExpectedFrame>& want) {
  std::string data = ReadGolden(name);
  for (size_t step : {size_t{0}, size_t{1}, size_t{7}, size_t{4096}}) {
    CAPTURE(name);
    CAPTURE(step);
    std::optional<Error> err;
    auto frames = ReadAll(data, step, &err);
    CHECK(!err.has_value());
    REQUIRE(frames.size() == want.size());
    size_t total = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      CHECK(frames[i].header.flags == want[i].flags);
      CHECK(frames[i].header.level == want[i].level);
      CHECK(frames[i].header.index == want[i].index);
      CHECK(frames[i].header.payload_size == want[i].size);
      CHECK(frames[i].payload.size() == want[i].wire);
      // The payload is exactly the bytes after the header.
      CHECK(frames[i].payload == data.substr(total + kHeaderSize, want[i].wire));
      total += kHeaderSize + want[i].wire;
    }
    CHECK(total == data.size());
  }
}

TEST_CASE("frame reader: golden single frames, whole and byte by byte") {
  CheckFrames("rencode_hello.bin", {{0x01, 0x00, 0, 581, 581}});
  CheckFrames("bencode_hello.bin", {{0x00, 0x00, 0, 752, 752}});
  CheckFrames("zlib_hello.bin", {{0x01, 0x01, 0, 434, 434}});
  CheckFrames("lz4_hello.bin", {{0x01, 0x11, 0, 589, 589}});
  CheckFrames("lz4_9_hello.bin", {{0x01, 0x19, 0, 519, 519}});
}

TEST_CASE("frame reader: golden chunked packets") {
  CheckFrames("chunked_draw.bin", {{0x00, 0x00, 7, 35079, 35079}, {0x01, 0x00, 0, 48, 48}});
  CheckFrames("chunked_three.bin", {{0x00, 0x11, 1, 5025, 5025},
                                    {0x00, 0x11, 2, 6029, 6029},
                                    {0x00, 0x11, 3, 7033, 7033},
                                    {0x01, 0x00, 0, 20, 20}});
}

TEST_CASE("frame reader: golden stream of concatenated frames") {
  CheckFrames("multi_frames.bin", {{0x01, 0x00, 0, 21, 21},
                                   {0x00, 0x00, 7, 35079, 35079},
                                   {0x01, 0x00, 0, 48, 48},
                                   {0x01, 0x00, 0, 28, 28},
                                   {0x01, 0x11, 0, 589, 589},
                                   {0x00, 0x00, 7, 35079, 35079},
                                   {0x01, 0x00, 0, 48, 48}});
}

TEST_CASE("frame reader: golden encrypted stream reads padded wire sizes") {
  CheckFrames("encrypted_pkcs7.bin", {{0x03, 0x00, 0, 21, 32},
                                      {0x03, 0x11, 0, 589, 608},
                                      {0x02, 0x00, 7, 35079, 35104},
                                      {0x03, 0x00, 0, 48, 64},
                                      {0x03, 0x00, 0, 28, 32},
                                      {0x03, 0x00, 0, 64, 96}});
}

TEST_CASE("frame reader: bad magic fails on the first byte") {
  FrameReader r;
  r.Feed("G");
  auto f = r.Next();
  REQUIRE(!f.ok());
  CHECK(f.error().code == ErrorCode::kMalformed);
}

TEST_CASE("frame reader: an HTTP request is rejected as bad magic") {
  std::optional<Error> err;
  auto frames = ReadAll("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, &err);
  CHECK(frames.empty());
  REQUIRE(err.has_value());
  CHECK(err->code == ErrorCode::kMalformed);
}

TEST_CASE("frame reader: bad magic after a good frame") {
  std::string data = ReadGolden("rencode_ping.bin") + "XYZ";
  for (size_t step : {size_t{0}, size_t{1}}) {
    std::optional<Error> err;
    auto frames = ReadAll(data, step, &err);
    CHECK(frames.size() == 1);
    REQUIRE(err.has_value());
    CHECK(err->code == ErrorCode::kMalformed);
  }
}

TEST_CASE("frame reader: errors are sticky") {
  FrameReader r;
  r.Feed("X");
  REQUIRE(!r.Next().ok());
  r.Feed(ReadGolden("rencode_ping.bin"));
  auto f = r.Next();
  REQUIRE(!f.ok());
  CHECK(f.error().code == ErrorCode::kMalformed);
}

TEST_CASE("frame reader: truncated at every offset yields no frame and no error") {
  std::string data = ReadGolden("chunked_three.bin");
  for (size_t cut = 0; cut < data.size(); ++cut) {
    FrameReader r;
    r.Feed(std::string_view(data).substr(0, cut));
    size_t frames = 0;
    while (true) {
      auto f = r.Next();
      REQUIRE(f.ok());
      if (!f->has_value()) break;
      ++frames;
    }
    // Frames end at 8+5025, +8+6029, +8+7033, +8+20.
    size_t complete = (cut >= 5033) + (cut >= 11070) + (cut >= 18111) + (cut >= 18139);
    CHECK(frames == complete);
    // Whatever was not returned stays buffered.
    size_t consumed = (cut >= 5033 ? 5033 : 0) + (cut >= 11070 ? 6037 : 0) + (cut >= 18111 ? 7041 : 0) +
                      (cut >= 18139 ? 28 : 0);
    CHECK(r.buffered() == cut - consumed);
  }
}

TEST_CASE("frame reader: frame claiming 4 GiB is rejected from its header") {
  std::optional<Error> err;
  auto frames = ReadAll(Header(flags::kRencode, 0, 0, 0xffffffffu), 1, &err);
  CHECK(frames.empty());
  REQUIRE(err.has_value());
  CHECK(err->code == ErrorCode::kTooLarge);
  CHECK(err->message == "frame of 4294967295 bytes exceeds the 16777216 byte limit");
}

TEST_CASE("frame reader: oversized frame is rejected, one byte over the limit") {
  FrameLimits limits;
  limits.max_payload = 1000;
  std::optional<Error> err;
  auto frames = ReadAll(Header(0, 0, 0, 1001) + std::string(1001, 'x'), 0, &err, limits);
  CHECK(frames.empty());
  REQUIRE(err.has_value());
  CHECK(err->code == ErrorCode::kTooLarge);
  CHECK(err->message == "frame of 1001 bytes exceeds the 1000 byte limit");

  err.reset();
  frames = ReadAll(Header(0, 0, 0, 1000) + std::string(1000, 'x'), 0, &err, limits);
  CHECK(!err.has_value());
  CHECK(frames.size() == 1);
}

TEST_CASE("frame reader: encrypted frame limit counts the padding") {
  FrameLimits limits;
  limits.max_payload = 1024;
  std::optional<Error> err;
  // 1020 bytes pad to 1024: accepted; 1024 bytes pad to 1056: rejected.
  ReadAll(Header(flags::kCipher, 0, 0, 1020) + std::string(1024, 'x'), 0, &err, limits);
  CHECK(!err.has_value());
  ReadAll(Header(flags::kCipher, 0, 0, 1024), 0, &err, limits);
  REQUIRE(err.has_value());
  CHECK(err->message == "frame of 1056 bytes exceeds the 1024 byte limit");
}

TEST_CASE("frame reader: the limit never exceeds the hard maximum") {
  FrameLimits limits;
  limits.max_payload = size_t{1} << 40;
  FrameReader r(limits);
  CHECK(r.max_payload() == kHardMaxPayload);
  r.Feed(Header(0, 0, 0, static_cast<uint32_t>(kHardMaxPayload + 1)));
  auto f = r.Next();
  REQUIRE(!f.ok());
  CHECK(f.error().code == ErrorCode::kTooLarge);
  CHECK(f.error().message == "frame of 268435457 bytes exceeds the 268435456 byte limit");
}

TEST_CASE("frame reader: set_max_payload raises the limit for the next header") {
  FrameReader r;
  r.set_max_payload(32u << 20);
  r.Feed(Header(0, 0, 0, 20u << 20));
  auto f = r.Next();
  REQUIRE(f.ok());
  CHECK(!f->has_value());
  CHECK(r.buffered() == kHeaderSize);  // header accepted; the reader waits for 20 MiB
}

TEST_CASE("frame reader: empty unencrypted payload is malformed") {
  std::optional<Error> err;
  ReadAll(Header(flags::kRencode, 0, 0, 0), 0, &err);
  REQUIRE(err.has_value());
  CHECK(err->code == ErrorCode::kMalformed);
}

TEST_CASE("frame reader: empty encrypted payload still carries 32 padding bytes") {
  std::optional<Error> err;
  auto frames = ReadAll(Header(flags::kCipher | flags::kRencode, 0, 0, 0) + std::string(32, 'z'), 1, &err);
  CHECK(!err.has_value());
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].payload.size() == 32);
}

TEST_CASE("frame reader: buffered counts pending bytes, frames come out in order") {
  FrameReader r;
  std::string a = Header(0, 0, 1, 3) + "abc";
  std::string b = Header(1, 0, 0, 2) + "de";
  r.Feed(a + b.substr(0, 5));
  CHECK(r.buffered() == a.size() + 5);
  auto f1 = r.Next();
  REQUIRE(f1.ok());
  REQUIRE(f1->has_value());
  CHECK((*f1)->payload == "abc");
  CHECK((*f1)->header.index == 1);
  CHECK(r.buffered() == 5);
  auto f2 = r.Next();
  REQUIRE(f2.ok());
  CHECK(!f2->has_value());
  r.Feed(b.substr(5));
  f2 = r.Next();
  REQUIRE(f2.ok());
  REQUIRE(f2->has_value());
  CHECK((*f2)->payload == "de");
  CHECK(r.buffered() == 0);
}

TEST_CASE("frame reader: NextView gives the frames in place, valid until the next Feed") {
  FrameReader r;
  std::string a = Header(0, 0, 1, 3) + "abc";
  std::string b = Header(1, 0, 0, 2) + "de";
  std::string c = Header(1, 0, 0, 4) + "fghi";
  r.Feed(a + b + c.substr(0, 10));
  auto v1 = r.NextView();
  REQUIRE(v1.ok());
  REQUIRE(v1->has_value());
  auto v2 = r.NextView();
  REQUIRE(v2.ok());
  REQUIRE(v2->has_value());
  // Both views are still good: NextView does not move the buffer.
  CHECK((*v1)->payload == "abc");
  CHECK((*v1)->header.index == 1);
  CHECK((*v2)->payload == "de");
  CHECK((*v2)->header.flags == 1);
  auto v3 = r.NextView();
  REQUIRE(v3.ok());
  CHECK(!v3->has_value());
  CHECK(r.buffered() == 10);
  r.Feed(c.substr(10));
  v3 = r.NextView();
  REQUIRE(v3.ok());
  REQUIRE(v3->has_value());
  CHECK((*v3)->payload == "fghi");
  CHECK(r.buffered() == 0);
  // Next and NextView mix; the reader keeps its place across a fully consumed buffer.
  r.Feed(a);
  auto n = r.Next();
  REQUIRE(n.ok());
  REQUIRE(n->has_value());
  CHECK((*n)->payload == "abc");
  r.Feed(b);
  auto v4 = r.NextView();
  REQUIRE(v4.ok());
  REQUIRE(v4->has_value());
  CHECK((*v4)->payload == "de");
  CHECK(r.TakeBuffered().empty());
}

TEST_CASE("frame reader: NextView reports errors, and they stay") {
  FrameReader r;
  r.Feed(Header(0, 0, 0, 2) + "ok" + "X");
  auto v = r.NextView();
  REQUIRE(v.ok());
  REQUIRE(v->has_value());
  auto bad = r.NextView();
  CHECK(!bad.ok());
  CHECK(!r.Next().ok());
  CHECK(!r.NextView().ok());
}

TEST_CASE("frame reader: the framing rules are the tracker's: a repeated chunk index is refused") {
  std::string data = Header(0, 0, 2, 2) + "ab" + Header(0, 0, 2, 2) + "cd" + ReadGolden("rencode_ping.bin");
  for (size_t step : {size_t{0}, size_t{1}}) {
    std::optional<Error> err;
    auto frames = ReadAll(data, step, &err);
    CHECK(frames.size() == 1);
    REQUIRE(err.has_value());
    CHECK(err->code == ErrorCode::kMalformed);
    CHECK(err->message == "duplicate chunk at index 2");
  }
}

TEST_CASE("frame reader: an empty chunk is malformed") {
  for (size_t step : {size_t{0}, size_t{1}}) {
    std::optional<Error> err;
    auto frames = ReadAll(Header(0, 0, 3, 0) + ReadGolden("rencode_ping.bin"), step, &err);
    CHECK(frames.empty());
    REQUIRE(err.has_value());
    CHECK(err->code == ErrorCode::kMalformed);
  }
}

TEST_CASE("frame reader: after TakeBuffered, tracker() continues from the frame boundary the bytes start at") {
  FrameReader r;
  // Two chunks returned, a third whose payload has not all arrived.
  r.Feed(Header(0, 0, 1, 2) + "ab" + Header(0, 0, 2, 2) + "cd" + Header(0, 0, 3, 4) + "ef");
  for (int i = 0; i < 2; ++i) {
    auto f = r.Next();
    REQUIRE(f.ok());
    REQUIRE(f->has_value());
  }
  auto none = r.Next();
  REQUIRE(none.ok());
  CHECK(!none->has_value());
  std::string rest = r.TakeBuffered();
  CHECK(rest == Header(0, 0, 3, 4) + "ef");
  CHECK(r.buffered() == 0);
  // The handed-over bytes start at a boundary with chunks 1 and 2 pending.
  FrameTracker t = r.tracker();
  CHECK(t.at_boundary());
  CHECK(t.pending_chunks() == 2);
  auto s = t.Feed(rest);
  REQUIRE(s.ok());
  CHECK(s->event == FrameTracker::Event::kHeader);
  CHECK(t.pending_chunks() == 3);
  // A 4th pending chunk is refused across the handover, as it would be without one.
  t.Skip(4);
  auto fourth = t.Feed(Header(0, 0, 4, 1));
  REQUIRE(!fourth.ok());
  CHECK(fourth.error().code == ErrorCode::kTooLarge);
  // The reader itself starts over at that boundary too.
  r.Feed(rest + "gh" + Header(0, 0, 3, 1) + "x");
  auto f = r.Next();
  REQUIRE(f.ok());
  REQUIRE(f->has_value());
  auto dup = r.Next();
  REQUIRE(!dup.ok());
  CHECK(dup.error().message == "duplicate chunk at index 3");
}

}  // namespace
TEST_CASE("frame reader: set_cipher_block applies from the next header, also after TakeBuffered") {
  // A plain hello, then a 6.x CBC frame of 20 bytes (12 padding bytes) and a CTR-sized one.
  std::string data = Header(flags::kRencodePlus, 0, 0, 5) + "hello" + Header(flags::kCipher, 0, 0, 20) +
                     std::string(32, 'c') + Header(flags::kCipher, 0, 0, 7) + std::string(7, 't');
  FrameReader r;
  r.Feed(data);
  auto hello = r.Next();
  REQUIRE(hello.ok());
  REQUIRE(hello->has_value());
  r.set_cipher_block(16);
  auto cbc = r.Next();
  REQUIRE(cbc.ok());
  REQUIRE(cbc->has_value());
  CHECK((**cbc).payload.size() == 32);
  r.set_cipher_block(0);
  std::string rest = r.TakeBuffered();
  CHECK(rest.size() == kHeaderSize + 7);
  CHECK(r.tracker().cipher_block() == 0);  // what a consumer of the rest continues from
  r.Feed(rest);
  auto ctr = r.Next();
  REQUIRE(ctr.ok());
  REQUIRE(ctr->has_value());
  CHECK((**ctr).payload == std::string(7, 't'));
}

}  // namespace xr
