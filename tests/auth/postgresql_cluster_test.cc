// The postgresql module's cluster parts that need no database: the user cache's epoch rule (a row
// read before an invalidation is never stored after it), its live flag, its bound, and the node's
// session counts. The database side runs in tests/engine/relay_cluster_policy_test.py.
#include "auth/postgresql_cluster.h"

#include <doctest/doctest.h>

namespace xr::auth {
namespace {

std::vector<Credential> Pw(const std::string& p) { return {Credential{p, p}}; }

TEST_CASE("user cache: nothing is cached or served until the listener is live") {
  PgUserCache cache;
  cache.PutCredentials("alice", Pw("pw"), cache.epoch());
  CHECK_FALSE(cache.credentials("alice").has_value());
  cache.SetLive(true);
  cache.PutCredentials("alice", Pw("pw"), cache.epoch());
  REQUIRE(cache.credentials("alice").has_value());
  CHECK(cache.credentials("alice")->front().password == "pw");
  cache.SetLive(false);  // the LISTEN connection was lost: flushed, and no longer served
  CHECK_FALSE(cache.credentials("alice").has_value());
  CHECK(cache.size() == 0);
}

TEST_CASE("user cache: a row read before a notification is not stored after it") {
  PgUserCache cache;
  cache.SetLive(true);
  const uint64_t before = cache.epoch();  // a worker starts reading alice's row
  cache.Drop("alice");                     // her password changes meanwhile
  cache.PutCredentials("alice", Pw("old"), before);
  CHECK_FALSE(cache.credentials("alice").has_value());
  const uint64_t reconnect = cache.epoch();
  cache.SetLive(false);
  cache.SetLive(true);  // the listener came back: reads begun before are stale too
  cache.PutCredentials("alice", Pw("old"), reconnect);
  CHECK_FALSE(cache.credentials("alice").has_value());
}

TEST_CASE("user cache: drop one user, or all with '*'; sessions cached per stored password") {
  PgUserCache cache;
  cache.SetLive(true);
  cache.PutCredentials("alice", Pw("a"), cache.epoch());
  cache.PutCredentials("bob", Pw("b"), cache.epoch());
  SessionEntry e;
  e.displays = {":10"};
  cache.PutSessions("alice", "a", {e}, cache.epoch());
  CHECK(cache.sessions("alice", "a").value().front().displays == std::vector<std::string>{":10"});
  CHECK_FALSE(cache.sessions("alice", "other").has_value());
  CHECK_FALSE(cache.sessions("bob", "b").has_value());
  cache.Drop("alice");
  CHECK_FALSE(cache.credentials("alice").has_value());
  CHECK(cache.credentials("bob").has_value());
  cache.Drop("*");
  CHECK_FALSE(cache.credentials("bob").has_value());
}

TEST_CASE("user cache: bounded") {
  PgUserCache cache;
  cache.SetLive(true);
  for (size_t i = 0; i < kPgUserCacheCapacity + 50; ++i) cache.PutCredentials("u" + std::to_string(i), Pw("p"), cache.epoch());
  CHECK(cache.size() == kPgUserCacheCapacity);
}

TEST_CASE("session counter: ends of counted sessions only, queued for the listener, bounded") {
  PgSessionCounter counter;
  CHECK_FALSE(counter.End("nobody"));
  counter.Began("bob");
  counter.Began("bob");
  CHECK(counter.End("bob"));
  bool resync = true;
  CHECK(counter.TakeEnds(&resync) == std::vector<std::string>{"bob"});
  CHECK_FALSE(resync);
  CHECK(counter.snapshot() == std::vector<std::pair<std::string, int64_t>>{{"bob", 1}});
  counter.NeedResync();
  CHECK(counter.End("bob"));
  CHECK(counter.TakeEnds(&resync).empty());  // the resync writes the counts whole
  CHECK(resync);
  CHECK(counter.snapshot().empty());
  for (size_t i = 0; i < kPgMaxPendingSessionEnds + 1; ++i) {
    counter.Began("u");
    counter.End("u");
  }
  CHECK(counter.TakeEnds(&resync).empty());
  CHECK(resync);
}

TEST_CASE("the login statement wraps the password query and keeps its $1") {
  const std::string sql = PgLoginSql("SELECT password FROM users WHERE username=($1)");
  CHECK(sql.find("LEFT JOIN (SELECT password FROM users WHERE username=($1)) q ON true") != std::string::npos);
  CHECK(sql.find("xr_backoff_wait_ms($2, $3,") != std::string::npos);
}

}  // namespace
}  // namespace xr::auth
