#include "engine/log.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

using namespace xr;
using namespace xr::log;

namespace {
// 2026-11-21 05:00:00.123 UTC
constexpr int64_t kSec = 1795237200;
constexpr int64_t kUsec = 123456;

nlohmann::json Json(std::string_view category, std::string_view message, Level level = Level::kInfo) {
  std::string line = FormatLine(Format::kJson, kSec, kUsec, level, category, message);
  REQUIRE(line.back() == '\n');
  REQUIRE(line.find('\n') == line.size() - 1);  // one line, whatever the message holds
  return nlohmann::json::parse(line);           // throws (fails the test) on invalid JSON
}
}  // namespace

TEST_CASE("log: --log-format names") {
  CHECK(ParseFormat("text") == Format::kText);
  CHECK(ParseFormat("json") == Format::kJson);
  CHECK(!ParseFormat("JSON").has_value());
  CHECK(!ParseFormat("").has_value());
}

TEST_CASE("log: a JSON line has time (UTC, ms), level, category and message") {
  auto j = Json("main", "xpra-relay 1.0 on 127.0.0.1:14501", Level::kWarn);
  CHECK(j["time"] == "2026-11-21T05:00:00.123Z");
  CHECK(j["level"] == "warn");
  CHECK(j["category"] == "main");
  CHECK(j["message"] == "xpra-relay 1.0 on 127.0.0.1:14501");
  CHECK(!j.contains("conn"));
  CHECK(Json("x", "y", Level::kDebug)["level"] == "debug");
  CHECK(Json("x", "y", Level::kError)["level"] == "error");
}

TEST_CASE("log: a connection's line carries its id as a number") {
  auto j = Json("conn", "conn=42 peer=192.0.2.1 accepted on tcp 0.0.0.0:14501");
  CHECK(j["conn"] == 42);
  CHECK(j["message"] == "conn=42 peer=192.0.2.1 accepted on tcp 0.0.0.0:14501");
  CHECK(Json("conn", "conn=7")["conn"] == 7);
  CHECK(!Json("conn", "conn=x1 nope").contains("conn"));
  CHECK(!Json("conn", "conn=12abc").contains("conn"));
  CHECK(!Json("conn", "reconn=12 later").contains("conn"));
}

TEST_CASE("log: quotes, backslashes, control bytes and invalid UTF-8 are escaped") {
  std::string msg = std::string("say \"hi\" \\ tab\there\nnext\r\x01 bell\x7f ") + "\xff\xc0\xaf caf\xc3\xa9 \xf0\x9f\x98\x80";
  auto j = Json("auth", msg);
  CHECK(j["message"] == "say \"hi\" \\ tab\there\nnext\r\x01 bell\x7f \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd caf\xc3\xa9 \xf0\x9f\x98\x80");
  std::string raw = FormatLine(Format::kJson, kSec, kUsec, Level::kInfo, "auth", "\xed\xa0\x80");  // a surrogate
  CHECK(raw.find("\\ufffd\\ufffd\\ufffd") != std::string::npos);
}

TEST_CASE("log: the text format stays as it was") {
  std::string line = FormatLine(Format::kText, kSec, kUsec, Level::kInfo, "conn", "conn=1 hello");
  CHECK(line.ends_with(".123 INFO  [conn] conn=1 hello\n"));
}

TEST_CASE("log: SetFormat switches what Write() emits") {
  char path[] = "/tmp/xr-log-test-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  REQUIRE(OpenFile(path));
  SetFormat(Format::kJson);
  Write(Level::kInfo, "conn", "conn=9 closed");
  SetFormat(Format::kText);
  Write(Level::kInfo, "main", "plain");
  REQUIRE(OpenFile(""));
  std::ifstream in(path);
  std::string first, second;
  std::getline(in, first);
  std::getline(in, second);
  unlink(path);
  auto j = nlohmann::json::parse(first);
  CHECK(j["conn"] == 9);
  CHECK(j["category"] == "conn");
  CHECK(second.ends_with("INFO  [main] plain"));
}

// Issue 13: a peer string cannot start a log line of its own, drive a terminal or fill the log.
TEST_CASE("Sanitize: control characters escaped, a backslash doubled") {
  CHECK(Sanitize("alice") == "alice");
  CHECK(Sanitize("evil\nFORGED line") == "evil\\nFORGED line");
  CHECK(Sanitize("a\rb\tc") == "a\\rb\\tc");
  CHECK(Sanitize(std::string("x\x1b[2J\x7f\0y", 8)) == "x\\x1b[2J\\x7f\\x00y");
  CHECK(Sanitize("back\\nslash") == "back\\\\nslash");  // a literal backslash-n cannot pass for an escape
  CHECK(Sanitize("\xc3\xa9t\xc3\xa9") == "\xc3\xa9t\xc3\xa9");  // UTF-8 text unchanged
}

TEST_CASE("Sanitize: cut to the limit, marked") {
  std::string long_name(1000, 'a');
  std::string s = Sanitize(long_name);
  CHECK(s.size() == kMaxPeerString + 3);
  CHECK(s.ends_with("..."));
  CHECK(Sanitize("abcdef", 3) == "abc...");
  CHECK(Sanitize("abc", 3) == "abc");
}
