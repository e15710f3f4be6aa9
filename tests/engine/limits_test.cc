#include "engine/limits.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

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

namespace {
// One verification of `user` from `address` that fails at `now`.
void Fail(Admission& a, const std::string& address, const std::string& user, int64_t now) {
  a.Attempt(address, user);
  a.Finished(address, user, true, now);
}
}  // namespace

TEST_CASE("failed logins: free attempts, then doubling back-off, per source and per user") {
  Admission a(AdmissionConfig{0, 3, 600000, 8000});
  int64_t t = 1000000;
  for (int i = 0; i < 2; ++i) Fail(a, "1.1.1.1", "foo", t);
  Fail(a, "5.5.5.5", "foo", t);  // the user's failures come from two sources
  CHECK(a.BackoffMs("1.1.1.1", "foo", t) == 0);
  Fail(a, "1.1.1.1", "foo", t);  // 4th for the user, 3rd for 1.1.1.1
  CHECK(a.BackoffMs("9.9.9.9", "foo", t) == 1000);  // same user from elsewhere
  CHECK(a.BackoffMs("1.1.1.1", "bar", t) == 0);     // 1.1.1.1 still has its free attempts
  Fail(a, "1.1.1.1", "foo", t);
  CHECK(a.BackoffMs("1.1.1.1", "bar", t) == 1000);  // same source, other user
  CHECK(a.BackoffMs("9.9.9.9", "bar", t) == 0);
  Fail(a, "1.1.1.1", "foo", t);
  CHECK(a.BackoffMs("1.1.1.1", "foo", t + 500) == 3500);  // user: 6th failure, 4 s
  for (int i = 0; i < 10; ++i) Fail(a, "1.1.1.1", "foo", t);
  CHECK(a.BackoffMs("1.1.1.1", "foo", t) == 8000);  // capped
  CHECK(a.BackoffMs("1.1.1.1", "foo", t + 8000) == 0);
}

TEST_CASE("verifications in flight count: a parallel burst waits, then meets the back-off") {
  Admission a(AdmissionConfig{0, 5, 600000, 300000});
  int64_t t = 1000000;
  for (int i = 0; i < 6; ++i) {
    REQUIRE(a.MayVerify("1.1.1.1", "u" + std::to_string(i)));
    a.Attempt("1.1.1.1", "u" + std::to_string(i));
  }
  CHECK_FALSE(a.MayVerify("1.1.1.1", "other"));  // the 7th waits ...
  CHECK(a.BackoffMs("1.1.1.1", "other", t) == 0);  // ... it is not refused yet
  CHECK(a.MayVerify("2.2.2.2", "other"));         // other sources are not affected
  for (int i = 0; i < 6; ++i) a.Finished("1.1.1.1", "u" + std::to_string(i), true, t);
  CHECK(a.BackoffMs("1.1.1.1", "other", t) > 0);  // six failed: now it is refused
}

TEST_CASE("verifications in flight: parallel logins that succeed all get through") {
  Admission a(AdmissionConfig{0, 5, 600000, 300000});
  int done = 0;
  for (int round = 0; round < 4; ++round) {
    std::vector<int> started;
    for (int i = 0; i < 8; ++i) {
      if (a.MayVerify("1.1.1.1", "ok")) {
        a.Attempt("1.1.1.1", "ok");
        started.push_back(i);
      }
    }
    CHECK(started.size() == 6);
    for (size_t i = 0; i < started.size(); ++i) a.Finished("1.1.1.1", "ok", false, 0);
    done += static_cast<int>(started.size());
  }
  CHECK(done == 24);
  CHECK(a.BackoffMs("1.1.1.1", "ok", 0) == 0);
}

TEST_CASE("back-off: an IPv6 /64 is one source") {
  Admission a(AdmissionConfig{0, 2, 600000, 300000});
  for (int i = 1; i <= 3; ++i) Fail(a, "2001:db8:1:2::" + std::to_string(i), "u" + std::to_string(i), 0);
  CHECK(a.BackoffMs("2001:db8:1:2:ffff::9", "z", 0) > 0);
  CHECK(a.BackoffMs("2001:db8:1:3::1", "z", 0) == 0);  // the next /64
}

TEST_CASE("back-off: one user's success never clears another's record") {
  Admission a(AdmissionConfig{0, 2, 600000, 300000});
  for (int i = 0; i < 4; ++i) Fail(a, "1.1.1.1", "victim", 0);
  a.Attempt("1.1.1.1", "attacker");
  a.Finished("1.1.1.1", "attacker", false, 0);  // the attacker's own account
  CHECK(a.BackoffMs("1.1.1.1", "anyone", 0) > 0);
}

TEST_CASE("back-off: one source alone cannot lock a user out") {
  Admission a(AdmissionConfig{0, 2, 600000, 300000});
  for (int i = 0; i < 20; ++i) Fail(a, "6.6.6.6", "victim", 0);
  CHECK(a.BackoffMs("6.6.6.6", "victim", 0) > 0);  // the attacker's own source waits
  CHECK(a.BackoffMs("1.2.3.4", "victim", 0) == 0);  // the victim, elsewhere, does not
  CHECK(a.MayVerify("1.2.3.4", "victim"));
  Fail(a, "7.7.7.7", "victim", 0);  // failures from a second source: now the user waits too
  CHECK(a.BackoffMs("1.2.3.4", "victim", 0) > 0);
}

TEST_CASE("old failures are forgotten") {
  Admission a(AdmissionConfig{0, 1, 60000, 300000});
  Fail(a, "2.2.2.2", "x", 0);
  Fail(a, "2.2.2.2", "x", 0);
  CHECK(a.BackoffMs("2.2.2.2", "x", 0) > 0);
  CHECK(a.BackoffMs("2.2.2.2", "x", 61000) == 0);
}

TEST_CASE("source of an address") {
  CHECK(SourceOf("1.2.3.4") == "1.2.3.4");
  CHECK(SourceOf("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64");
  CHECK(SourceOf("::ffff:10.1.2.3") == "10.1.2.3");
  CHECK(SourceOf("unix:/tmp/x") == "unix:/tmp/x");
}

TEST_CASE("logins in progress per source: capped well below the relay-wide cap") {
  Admission a(AdmissionConfig{0, 5, 600000, 300000, 2});
  CHECK(a.BeginLogin("1.1.1.1"));
  CHECK(a.BeginLogin("1.1.1.1"));
  CHECK_FALSE(a.BeginLogin("1.1.1.1"));
  CHECK(a.BeginLogin("2.2.2.2"));
  CHECK(a.BeginLogin("2001:db8::1"));
  CHECK(a.BeginLogin("2001:db8::2"));
  CHECK_FALSE(a.BeginLogin("2001:db8::3"));  // same /64
  a.EndLogin("1.1.1.1");
  CHECK(a.BeginLogin("1.1.1.1"));
  CHECK(a.logins("1.1.1.1") == 2);
}

TEST_CASE("login memory: one budget for every unauthenticated connection") {
  LoginMemory m(1000);
  CHECK(m.Recharge(0, 600));
  CHECK_FALSE(m.Recharge(0, 500));  // a second connection would go over
  CHECK(m.used() == 600);
  CHECK(m.Recharge(600, 100));
  CHECK(m.Recharge(0, 500));
  CHECK(m.used() == 600);
}

TEST_CASE("key derivation budget: iterations per second, refilled over time") {
  KdfBudget k(10000);
  CHECK(k.Take(6000, 0));
  CHECK_FALSE(k.Take(6000, 0));
  CHECK_FALSE(k.Take(6000, 100));  // 4000 + 1000 refilled
  CHECK(k.Take(6000, 200));        // 4000 + 2000
  CHECK(k.Take(10000, 5000));      // full again, never more than one second's worth
  CHECK_FALSE(k.Take(1, 5000));
}

TEST_CASE("key derivations running at once: at most the configured slots, each given back once") {
  KdfBudget k(10000);
  CHECK(k.slots_in_use() == 0);
  CHECK(k.TakeSlot());
  CHECK(k.TakeSlot());
  CHECK_FALSE(k.TakeSlot());  // default: 2 at once
  CHECK(k.slots_in_use() == 2);
  k.GiveSlot();
  CHECK(k.TakeSlot());
  k.SetMaxConcurrent(3);
  CHECK(k.TakeSlot());
  CHECK_FALSE(k.TakeSlot());
  k.SetMaxConcurrent(0);  // never below one
  for (int i = 0; i < 3; ++i) k.GiveSlot();
  CHECK(k.slots_in_use() == 0);
  k.GiveSlot();  // more gives than takes do not go negative
  CHECK(k.slots_in_use() == 0);
  CHECK(k.TakeSlot());
  CHECK_FALSE(k.TakeSlot());
}

TEST_CASE("TLS handshake rate per source: a burst, then the refill rate; sources apart") {
  HandshakeRate r(2.0, 3);  // 2 per second, 3 at once
  for (int i = 0; i < 3; ++i) CHECK(r.Take("10.0.0.1", 1000));
  CHECK_FALSE(r.Take("10.0.0.1", 1000));  // the burst is spent
  CHECK(r.Take("10.0.0.2", 1000));        // another source has its own bucket
  CHECK_FALSE(r.Take("10.0.0.1", 1400));  // 0.8 of a token refilled
  CHECK(r.Take("10.0.0.1", 1500));        // one token after 500 ms at 2/s
  CHECK_FALSE(r.Take("10.0.0.1", 1500));
  // Long idle refills to the burst, never more.
  for (int i = 0; i < 3; ++i) CHECK(r.Take("10.0.0.1", 100000));
  CHECK_FALSE(r.Take("10.0.0.1", 100000));
}

TEST_CASE("TLS handshake rate per source: refilled sources are forgotten; a full table refuses new ones") {
  HandshakeRate r(1.0, 1, 2);  // at most 2 sources tracked
  CHECK(r.Take("a", 0));
  CHECK(r.Take("b", 0));
  CHECK(r.tracked() == 2);
  CHECK_FALSE(r.Take("c", 500));  // both still refilling: the table is full
  CHECK(r.Take("c", 1000));       // a and b are full again: forgotten, c fits
  CHECK(r.tracked() == 1);
  CHECK(r.Take("d", 1000));
  CHECK_FALSE(r.Take("d", 1000));  // a burst of 1
}

TEST_CASE("TLS handshake rate per source: 0 means no limit and records nothing") {
  HandshakeRate r(0, 1);
  for (int i = 0; i < 1000; ++i) CHECK(r.Take("10.0.0.1", 0));
  CHECK(r.tracked() == 0);
}

TEST_CASE("TLS handshake rate per source: a full table is swept at most every 100 ms") {
  HandshakeRate r(100.0, 1, 2);  // refilled after 10 ms, at most 2 sources tracked
  CHECK(r.Take("a", 5000));        // the first sweep (of an empty table) is at 5000
  CHECK(r.Take("b", 5000));
  CHECK_FALSE(r.Take("c", 5050));  // a and b are refilled, but the full table waits for its sweep
  CHECK_FALSE(r.Take("c", 5099));
  CHECK(r.tracked() == 2);
  CHECK(r.Take("c", 5100));  // 100 ms on: swept, c fits
  CHECK(r.tracked() == 1);
}

// Found by bench/compare --tls-only: six logins closed while their passwords were checked (the
// idle row stopping its client) left 127.0.0.1 with six failures; once the 1 s back-off ended,
// every later login from it waited for a verification slot until its login timeout (in state
// challenge-sent), for as long as the record was kept, instead of being let through one at a time.
TEST_CASE("past its free failures, a source gets one verification at a time once its back-off ends") {
  Admission a(AdmissionConfig{0, 5, 600000, 300000});
  const int64_t t = 1000000;
  for (int i = 0; i < 6; ++i) Fail(a, "1.1.1.1", "bench", t);
  CHECK(a.BackoffMs("1.1.1.1", "bench", t) == 1000);
  REQUIRE(a.BackoffMs("1.1.1.1", "bench", t + 1000) == 0);
  REQUIRE(a.MayVerify("1.1.1.1", "bench"));  // the back-off is over: one may be checked
  a.Attempt("1.1.1.1", "bench");
  CHECK_FALSE(a.MayVerify("1.1.1.1", "bench"));  // ... one at a time, never a parallel burst
  a.Finished("1.1.1.1", "bench", true, t + 1000);
  CHECK(a.BackoffMs("1.1.1.1", "bench", t + 1000) == 2000);  // that one failed too: 2 s
  REQUIRE(a.MayVerify("1.1.1.1", "bench"));
  a.Attempt("1.1.1.1", "bench");
  a.Finished("1.1.1.1", "bench", false, t + 3000);  // a success after the wait
  CHECK(a.MayVerify("1.1.1.1", "bench"));
}
