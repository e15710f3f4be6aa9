#include "base/process.h"

#include <doctest/doctest.h>
#include <sys/resource.h>

namespace xr {
namespace {

TEST_CASE("process: RaiseFdLimit raises the soft limit to the hard limit") {
  rlimit before{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &before) == 0);
  // Lower the soft limit first (always allowed) so there is something to raise.
  if (before.rlim_cur > 64) {
    rlimit lower = before;
    lower.rlim_cur = 64;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &lower) == 0);
  }
  uint64_t got = RaiseFdLimit();
  rlimit after{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &after) == 0);
  CHECK(got == static_cast<uint64_t>(after.rlim_cur));
  CHECK(after.rlim_cur == before.rlim_max);
}

TEST_CASE("process: RaiseFdLimit is idempotent") {
  uint64_t a = RaiseFdLimit();
  uint64_t b = RaiseFdLimit();
  CHECK(a == b);
  CHECK(a > 0);
}

}  // namespace
}  // namespace xr
