#include "base/fd.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <utility>

namespace xr {
namespace {

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

TEST_CASE("fd: closes on destruction") {
  int p[2];
  REQUIRE(pipe(p) == 0);
  {
    UniqueFd a(p[0]);
    UniqueFd b(p[1]);
    CHECK(a.valid());
    CHECK(a.get() == p[0]);
  }
  CHECK(!IsOpen(p[0]));
  CHECK(!IsOpen(p[1]));
}

TEST_CASE("fd: empty by default") {
  UniqueFd a;
  CHECK(!a.valid());
  CHECK(a.get() == -1);
}

TEST_CASE("fd: move transfers ownership") {
  int p[2];
  REQUIRE(pipe(p) == 0);
  UniqueFd w(p[1]);
  UniqueFd a(p[0]);
  UniqueFd b(std::move(a));
  CHECK(!a.valid());  // NOLINT(bugprone-use-after-move): the moved-from state is the contract
  CHECK(b.get() == p[0]);
  UniqueFd c;
  c = std::move(b);
  CHECK(c.get() == p[0]);
  CHECK(IsOpen(p[0]));
}

TEST_CASE("fd: move assignment closes the fd it held") {
  int p[2], q[2];
  REQUIRE(pipe(p) == 0);
  REQUIRE(pipe(q) == 0);
  UniqueFd a(p[0]), pw(p[1]), qw(q[1]);
  a = UniqueFd(q[0]);
  CHECK(!IsOpen(p[0]));
  CHECK(a.get() == q[0]);
}

TEST_CASE("fd: release gives up ownership, reset closes") {
  int p[2];
  REQUIRE(pipe(p) == 0);
  UniqueFd a(p[0]);
  int raw = a.release();
  CHECK(raw == p[0]);
  CHECK(!a.valid());
  a.reset(p[1]);
  CHECK(IsOpen(p[0]));  // released: still ours to close
  a.reset();
  CHECK(!IsOpen(p[1]));
  close(raw);
}

}  // namespace
}  // namespace xr
