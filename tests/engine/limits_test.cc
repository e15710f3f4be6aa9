#include "engine/limits.h"

#include <doctest/doctest.h>

using namespace xr::engine;

TEST_CASE("address of a peer") {
  CHECK(AddressOf("1.2.3.4:5678") == "1.2.3.4");
  CHECK(AddressOf("[::1]:5678") == "::1");
  CHECK(AddressOf("unix") == "unix");
}

TEST_CASE("per-address connection cap") {
  Admission a(AdmissionConfig{2, 5, 600000, 300000});
  CHECK(a.Connect("1.1.1.1"));
  CHECK(a.Connect("1.1.1.1"));
  CHECK_FALSE(a.Connect("1.1.1.1"));
  CHECK(a.Connect("2.2.2.2"));  // other addresses unaffected
  a.Disconnect("1.1.1.1");
  CHECK(a.Connect("1.1.1.1"));
  CHECK(a.connections("1.1.1.1") == 2);
}

TEST_CASE("failed logins: free attempts, then doubling back-off, per address and per user") {
  Admission a(AdmissionConfig{0, 3, 600000, 8000});
  int64_t t = 1000000;
  for (int i = 0; i < 3; ++i) a.Failed("1.1.1.1", "foo", t);
  CHECK(a.BackoffMs("1.1.1.1", "foo", t) == 0);
  a.Failed("1.1.1.1", "foo", t);  // 4th: 1 s
  CHECK(a.BackoffMs("1.1.1.1", "foo", t) == 1000);
  CHECK(a.BackoffMs("9.9.9.9", "foo", t) == 1000);  // same user from elsewhere
  CHECK(a.BackoffMs("1.1.1.1", "bar", t) == 1000);  // same address, other user
  CHECK(a.BackoffMs("9.9.9.9", "bar", t) == 0);
  a.Failed("1.1.1.1", "foo", t);  // 5th: 2 s
  CHECK(a.BackoffMs("1.1.1.1", "foo", t + 500) == 1500);
  for (int i = 0; i < 10; ++i) a.Failed("1.1.1.1", "foo", t);
  CHECK(a.BackoffMs("1.1.1.1", "foo", t) == 8000);  // capped
  CHECK(a.BackoffMs("1.1.1.1", "foo", t + 8000) == 0);
}

TEST_CASE("success clears; old failures are forgotten") {
  Admission a(AdmissionConfig{0, 1, 60000, 300000});
  a.Failed("1.1.1.1", "foo", 0);
  a.Failed("1.1.1.1", "foo", 0);
  CHECK(a.BackoffMs("1.1.1.1", "foo", 0) > 0);
  a.Succeeded("1.1.1.1", "foo");
  CHECK(a.BackoffMs("1.1.1.1", "foo", 0) == 0);
  a.Failed("2.2.2.2", "x", 0);
  a.Failed("2.2.2.2", "x", 0);
  CHECK(a.BackoffMs("2.2.2.2", "x", 61000) == 0);
}
