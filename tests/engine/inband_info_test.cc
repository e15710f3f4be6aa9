// In-band info: an info-request from the client makes the server's info-response carry the
// relay's "proxy" subtree; everything else passes unchanged, whole and byte by byte.
#include "engine/inband_info.h"

#include <doctest/doctest.h>

#include <string>

#include "codec/decode_limits.h"
#include "codec/frame_reader.h"
#include "codec/packet.h"
#include "tests/engine/packets_util.h"

using namespace xr;
using namespace xr::engine;

namespace {

std::string Wire(const Value& packet) {
  std::string out;
  REQUIRE(EncodePacket(packet, EncodeOptions{}, nullptr, &out).ok());
  return out;
}

std::string InfoResponse() {
  Value info{Dict{}};
  info.set("server", "xpra-3.1.3");
  return Wire(Value(List{Value("info-response"), info}));
}

// What the connection does with the bytes InbandInfo forwards: follows them and keeps them.
struct FakeSink : InbandInfo::Sink {
  FrameBoundary frames;
  std::string to_client;
  bool bad = false;
  FrameBoundary& to_client_frames() override { return frames; }
  void QueueToClient(std::string bytes) override { to_client += bytes; }
  void ForwardToClient(std::string bytes) override {
    frames.Feed(bytes);
    if (frames.failed()) {
      bad = true;
      return;
    }
    to_client += bytes;
  }
  void BadServerFrame(std::string_view) override { bad = true; }
  bool closing() const override { return bad; }
  Value ProxyInfo() const override {
    Value v{Dict{}};
    v.set("instance", ":proxy-7");
    return v;
  }
};

}  // namespace

TEST_CASE("nothing is expected until the client asks") {
  InbandInfo info;
  CHECK_FALSE(info.expecting());
  info.WatchClient(Wire(Value(List{Value("ping"), Value(1)})), 0);
  CHECK_FALSE(info.expecting());
}

TEST_CASE("the info-response gets the proxy subtree; packets around it pass unchanged") {
  for (bool bytewise : {false, true}) {
    CAPTURE(bytewise);
    InbandInfo info;
    std::string request = Wire(Value(List{Value("info-request"), Value(List{}), Value(List{})}));
    if (bytewise) {
      for (char c : request) info.WatchClient(std::string_view(&c, 1), 0);
    } else {
      info.WatchClient(request, 0);
    }
    REQUIRE(info.expecting());
    FakeSink sink;
    std::string before = Wire(Value(List{Value("draw"), Value(1)}));
    std::string after = Wire(Value(List{Value("ping"), Value(2)}));
    std::string stream = before + InfoResponse() + after;
    if (bytewise) {
      for (char c : stream) info.Forward(std::string_view(&c, 1), sink, 1);
    } else {
      info.Forward(stream, sink, 1);
    }
    CHECK_FALSE(info.expecting());
    CHECK_FALSE(sink.bad);
    auto got = testing::DecodePackets(sink.to_client);
    REQUIRE(got.size() == 3);
    CHECK(got[0].as_list()[0].as_string() == "draw");
    CHECK(got[1].as_list()[0].as_string() == "info-response");
    const Value& dict = got[1].as_list()[1];
    CHECK(dict.find("server") != nullptr);
    REQUIRE(dict.find("proxy") != nullptr);
    CHECK(dict.find("proxy")->find("instance")->as_string() == ":proxy-7");
    CHECK(got[2].as_list()[0].as_string() == "ping");
    CHECK(sink.frames.at_boundary());
  }
}

TEST_CASE("a stream mid-frame is forwarded to its boundary before frames are read whole") {
  InbandInfo info;
  info.WatchClient(Wire(Value(List{Value("info-request")})), 0);
  FakeSink sink;
  std::string draw = Wire(Value(List{Value("draw"), Value(std::string(100, 'd'))}));
  sink.frames.Feed(draw.substr(0, 20));  // the first 20 bytes already went out
  sink.to_client = draw.substr(0, 20);
  info.Forward(draw.substr(20) + InfoResponse(), sink, 1);
  auto got = testing::DecodePackets(sink.to_client);
  REQUIRE(got.size() == 2);
  CHECK(got[1].as_list()[1].find("proxy") != nullptr);
}

namespace {
std::string Zlib(const Value& packet) {
  std::string out;
  EncodeOptions opts;
  opts.compressor = Compressor::kZlib;
  opts.level = 1;
  REQUIRE(EncodePacket(packet, opts, nullptr, &out).ok());
  return out;
}
}  // namespace

// Issue 13: the watcher decodes no more than an info-request needs, within a byte budget.
TEST_CASE("the watcher inflates at most 64 KiB of a client frame") {
  InbandInfo info;
  // An info-request padded to 100 KB, compressed to a few hundred bytes: not examined.
  info.WatchClient(Zlib(Value(List{Value("info-request"), Value(std::string(100000, 'x'))})), 0);
  CHECK_FALSE(info.expecting());
  // The same request at a sane size is noticed.
  info.WatchClient(Zlib(Value(List{Value("info-request"), Value(std::string(1000, 'x'))})), 0);
  CHECK(info.expecting());
}

TEST_CASE("the watcher has a byte budget of its own (1 MiB/s per connection)") {
  InbandInfo info;
  const Value ping(List{Value("ping"), Value(std::string(1000, 'p'))});
  for (int i = 0; i < 16; ++i) info.WatchClient(Zlib(ping), 0);  // 16 x 64 KiB: the budget is spent
  const std::string request = Zlib(Value(List{Value("info-request"), Value(std::string(1000, 'x'))}));
  info.WatchClient(request, 0);
  CHECK_FALSE(info.expecting());  // passed on unexamined
  info.WatchClient(request, 1000);  // a second later
  CHECK(info.expecting());
}

TEST_CASE("uncompressed frames that cannot be an info-request are not decoded") {
  InbandInfo info;
  for (int i = 0; i < 100; ++i) info.WatchClient(Wire(Value(List{Value("ping"), Value(std::string(60000, 'p'))})), 0);
  info.WatchClient(Wire(Value(List{Value("info-request")})), 0);
  CHECK(info.expecting());  // 6 MB of pings spent none of the budget
}
