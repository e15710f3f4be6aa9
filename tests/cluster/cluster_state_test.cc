#include "cluster/cluster_state.h"

#include <doctest/doctest.h>

#include <string>

namespace xr::cluster {
namespace {

TEST_CASE("node names: letters, digits and . _ : @ -, 1 to 64 bytes") {
  CHECK(ValidNodeName("node1"));
  CHECK(ValidNodeName("relay-3.example.org:14501"));
  CHECK(ValidNodeName("a@b_c"));
  CHECK(ValidNodeName(std::string(64, 'n')));
  CHECK_FALSE(ValidNodeName(""));
  CHECK_FALSE(ValidNodeName(std::string(65, 'n')));
  CHECK_FALSE(ValidNodeName("two words"));
  CHECK_FALSE(ValidNodeName("slash/no"));
  CHECK_FALSE(ValidNodeName("new\nline"));
  CHECK_FALSE(ValidNodeName(std::string("nul\0x", 5)));
}

TEST_CASE("instances: :proxy-N with N decimal, no leading zero, bounded") {
  CHECK(ValidInstance(":proxy-1"));
  CHECK(ValidInstance(":proxy-1234567890"));
  CHECK_FALSE(ValidInstance(":proxy-"));
  CHECK_FALSE(ValidInstance(":proxy-01"));
  CHECK_FALSE(ValidInstance(":proxy-1a"));
  CHECK_FALSE(ValidInstance("proxy-1"));
  CHECK_FALSE(ValidInstance(":20"));
  CHECK_FALSE(ValidInstance(":proxy-" + std::string(30, '9')));
}

TEST_CASE("text arrays: every element quoted, quote and backslash escaped, NUL dropped") {
  CHECK(PgTextArray({}) == "{}");
  CHECK(PgTextArray({""}) == "{\"\"}");
  CHECK(PgTextArray({"a", "b c"}) == "{\"a\",\"b c\"}");
  CHECK(PgTextArray({"q\"uote", "back\\slash"}) == "{\"q\\\"uote\",\"back\\\\slash\"}");
  CHECK(PgTextArray({"{,}", "NULL"}) == "{\"{,}\",\"NULL\"}");  // quoted: never the NULL keyword or a delimiter
  CHECK(PgTextArray({std::string("n\0ul", 4)}) == "{\"nul\"}");
  CHECK(PgIntArray(std::vector<uint64_t>{}) == "{}");
  CHECK(PgIntArray(std::vector<uint64_t>{1, 2, 18446744073709551615u}) == "{1,2,18446744073709551615}");
  CHECK(PgIntArray(std::vector<int64_t>{-5, 0}) == "{-5,0}");
}

TEST_CASE("sync parameters: node then nine arrays in column order, counters clamped to bigint") {
  ConnRow a{":proxy-1", 7, "ann", "tcp://127.0.0.1:1/", "tcp", "192.0.2.1:5", 1700000000, 10, 20};
  ConnRow b{":proxy-2", 9, "b\"en", ":100", "wss", "[2001:db8::1]:6", 1700000001, UINT64_MAX, 0};
  auto p = SyncParams("node1", {a, b});
  REQUIRE(p.size() == 10);
  CHECK(p[0] == "node1");
  CHECK(p[1] == "{\":proxy-1\",\":proxy-2\"}");
  CHECK(p[2] == "{7,9}");
  CHECK(p[3] == "{\"ann\",\"b\\\"en\"}");
  CHECK(p[4] == "{\"tcp://127.0.0.1:1/\",\":100\"}");
  CHECK(p[5] == "{\"tcp\",\"wss\"}");
  CHECK(p[6] == "{\"192.0.2.1:5\",\"[2001:db8::1]:6\"}");
  CHECK(p[7] == "{1700000000,1700000001}");
  CHECK(p[8] == "{10,9223372036854775807}");
  CHECK(p[9] == "{20,0}");
  auto empty = SyncParams("n", {});
  CHECK(empty[1] == "{}");
}

TEST_CASE("stop payload: formats and parses back") {
  StopRequest r{"node3", ":proxy-12"};
  CHECK(FormatStopPayload(r) == "stop node3 :proxy-12");
  auto p = ParseStopPayload(FormatStopPayload(r));
  REQUIRE(p.ok());
  CHECK(p->node == "node3");
  CHECK(p->instance == ":proxy-12");
}

TEST_CASE("stop payload: over 256 bytes refused before parsing") {
  auto p = ParseStopPayload("stop " + std::string(300, 'n') + " :proxy-1");
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().code == ErrorCode::kTooLarge);
}

TEST_CASE("stop payload: another verb") {
  auto p = ParseStopPayload("kill node3 :proxy-1");
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().message == "not a stop request");
}

TEST_CASE("stop payload: no instance") {
  auto p = ParseStopPayload("stop node3");
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().message == "stop request without an instance");
}

TEST_CASE("stop payload: a bad node name") {
  CHECK_FALSE(ParseStopPayload("stop  :proxy-1").ok());  // empty
  CHECK_FALSE(ParseStopPayload("stop no\tde :proxy-1").ok());
  CHECK_FALSE(ParseStopPayload("stop " + std::string(65, 'n') + " :proxy-1").ok());
}

TEST_CASE("stop payload: a bad instance, or more fields") {
  CHECK_FALSE(ParseStopPayload("stop node3 :proxy-x").ok());
  CHECK_FALSE(ParseStopPayload("stop node3 :proxy-1 extra").ok());
  CHECK_FALSE(ParseStopPayload("stop node3 ").ok());
  CHECK_FALSE(ParseStopPayload("").ok());
}

TEST_CASE("connection ids: NODE/:proxy-N, or a bare :proxy-N") {
  auto full = ParseConnectionId("relay-2:14501/:proxy-4");
  REQUIRE(full.ok());
  CHECK(full->node == "relay-2:14501");
  CHECK(full->instance == ":proxy-4");
  CHECK(ConnectionId(full->node, full->instance) == "relay-2:14501/:proxy-4");
  auto bare = ParseConnectionId(":proxy-4");
  REQUIRE(bare.ok());
  CHECK(bare->node.empty());
  CHECK_FALSE(ParseConnectionId("node3/:proxy-x").ok());
  CHECK_FALSE(ParseConnectionId("bad node/:proxy-1").ok());
  CHECK_FALSE(ParseConnectionId("/:proxy-1").ok());
  CHECK_FALSE(ParseConnectionId("node3").ok());
}

TEST_CASE("TTL: alive while the last heartbeat is younger than the ttl") {
  CHECK(NodeAlive(0, 10000));
  CHECK(NodeAlive(9999, 10000));
  CHECK_FALSE(NodeAlive(10000, 10000));
  CHECK_FALSE(NodeAlive(60000, 10000));
}

TEST_CASE("back-off: starts at the minimum, doubles, stops at the maximum") {
  int64_t b = 0;
  std::vector<int64_t> seen;
  for (int i = 0; i < 6; ++i) seen.push_back(b = NextBackoffMs(b, 500, 5000));
  CHECK(seen == std::vector<int64_t>{500, 1000, 2000, 4000, 5000, 5000});
}

TEST_CASE("list output: a header, one line per row with its id, a summary that says when it is cut") {
  ListedRow r{"node2", ConnRow{":proxy-3", 3, "ann lee", "tcp://127.0.0.1:9/", "tcp", "127.0.0.1:40000", 0, 20480, 5}};
  std::string out = FormatList({r}, 1, 3);
  CHECK(out.find("ID") == 0);
  CHECK(out.find("\nnode2/:proxy-3 ") != std::string::npos);
  CHECK(out.find(" ann_lee ") != std::string::npos);  // one word per column
  CHECK(out.find("20 KiB") != std::string::npos);
  CHECK(out.substr(out.rfind('\n', out.size() - 2) + 1) == "1 connection on 3 live nodes\n");
  std::string cut = FormatList({r}, 5000, 1);
  CHECK(cut.find("5000 connections on 1 live node (showing the first 1)\n") != std::string::npos);
  std::string none = FormatList({}, 0, 2);
  CHECK(none.find("\n0 connections on 2 live nodes\n") != std::string::npos);
}

TEST_CASE("info output: every field, the age readable") {
  ListedRow r{"node2", ConnRow{":proxy-3", 3, "ann", "t", "wss", "c", 1000, 1, 2}};
  std::string out = FormatInfo(r, 1000 + 300);
  CHECK(out.find("id: node2/:proxy-3\n") != std::string::npos);
  CHECK(out.find("transport: wss\n") != std::string::npos);
  CHECK(out.find("started: 1000 (5m ago)\n") != std::string::npos);
  CHECK(out.find("bytes-to-server: 2\n") != std::string::npos);
}

}  // namespace
}  // namespace xr::cluster
