// ControlSession, request by request: info, version, stop, and every malformed or refused case.
#include "engine/control.h"

#include <doctest/doctest.h>

#include "codec/frame_reader.h"
#include "codec/header.h"
#include "codec/packet.h"
#include "engine/version.h"

#include "tests/engine/packets_util.h"
using namespace xr;
using namespace xr::engine;

namespace {

struct RecordingIo : SessionIo {
  std::string to_client;
  int64_t deadline = -1;
  std::string closed;
  void SendToClient(std::string b) override { to_client += b; }
  void SendToServer(std::string) override { FAIL("a control session never talks to a server"); }
  void RunAuth(std::function<AuthOutcome()>) override { FAIL("no auth on control sockets"); }
  void ConnectServer(const registry::Target&) override { FAIL("no target on control sockets"); }
  void StartPassthrough() override {}
  void SetDeadline(int64_t ms) override { deadline = ms; }
  void Close(std::string_view why) override { closed = std::string(why); }
};

struct FakeTarget : ControlTarget {
  int stops = 0;
  bool gone = false;
  Value Info() override {
    Value v{Dict{}};
    v.set("username", "alice");
    v.set("uptime", 12);
    return v;
  }
  bool Stop() override {
    ++stops;
    return !gone;
  }
  std::string name() const override { return ":proxy-3"; }
};

struct Fixture {
  RecordingIo io;
  std::shared_ptr<FakeTarget> target = std::make_shared<FakeTarget>();
  ControlSession s{1, target, &io};
  Fixture() { s.Start(); }

  void SendHello(Value caps, Encoding e = Encoding::kRencode) {
    std::string wire;
    EncodeOptions o;
    o.encoding = e;
    REQUIRE(EncodePacket(Value(List{Value("hello"), std::move(caps)}), o, nullptr, &wire).ok());
    s.OnClientData(wire);
  }
  std::vector<Value> Replies() { return testing::DecodePackets(io.to_client); }
  // The single disconnect reply: (reason, detail).
  std::pair<std::string, std::string> Disconnect() {
    auto r = Replies();
    REQUIRE(r.size() == 1);
    const List& l = r[0].as_list();
    REQUIRE(l[0].as_string() == "disconnect");
    CHECK(!io.closed.empty());
    return {l[1].as_string(), l.size() > 2 ? l[2].as_string() : ""};
  }
};

Value Request(std::string_view mode, bool flag = true) {
  Value caps{Dict{}};
  caps.set("version", "3.1.3");
  caps.set("request", mode);
  if (flag) caps.set(std::string(mode) + "_request", true);
  return caps;
}

}  // namespace

TEST_CASE("a request must come within the request timeout") {
  Fixture f;
  CHECK(f.io.deadline == 10000);
  f.s.OnTimeout();
  CHECK(f.Disconnect().first == "login timeout");
}

TEST_CASE("info: the target's info in a hello, then a disconnect after 5 s") {
  Fixture f;
  f.SendHello(Request("info"));
  auto r = f.Replies();
  REQUIRE(r.size() == 1);
  CHECK(r[0].as_list()[0].as_string() == "hello");
  Caps caps(r[0].as_list()[1]);
  CHECK(caps.get_string("username") == "alice");
  CHECK(caps.get_int("uptime") == 12);
  CHECK(f.io.deadline == 5000);
  CHECK(f.io.closed.empty());
  f.io.to_client.clear();
  f.s.OnTimeout();
  CHECK(f.Disconnect().first == "client exit timeout");
}

TEST_CASE("info asked with only request=info (no info_request flag)") {
  Fixture f;
  f.SendHello(Request("info", /*flag=*/false));
  auto r = f.Replies();
  REQUIRE(r.size() == 1);
  CHECK(r[0].as_list()[0].as_string() == "hello");
}

TEST_CASE("info over bencode is answered in bencode") {
  Fixture f;
  f.SendHello(Request("info"), Encoding::kBencode);
  FrameReader r;
  r.Feed(f.io.to_client);
  auto frame = r.Next();
  REQUIRE(frame.ok());
  REQUIRE(frame->has_value());
  CHECK(((**frame).header.flags & flags::kRencode) == 0);
}

TEST_CASE("version: the relay's version") {
  Fixture f;
  f.SendHello(Request("version"));
  auto r = f.Replies();
  REQUIRE(r.size() == 1);
  CHECK(Caps(r[0].as_list()[1]).get_string("version") == kRelayVersion);
}

TEST_CASE("stop: the target is stopped and the caller told 'done'") {
  Fixture f;
  f.SendHello(Request("stop"));
  CHECK(f.target->stops == 1);
  auto [why, detail] = f.Disconnect();
  CHECK(why == "done");
  CHECK(detail.find(":proxy-3") != std::string::npos);
}

TEST_CASE("stop of something already gone: control command error") {
  Fixture f;
  f.target->gone = true;
  f.SendHello(Request("stop"));
  CHECK(f.Disconnect().first == "control command error");
}

TEST_CASE("a hello asking for a challenge is refused: no authentication here") {
  Fixture f;
  Value caps = Request("info");
  caps.set("challenge", true);
  f.SendHello(caps);
  auto [why, detail] = f.Disconnect();
  CHECK(why == "authentication error");
  CHECK(detail.find("does not use authentication") != std::string::npos);
}

TEST_CASE("an unknown request: control command error naming what is supported") {
  Fixture f;
  f.SendHello(Request("screenshot"));
  auto [why, detail] = f.Disconnect();
  CHECK(why == "control command error");
  CHECK(detail.find("'info', 'version' and 'stop'") != std::string::npos);
  CHECK(f.target->stops == 0);
}

TEST_CASE("a packet other than hello: control command error") {
  Fixture f;
  std::string wire;
  REQUIRE(EncodePacket(Value(List{Value("ping"), Value(1)}), EncodeOptions{}, nullptr, &wire).ok());
  f.s.OnClientData(wire);
  CHECK(f.Disconnect().first == "control command error");
}

TEST_CASE("garbage bytes: protocol error") {
  Fixture f;
  f.s.OnClientData("GET / HTTP/1.0\r\n\r\n");
  CHECK(f.Disconnect().first == "protocol error");
}

TEST_CASE("an encrypted frame: protocol error") {
  Fixture f;
  std::string h(kHeaderSize, '\0');
  EncodeHeader(FrameHeader{flags::kRencode | flags::kCipher, 0, 0, 16}, h.data());
  f.s.OnClientData(h + std::string(32, 'x'));
  CHECK(f.Disconnect().first == "protocol error");
}

TEST_CASE("an oversized frame: protocol error, nothing allocated for it") {
  Fixture f;
  std::string h(kHeaderSize, '\0');
  EncodeHeader(FrameHeader{flags::kRencode, 0, 0, 64u << 20}, h.data());
  f.s.OnClientData(h);
  CHECK(f.Disconnect().first == "protocol error");
}

TEST_CASE("the caller's own disconnect closes quietly") {
  Fixture f;
  std::string wire;
  REQUIRE(EncodePacket(Value(List{Value("disconnect"), Value("done")}), EncodeOptions{}, nullptr, &wire).ok());
  f.s.OnClientData(wire);
  CHECK(f.Replies().empty());
  CHECK(!f.io.closed.empty());
}

TEST_CASE("a request split into single bytes is answered once") {
  Fixture f;
  std::string wire;
  REQUIRE(EncodePacket(Value(List{Value("hello"), Request("version")}), EncodeOptions{}, nullptr, &wire).ok());
  for (char c : wire) f.s.OnClientData(std::string_view(&c, 1));
  CHECK(f.Replies().size() == 1);
}
