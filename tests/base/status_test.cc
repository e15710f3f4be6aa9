#include "base/status.h"

#include <doctest/doctest.h>

#include <string>

namespace xr {
namespace {

Expected<int> Half(int v) {
  if (v % 2 != 0) return MakeError(ErrorCode::kMalformed, "odd");
  return v / 2;
}

TEST_CASE("status: Expected holds a value") {
  auto r = Half(8);
  REQUIRE(r.ok());
  CHECK(static_cast<bool>(r));
  CHECK(*r == 4);
}

TEST_CASE("status: Expected holds an error") {
  auto r = Half(7);
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
  CHECK(r.error().message == "odd");
  Error e = r.take_error();
  CHECK(e.message == "odd");
}

TEST_CASE("status: Expected moves its value out") {
  Expected<std::string> r(std::string(100, 'x'));
  std::string s = std::move(r).value();
  CHECK(s.size() == 100);
}

TEST_CASE("status: Status ok and error") {
  Status ok = Status::Ok();
  CHECK(ok.ok());
  Status bad = MakeError(ErrorCode::kTooLarge, "big");
  REQUIRE(!bad.ok());
  CHECK(bad.error().code == ErrorCode::kTooLarge);
  CHECK(bad.error().message == "big");
}

TEST_CASE("status: every ErrorCode has its own name") {
  CHECK(std::string(ErrorCodeName(ErrorCode::kOk)) == "ok");
  CHECK(std::string(ErrorCodeName(ErrorCode::kTruncated)) == "truncated");
  CHECK(std::string(ErrorCodeName(ErrorCode::kMalformed)) == "malformed");
  CHECK(std::string(ErrorCodeName(ErrorCode::kTooLarge)) == "too large");
  CHECK(std::string(ErrorCodeName(ErrorCode::kTooDeep)) == "too deep");
  CHECK(std::string(ErrorCodeName(ErrorCode::kUnsupported)) == "unsupported");
  CHECK(std::string(ErrorCodeName(ErrorCode::kAuthFailed)) == "authentication failed");
  CHECK(std::string(ErrorCodeName(ErrorCode::kNotFound)) == "not found");
  CHECK(std::string(ErrorCodeName(ErrorCode::kIo)) == "i/o error");
  CHECK(std::string(ErrorCodeName(ErrorCode::kTimeout)) == "timeout");
  CHECK(std::string(ErrorCodeName(ErrorCode::kInternal)) == "internal error");
}

}  // namespace
}  // namespace xr
