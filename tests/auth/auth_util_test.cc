#include "auth/auth_util.h"

#include <doctest/doctest.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

namespace xr::auth {
namespace {

TEST_CASE("ParseModuleSpec: bare module name") {
  auto s = ParseModuleSpec("allow");
  REQUIRE(s.ok());
  CHECK(s->name == "allow");
  CHECK(s->options.empty());
}

TEST_CASE("ParseModuleSpec: comma separator") {
  auto s = ParseModuleSpec("sqlite,filename=/x.db");
  REQUIRE(s.ok());
  CHECK(s->name == "sqlite");
  REQUIRE(s->options.size() == 1);
  CHECK(s->options[0] == std::pair<std::string, std::string>("filename", "/x.db"));
}

TEST_CASE("ParseModuleSpec: colon separator and several options") {
  auto s = ParseModuleSpec("sqlite:filename=/x.db,password_query=SELECT 1");
  REQUIRE(s.ok());
  CHECK(s->name == "sqlite");
  REQUIRE(s->options.size() == 2);
  CHECK(s->options[1].first == "password_query");
  CHECK(s->options[1].second == "SELECT 1");
}

TEST_CASE("ParseModuleSpec: the first of ':' and ',' ends the name") {
  // As xpra: "file,filename=C:x" splits on ',' first; the ':' belongs to the value.
  auto s = ParseModuleSpec("file,filename=a:b");
  REQUIRE(s.ok());
  CHECK(s->name == "file");
  CHECK(s->options[0].second == "a:b");
  auto t = ParseModuleSpec("file:filename=a,b=c");
  REQUIRE(t.ok());
  CHECK(t->name == "file");
  REQUIRE(t->options.size() == 2);
  CHECK(t->options[1] == std::pair<std::string, std::string>("b", "c"));
}

TEST_CASE("ParseModuleSpec: module name is lower-cased") {
  auto s = ParseModuleSpec("SQLite,filename=x");
  REQUIRE(s.ok());
  CHECK(s->name == "sqlite");
}

TEST_CASE("ParseModuleSpec: commas inside a query continue the value") {
  auto s = ParseModuleSpec(
      "sqlite,filename=/x.db,sessions_query=SELECT uid, gid, displays FROM users WHERE username=(?) AND "
      "password=(?),prompt=token");
  REQUIRE(s.ok());
  REQUIRE(s->options.size() == 3);
  CHECK(s->options[1].first == "sessions_query");
  CHECK(s->options[1].second == "SELECT uid, gid, displays FROM users WHERE username=(?) AND password=(?)");
  CHECK(s->options[2] == std::pair<std::string, std::string>("prompt", "token"));
}

TEST_CASE("ParseModuleSpec: empty elements are skipped") {
  auto s = ParseModuleSpec("file,,filename=x,");
  REQUIRE(s.ok());
  REQUIRE(s->options.size() == 1);
  CHECK(s->options[0].second == "x");
}

TEST_CASE("ParseModuleSpec: empty module name is malformed") {
  auto s = ParseModuleSpec(",filename=x");
  REQUIRE(!s.ok());
  CHECK(s.error().code == ErrorCode::kMalformed);
  CHECK(!ParseModuleSpec("").ok());
}

TEST_CASE("ParseModuleSpec: first option without '=' is malformed") {
  auto s = ParseModuleSpec("file,filename");
  REQUIRE(!s.ok());
  CHECK(s.error().code == ErrorCode::kMalformed);
  CHECK(s.error().message.find("'filename'") != std::string::npos);
}

TEST_CASE("ModuleOptions: unknown option lists the valid ones") {
  ModuleOptions o("sqlite", {{"filenme", "x"}});
  Status st = o.CheckAllowed({"filename", "password_query"});
  REQUIRE(!st.ok());
  CHECK(st.error().code == ErrorCode::kMalformed);
  CHECK(st.error().message ==
        "unknown option 'filenme' for sqlite authentication, valid options: filename, password_query, prompt");
}

TEST_CASE("ModuleOptions: prompt is always allowed, last value wins") {
  ModuleOptions o("file", {{"prompt", "pin"}, {"filename", "a"}, {"filename", "b"}});
  CHECK(o.CheckAllowed({"filename"}).ok());
  CHECK(o.prompt() == "pin");
  CHECK(o.Get("filename").value() == "b");
  CHECK(!o.Get("value").has_value());
  CHECK(ModuleOptions("x", {}).prompt() == "password");
}

TEST_CASE("ModuleOptions: GetNonEmpty") {
  ModuleOptions o("password", {{"value", ""}});
  auto empty = o.GetNonEmpty("value", std::nullopt);
  REQUIRE(!empty.ok());
  CHECK(empty.error().code == ErrorCode::kMalformed);
  auto missing = ModuleOptions("password", {}).GetNonEmpty("value", std::nullopt);
  REQUIRE(!missing.ok());
  CHECK(missing.error().message == "password authentication needs value=");
  auto fallback = ModuleOptions("env", {}).GetNonEmpty("name", std::string("XPRA_PASSWORD"));
  REQUIRE(fallback.ok());
  CHECK(*fallback == "XPRA_PASSWORD");
}

TEST_CASE("ParseSimpleDict: like xpra's parse_simple_dict") {
  OptionList d = ParseSimpleDict("a=1;;b=x=y;junk;a=2;c=", ';');
  REQUIRE(d.size() == 3);
  CHECK(d[0] == std::pair<std::string, std::string>("a", "2"));   // value replaced, position kept
  CHECK(d[1] == std::pair<std::string, std::string>("b", "x=y"));  // split on the first '='
  CHECK(d[2] == std::pair<std::string, std::string>("c", ""));
  CHECK(ParseSimpleDict("", ';').empty());
}

TEST_CASE("ParseEnvOptions: KEY=VALUE strings") {
  auto e = ParseEnvOptions("A=1;B=2");
  REQUIRE(e.size() == 2);
  CHECK(e[0] == "A=1");
  CHECK(e[1] == "B=2");
}

TEST_CASE("SplitDisplays: trims and drops empty entries") {
  auto d = SplitDisplays(" :100, tcp://h:1/ ,,");
  REQUIRE(d.size() == 2);
  CHECK(d[0] == ":100");
  CHECK(d[1] == "tcp://h:1/");
  CHECK(SplitDisplays("").empty());
}

TEST_CASE("ParseUid / ParseGid: numbers, names, defaults") {
  CHECK(ParseUid("1000") == 1000);
  CHECK(ParseUid(" 42 ") == 42);
  CHECK(ParseGid("+7") == 7);
  CHECK(ParseUid("root") == 0);
  CHECK(ParseGid("root") == 0);
  // Empty: the uid of "nobody" (xpra's DEFAULT_UID), or getuid() when there is none.
  struct passwd* nobody = getpwnam("nobody");
  CHECK(ParseUid("") == (nobody != nullptr ? static_cast<int64_t>(nobody->pw_uid) : static_cast<int64_t>(getuid())));
  struct group* nogroup = getgrnam("nobody");
  CHECK(ParseGid("") == (nogroup != nullptr ? static_cast<int64_t>(nogroup->gr_gid) : static_cast<int64_t>(getgid())));
  // An unknown name falls back to the process's ids.
  CHECK(ParseUid("no-such-user-xr") == static_cast<int64_t>(getuid()));
  CHECK(ParseGid("no-such-group-xr") == static_cast<int64_t>(getgid()));
  CHECK(ParseUid("+-5") == static_cast<int64_t>(getuid()));
}

TEST_CASE("ParseUid: $XPRA_AUTHENTICATION_DEFAULT_UID") {
  setenv("XPRA_AUTHENTICATION_DEFAULT_UID", "root", 1);
  CHECK(ParseUid("") == 0);
  unsetenv("XPRA_AUTHENTICATION_DEFAULT_UID");
}

TEST_CASE("EffectiveUsername and ProcessSessionEntry") {
  CHECK(EffectiveUsername("bob") == "bob");
  CHECK(!EffectiveUsername("").empty());
  CHECK(EffectiveUsername("") == ProcessUsername());
  SessionEntry e = ProcessSessionEntry();
  CHECK(e.uid == static_cast<int64_t>(getuid()));
  CHECK(e.gid == static_cast<int64_t>(getgid()));
  CHECK(e.displays.empty());
}

TEST_CASE("AbsolutePath") {
  CHECK(AbsolutePath("/a/b") == "/a/b");
  const std::string rel = AbsolutePath("x.db");
  CHECK(rel.front() == '/');
  CHECK(rel.size() > 5);
  CHECK(rel.substr(rel.size() - 5) == "/x.db");
}

}  // namespace
}  // namespace xr::auth
