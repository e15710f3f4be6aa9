// Tests of bench/bench_common: the stream format both load tools rely on (built by the
// server, checked by the client), CRC32C, the histogram, the timer heap, URL parsing, JSON.
#include "bench/bench_common.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>

#include "codec/frame_reader.h"
#include "codec/header.h"
#include "codec/packet.h"

using namespace xr;
using namespace xr::bench;

namespace {

// Writes everything queued through a socketpair and returns the bytes.
std::string Drain(OutQueue* q) {
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  REQUIRE(SetNonBlocking(sv[0]));
  std::string got;
  char buf[65536];
  while (!q->empty()) {
    int64_t w = q->WriteTo(sv[0]);
    REQUIRE(w >= 0);
    ssize_t r;
    while ((r = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT)) > 0) got.append(buf, static_cast<size_t>(r));
  }
  ssize_t r;
  while ((r = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT)) > 0) got.append(buf, static_cast<size_t>(r));
  close(sv[0]);
  close(sv[1]);
  return got;
}

struct Decoded {
  std::vector<Value> packets;
  std::vector<std::string> chunks;  // raw chunk payloads seen (index 7)
};

// Splits wire bytes into frames, keeps the raw chunk payloads, and decodes the packets.
Decoded DecodeAll(const std::string& wire) {
  Decoded out;
  FrameReader reader;
  PacketDecoder decoder;
  reader.Feed(wire);
  while (true) {
    auto f = reader.Next();
    REQUIRE(f.ok());
    if (!f->has_value()) break;
    if ((*f)->header.index == kDrawDataIndex) out.chunks.push_back((*f)->payload);
    auto p = decoder.Push(std::move(**f));
    REQUIRE(p.ok());
    if (p->has_value()) out.packets.push_back(std::move(**p));
  }
  CHECK(reader.buffered() == 0);
  return out;
}

}  // namespace

TEST_CASE("Crc32c matches the standard check value and chains") {
  const char* s = "123456789";
  CHECK(Crc32c(0, s, 9) == 0xE3069283u);
  CHECK(Crc32c(Crc32c(0, s, 4), s + 4, 5) == 0xE3069283u);
  CHECK(Crc32c(0, "", 0) == 0u);
  std::string big(100003, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + 3);
  uint32_t whole = Crc32c(0, big.data(), big.size());
  uint32_t parts = Crc32c(Crc32c(0, big.data(), 777), big.data() + 777, big.size() - 777);
  CHECK(whole == parts);
  big[5000] ^= 1;
  CHECK(Crc32c(0, big.data(), big.size()) != whole);
}

TEST_CASE("a stream packet is a raw chunk at index 7 and a draw packet that describes it") {
  StreamBodies bodies(1000);
  OutQueue q;
  auto n = AppendStreamPacket(bodies, 42, 0x1234567890abcdefull, Encoding::kRencode, &q);
  REQUIRE(n.ok());
  std::string wire = Drain(&q);
  CHECK(wire.size() == *n);
  // First frame: the chunk header.
  auto h = DecodeHeader(wire);
  REQUIRE(h.ok());
  CHECK(h->index == kDrawDataIndex);
  CHECK(h->level == 0);
  CHECK(h->flags == 0);
  CHECK(h->payload_size == 1000);

  Decoded d = DecodeAll(wire);
  REQUIRE(d.chunks.size() == 1);
  REQUIRE(d.packets.size() == 1);
  const Value& p = d.packets[0];
  CHECK(p.as_list()[0].as_string() == "draw");
  CHECK(p.as_list()[6].as_string() == "rgb24");
  // The decoder put the chunk back in place of the b"" placeholder.
  CHECK(p.as_list()[kDrawDataIndex].as_string() == d.chunks[0]);
  auto info = ParseDrawPacket(p);
  REQUIRE(info.ok());
  CHECK(info->seq == 42);
  CHECK(info->size == 1000);
  REQUIRE(info->inline_data != nullptr);
  const std::string& payload = info->inline_data->as_string();
  CHECK(Crc32c(0, payload.data(), payload.size()) == info->checksum);
  uint64_t seq = 0, token = 0;
  ParseTrailer(payload.data() + payload.size() - kTrailerSize, &seq, &token);
  CHECK(seq == 42);
  CHECK(token == 0x1234567890abcdefull);
}

TEST_CASE("stream packets also encode with bencode") {
  StreamBodies bodies(64);
  OutQueue q;
  REQUIRE(AppendStreamPacket(bodies, 1, 7, Encoding::kBencode, &q).ok());
  Decoded d = DecodeAll(Drain(&q));
  REQUIRE(d.packets.size() == 1);
  auto info = ParseDrawPacket(d.packets[0]);
  REQUIRE(info.ok());
  CHECK(info->seq == 1);
  CHECK(info->size == 64);
}

TEST_CASE("consecutive packets carry different payloads and checksums") {
  StreamBodies bodies(4096);
  OutQueue q;
  REQUIRE(AppendStreamPacket(bodies, 1, 9, Encoding::kRencode, &q).ok());
  REQUIRE(AppendStreamPacket(bodies, 2, 9, Encoding::kRencode, &q).ok());
  Decoded d = DecodeAll(Drain(&q));
  REQUIRE(d.chunks.size() == 2);
  CHECK(d.chunks[0] != d.chunks[1]);
  CHECK(d.chunks[0].substr(0, 4080) != d.chunks[1].substr(0, 4080));  // bodies differ, not only trailers
  auto a = ParseDrawPacket(d.packets[0]);
  auto b = ParseDrawPacket(d.packets[1]);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->checksum != b->checksum);
}

TEST_CASE("a corrupted payload byte no longer matches the checksum") {
  StreamBodies bodies(2048);
  OutQueue q;
  REQUIRE(AppendStreamPacket(bodies, 3, 5, Encoding::kRencode, &q).ok());
  q.CorruptByte(kHeaderSize + 1000);
  Decoded d = DecodeAll(Drain(&q));
  REQUIRE(d.packets.size() == 1);
  auto info = ParseDrawPacket(d.packets[0]);
  REQUIRE(info.ok());
  const std::string& payload = info->inline_data->as_string();
  CHECK(Crc32c(0, payload.data(), payload.size()) != info->checksum);
  // The shared body itself was not touched.
  OutQueue q2;
  REQUIRE(AppendStreamPacket(bodies, 3, 5, Encoding::kRencode, &q2).ok());
  Decoded d2 = DecodeAll(Drain(&q2));
  auto info2 = ParseDrawPacket(d2.packets[0]);
  REQUIRE(info2.ok());
  const std::string& p2 = info2->inline_data->as_string();
  CHECK(Crc32c(0, p2.data(), p2.size()) == info2->checksum);
}

TEST_CASE("ParseDrawPacket rejects a draw packet without our options") {
  Value p(List{Value("draw"), Value(1), Value(0), Value(0), Value(10), Value(10), Value("rgb24"), Value::bytes("x"),
               Value(1), Value(30), Value(Dict{})});
  CHECK_FALSE(ParseDrawPacket(p).ok());
}

TEST_CASE("ParseDrawPacket rejects a short draw packet") {
  Value p(List{Value("draw"), Value(1), Value(0)});
  CHECK_FALSE(ParseDrawPacket(p).ok());
}

TEST_CASE("ParseDrawPacket rejects a negative sequence number") {
  Dict opts;
  opts.emplace_back(Value(kChecksumKey), Value(1));
  opts.emplace_back(Value(kSizeKey), Value(16));
  Value p(List{Value("draw"), Value(1), Value(0), Value(0), Value(10), Value(10), Value("rgb24"), Value::bytes(""),
               Value(-5), Value(30), Value(std::move(opts))});
  CHECK_FALSE(ParseDrawPacket(p).ok());
}

TEST_CASE("OutQueue writes owned bytes and views in order across partial writes") {
  std::string big(300000, 'v');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  OutQueue q;
  q.Append("head");
  q.AppendView(big);
  q.AppendOwned("tail");
  CHECK(q.size() == big.size() + 8);
  CHECK(Drain(&q) == "head" + big + "tail");
  CHECK(q.empty());
}

TEST_CASE("Histogram percentiles stay within 1% and merge") {
  Histogram h;
  for (int i = 1; i <= 100000; ++i) h.Record(i * 1000);  // 1 us .. 100 ms
  CHECK(h.count() == 100000);
  CHECK(h.min() == 1000);
  CHECK(h.max() == 100000000);
  auto near = [](int64_t got, double want) { return std::abs(static_cast<double>(got) - want) <= want * 0.01; };
  CHECK(near(h.Percentile(0.5), 50000000.0));
  CHECK(near(h.Percentile(0.99), 99000000.0));
  CHECK(near(h.Percentile(0.999), 99900000.0));
  CHECK(h.Percentile(0) == 1000);
  CHECK(h.Percentile(1) == 100000000);
  Histogram other;
  other.Record(5);
  h.Merge(other);
  CHECK(h.count() == 100001);
  CHECK(h.min() == 5);
  Histogram empty;
  CHECK(empty.Percentile(0.5) == 0);
}

TEST_CASE("TimerHeap pops due entries earliest first") {
  TimerHeap t;
  t.Push(30, 3, 0);
  t.Push(10, 1, 0);
  t.Push(20, 2, 0);
  CHECK(*t.NextDeadline() == 10);
  CHECK_FALSE(t.PopDue(5).has_value());
  auto a = t.PopDue(25);
  REQUIRE(a.has_value());
  CHECK(a->id == 1);
  auto b = t.PopDue(25);
  REQUIRE(b.has_value());
  CHECK(b->id == 2);
  CHECK_FALSE(t.PopDue(25).has_value());
  CHECK(t.size() == 1);
}

TEST_CASE("ParseUrl reads user, password, host, port and display like xpra") {
  auto ep = ParseUrl("tcp://alice:p%40ss@127.0.0.1:14501/100");
  REQUIRE(ep.ok());
  CHECK(ep->username == "alice");
  CHECK(ep->password == "p@ss");
  CHECK(ep->host == "127.0.0.1");
  CHECK(ep->port == 14501);
  CHECK(ep->display == ":100");
  CHECK(ep->Describe() == "tcp://alice@127.0.0.1:14501/100");  // never the password
  auto bare = ParseUrl("tcp://127.0.0.1:9/");
  REQUIRE(bare.ok());
  CHECK(bare->username.empty());
  CHECK(bare->display.empty());
  auto colon = ParseUrl("tcp://u@127.0.0.1:9/:7");
  REQUIRE(colon.ok());
  CHECK(colon->display == ":7");
}

TEST_CASE("ParseUrl takes ssl, ws and wss and rejects other schemes") {
  for (const char* scheme : {"ssl", "ws", "wss"}) {
    auto ep = ParseUrl(std::string(scheme) + "://u:pw@127.0.0.1:9/5");
    REQUIRE(ep.ok());
    CHECK(ep->scheme == scheme);
    CHECK(ep->Describe() == std::string(scheme) + "://u@127.0.0.1:9/5");
  }
  CHECK(ParseUrl("ssl://127.0.0.1:9/")->tls());
  CHECK_FALSE(ParseUrl("ssl://127.0.0.1:9/")->websocket());
  CHECK(ParseUrl("wss://127.0.0.1:9/")->tls());
  CHECK(ParseUrl("wss://127.0.0.1:9/")->websocket());
  CHECK_FALSE(ParseUrl("ws://127.0.0.1:9/")->tls());
  CHECK_FALSE(ParseUrl("tcp://127.0.0.1:9/")->tls());
  CHECK_FALSE(ParseUrl("http://127.0.0.1:1/").ok());
  CHECK_FALSE(ParseUrl("127.0.0.1:1").ok());
}

TEST_CASE("ParseUrl rejects a bad port") { CHECK_FALSE(ParseUrl("tcp://127.0.0.1:99999/").ok()); }

TEST_CASE("ParseUrl rejects a non-numeric display") { CHECK_FALSE(ParseUrl("tcp://127.0.0.1:1/abc").ok()); }

TEST_CASE("ParseHostPort needs a port") {
  CHECK(ParseHostPort("127.0.0.1:0").ok());
  CHECK_FALSE(ParseHostPort("127.0.0.1").ok());
}

TEST_CASE("Args takes --k=v, --k v and flags, and reports unknown options") {
  const char* argv[] = {"prog", "latency", "--json", "out.json", "--rate=5", "--quiet", "tcp://x/", "--bogus"};
  Args a(8, const_cast<char**>(argv), {"json", "rate"}, {"quiet"});
  CHECK(a.Get("json") == "out.json");
  CHECK(*a.GetDouble("rate", 0) == 5);
  CHECK(a.Has("quiet"));
  CHECK(a.positional().size() == 2);
  CHECK(a.problem() == "unknown option --bogus");
}

TEST_CASE("Args rejects a non-numeric value and a missing value") {
  const char* bad[] = {"prog", "--rate=abc"};
  CHECK_FALSE(Args(2, const_cast<char**>(bad), {"rate"}, {}).GetInt("rate", 0).ok());
  CHECK_FALSE(Args(2, const_cast<char**>(bad), {"rate"}, {}).GetDouble("rate", 0).ok());
  const char* missing[] = {"prog", "--json"};
  CHECK(Args(2, const_cast<char**>(missing), {"json"}, {}).problem() == "option --json needs a value");
}

TEST_CASE("JsonWriter nests objects and arrays and escapes strings") {
  JsonWriter j;
  j.BeginObject();
  j.String("s", "a\"b\n");
  j.Int("i", -3);
  j.BeginObject("o");
  j.Double("d", 1.5);
  j.EndObject();
  j.BeginArray("a");
  j.Bool("", true);
  j.EndArray();
  j.BeginArray("e");
  j.EndArray();
  j.EndObject();
  std::string want = "{\n  \"s\": \"a\\\"b\\n\",\n  \"i\": -3,\n  \"o\": {\n    \"d\": 1.5\n  },\n  \"a\": [\n    true\n  ],\n  \"e\": []\n}";
  CHECK(j.str() == want);
}

TEST_CASE("ReadCpuSeconds counts this process's CPU time and grows with work") {
  auto before = ReadCpuSeconds(getpid());
  REQUIRE(before.has_value());
  CHECK(*before >= 0);
  // Work until the figure moves (it ticks every 10 ms of CPU); a busy machine only makes it slower.
  const int64_t start = NowNs();
  uint32_t crc = 0;
  std::string data(4096, 'x');
  std::optional<double> after = before;
  while (after && *after <= *before && NowNs() - start < 20'000'000'000) {
    for (int i = 0; i < 1000; ++i) crc = Crc32c(crc, data.data(), data.size());
    after = ReadCpuSeconds(getpid());
  }
  REQUIRE(after.has_value());
  CHECK(*after > *before);
  CHECK(crc != 1);  // keeps the loop
  CHECK_FALSE(ReadCpuSeconds(-1).has_value());
}
