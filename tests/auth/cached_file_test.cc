#include "auth/cached_file.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/auth/test_util.h"

namespace xr::auth {
namespace {

using testing::TempDir;

TEST_CASE("CachedFile: parses once, re-reads on change") {
  TempDir dir;
  const std::string path = dir.Write("f", "one");
  int parses = 0;
  CachedFile<std::string> f(path, [&](std::string d) {
    ++parses;
    return d + "!";
  });
  REQUIRE(f.Load().ok());
  CHECK(parses == 1);
  auto a = f.Get();
  REQUIRE(a.ok());
  CHECK(**a == "one!");
  CHECK(f.Get().ok());
  CHECK(parses == 1);  // unchanged: not parsed again
  dir.Write("f", "second");
  auto b = f.Get();
  REQUIRE(b.ok());
  CHECK(**b == "second!");
  CHECK(parses == 2);
  CHECK(**a == "one!");  // earlier snapshots stay valid
}

TEST_CASE("CachedFile: missing file") {
  TempDir dir;
  CachedFile<std::string> f(dir.file("missing"), [](std::string d) { return d; });
  Status s = f.Load();
  REQUIRE(!s.ok());
  CHECK(s.error().code == ErrorCode::kIo);
  auto g = f.Get();
  REQUIRE(!g.ok());
  CHECK(g.error().code == ErrorCode::kIo);
}

TEST_CASE("CachedFile: unreadable replacement keeps the old contents") {
  TempDir dir;
  const std::string path = dir.Write("f", "good");
  CachedFile<std::string> f(path, [](std::string d) { return d; });
  REQUIRE(f.Load().ok());
  REQUIRE(unlink(path.c_str()) == 0);
  REQUIRE(mkdir(path.c_str(), 0700) == 0);
  CHECK(!f.Load().ok());
  auto g = f.Get();
  REQUIRE(g.ok());
  CHECK(**g == "good");
}

TEST_CASE("ReadWholeFile: too large") {
  TempDir dir;
  const std::string path = dir.Write("big", std::string((16u << 20) + 1, 'x'));
  FileStamp stamp;
  auto r = ReadWholeFile(path, &stamp);
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kTooLarge);
}

TEST_CASE("StatFile: stamps differ after a rewrite") {
  TempDir dir;
  const std::string path = dir.Write("s", "a");
  auto s1 = StatFile(path);
  REQUIRE(s1.ok());
  dir.Write("s", "bb");
  auto s2 = StatFile(path);
  REQUIRE(s2.ok());
  CHECK(!(*s1 == *s2));
  CHECK(s2->size == 2);
}

}  // namespace
}  // namespace xr::auth
