#include "auth/postgresql_cluster.h"

#include <algorithm>
#include <chrono>

namespace xr::auth {

// Keep in step with deploy/cluster/schema/010_login_policy.sql.
const char kPgClusterSchemaSql[] = R"SQL(
BEGIN;
SELECT pg_advisory_xact_lock(7871016);
-- Failed logins per source ('s': an IPv4 address, an IPv6 /64) and per user name ('u'), as the
-- relay's node-local Admission (engine/limits.h) keeps them, shared by every node.
CREATE TABLE IF NOT EXISTS xr_login_failures (
  kind "char" NOT NULL,
  key text NOT NULL,
  failures integer NOT NULL,
  last_at timestamptz NOT NULL,
  first_source text,
  many_sources boolean NOT NULL DEFAULT false,
  PRIMARY KEY (kind, key));
-- Sessions each node holds per user, and the nodes' heartbeats (rows of a node silent for the
-- TTL do not count).
CREATE TABLE IF NOT EXISTS xr_policy_nodes (node text PRIMARY KEY, seen_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS xr_user_sessions (
  node text NOT NULL,
  username text NOT NULL,
  sessions integer NOT NULL,
  PRIMARY KEY (node, username));

-- Milliseconds a login of p_user from p_source must wait (0: go ahead): after p_free failures the
-- wait doubles from 1 s per failure up to p_max_ms, counted from the last failure; failures older
-- than p_window_ms are forgotten; a user's own wait applies once its failures came from more than
-- one source.
-- (plpgsql: its plans are cached per connection; an SQL function that cannot be inlined is
-- planned again on every call, which cost 4x the database CPU per login.)
CREATE OR REPLACE FUNCTION xr_backoff_wait_ms(p_source text, p_user text, p_free integer, p_window_ms bigint,
                                              p_max_ms bigint) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT COALESCE(max(GREATEST(0, ceil(extract(epoch FROM
            f.last_at + LEAST(1000 * 2 ^ (LEAST(f.failures - p_free, 30) - 1), p_max_ms) * interval '1 millisecond'
            - clock_timestamp()) * 1000))), 0)::bigint
    FROM xr_login_failures f
    WHERE ((f.kind = 's' AND f.key = p_source) OR (f.kind = 'u' AND f.key = p_user AND f.many_sources))
      AND f.failures > p_free
      AND clock_timestamp() - f.last_at <= p_window_ms * interval '1 millisecond');
END $$;

-- One failed login of p_user from p_source; now and then forgets failures older than the window.
CREATE OR REPLACE FUNCTION xr_login_failed(p_source text, p_user text, p_window_ms bigint)
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO xr_login_failures AS f (kind, key, failures, last_at, first_source)
  VALUES ('s', p_source, 1, clock_timestamp(), NULL), ('u', p_user, 1, clock_timestamp(), p_source)
  ON CONFLICT (kind, key) DO UPDATE SET
    failures = CASE WHEN clock_timestamp() - f.last_at > p_window_ms * interval '1 millisecond' THEN 1
                    ELSE f.failures + 1 END,
    last_at = clock_timestamp(),
    many_sources = f.many_sources OR (f.kind = 'u' AND f.first_source IS DISTINCT FROM p_source);
  IF random() < 0.01 THEN
    DELETE FROM xr_login_failures WHERE clock_timestamp() - last_at > p_window_ms * interval '1 millisecond';
  END IF;
END $$;

-- Sessions p_user holds on the live nodes. (A connection table kept by the nodes can back this
-- function instead: xr_session_begin only needs the count.)
CREATE OR REPLACE FUNCTION xr_user_session_count(p_user text, p_ttl_ms bigint) RETURNS bigint
    LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT COALESCE(sum(s.sessions), 0)::bigint FROM xr_user_sessions s JOIN xr_policy_nodes n USING (node)
          WHERE s.username = p_user AND clock_timestamp() - n.seen_at <= p_ttl_ms * interval '1 millisecond');
END $$;

-- One more session of p_user on p_node unless the user holds p_max already: -1 when admitted,
-- else the sessions held.
CREATE OR REPLACE FUNCTION xr_session_begin(p_node text, p_user text, p_max integer, p_ttl_ms bigint)
    RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE held bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(7871017, hashtext(p_user));
  INSERT INTO xr_policy_nodes AS n VALUES (p_node, clock_timestamp())
    ON CONFLICT (node) DO UPDATE SET seen_at = EXCLUDED.seen_at;
  held := xr_user_session_count(p_user, p_ttl_ms);
  IF held >= p_max THEN RETURN held; END IF;
  INSERT INTO xr_user_sessions AS s VALUES (p_node, p_user, 1)
    ON CONFLICT (node, username) DO UPDATE SET sessions = s.sessions + 1;
  RETURN -1;
END $$;

CREATE OR REPLACE FUNCTION xr_session_end(p_node text, p_user text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE xr_user_sessions SET sessions = sessions - 1 WHERE node = p_node AND username = p_user;
  DELETE FROM xr_user_sessions WHERE node = p_node AND username = p_user AND sessions <= 0;
END $$;

-- The node is alive; nodes silent for ten TTLs are forgotten with their rows.
CREATE OR REPLACE FUNCTION xr_node_heartbeat(p_node text, p_ttl_ms bigint) RETURNS void LANGUAGE sql AS $$
  INSERT INTO xr_policy_nodes AS n VALUES (p_node, clock_timestamp())
    ON CONFLICT (node) DO UPDATE SET seen_at = EXCLUDED.seen_at;
  DELETE FROM xr_user_sessions WHERE node IN
    (SELECT node FROM xr_policy_nodes WHERE clock_timestamp() - seen_at > 10 * p_ttl_ms * interval '1 millisecond');
  DELETE FROM xr_policy_nodes WHERE clock_timestamp() - seen_at > 10 * p_ttl_ms * interval '1 millisecond';
$$;

-- A change to xpra's users table tells every node to drop its cached row (channel xr_users,
-- payload: the user name, or '*' for all of them when the name is too long for a payload or the
-- table was truncated).
CREATE OR REPLACE FUNCTION xr_users_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE name text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('xr_users', '*');
    RETURN NULL;
  END IF;
  IF TG_OP <> 'INSERT' THEN
    name := OLD.username;
    PERFORM pg_notify('xr_users', CASE WHEN octet_length(name) > 4000 OR name IS NULL THEN '*' ELSE name END);
  END IF;
  IF TG_OP <> 'DELETE' THEN
    name := NEW.username;
    PERFORM pg_notify('xr_users', CASE WHEN octet_length(name) > 4000 OR name IS NULL THEN '*' ELSE name END);
  END IF;
  RETURN NULL;
END $$;
DO $$ BEGIN
  IF to_regclass('users') IS NOT NULL THEN
    CREATE OR REPLACE TRIGGER xr_users_notify AFTER INSERT OR UPDATE OR DELETE ON users
      FOR EACH ROW EXECUTE FUNCTION xr_users_notify();
    CREATE OR REPLACE TRIGGER xr_users_truncate AFTER TRUNCATE ON users
      FOR EACH STATEMENT EXECUTE FUNCTION xr_users_notify();
  END IF;
END $$;
COMMIT;
)SQL";

std::string PgLoginSql(const std::string& password_query) {
  return "SELECT w.xr_wait_ms, q.* FROM (SELECT xr_backoff_wait_ms($2, $3, $4::integer, $5::bigint, $6::bigint) "
         "AS xr_wait_ms) w LEFT JOIN (" +
         password_query + ") q ON true";
}

// ---------------------------------------------------------------- cache

uint64_t PgUserCache::epoch() {
  std::lock_guard lock(mu_);
  return epoch_;
}

bool PgUserCache::live() {
  std::lock_guard lock(mu_);
  return live_;
}

size_t PgUserCache::size() {
  std::lock_guard lock(mu_);
  return entries_.size();
}

std::optional<std::vector<Credential>> PgUserCache::credentials(const std::string& user) {
  std::lock_guard lock(mu_);
  if (!live_) return std::nullopt;
  auto it = entries_.find(user);
  if (it == entries_.end()) return std::nullopt;
  return it->second.credentials;
}

std::optional<std::vector<SessionEntry>> PgUserCache::sessions(const std::string& user, const std::string& stored) {
  std::lock_guard lock(mu_);
  if (!live_) return std::nullopt;
  auto it = entries_.find(user);
  if (it == entries_.end()) return std::nullopt;
  for (const auto& [password, sessions] : it->second.sessions) {
    if (password == stored) return sessions;
  }
  return std::nullopt;
}

void PgUserCache::PutCredentials(const std::string& user, std::vector<Credential> credentials, uint64_t epoch) {
  std::lock_guard lock(mu_);
  if (!live_ || epoch != epoch_) return;
  if (entries_.size() >= kPgUserCacheCapacity && entries_.find(user) == entries_.end()) {
    entries_.erase(entries_.begin());
  }
  entries_[user] = Entry{std::move(credentials), {}};
}

void PgUserCache::PutSessions(const std::string& user, const std::string& stored, std::vector<SessionEntry> sessions,
                              uint64_t epoch) {
  std::lock_guard lock(mu_);
  if (!live_ || epoch != epoch_) return;
  auto it = entries_.find(user);
  if (it == entries_.end() || it->second.sessions.size() >= 4) return;
  it->second.sessions.emplace_back(stored, std::move(sessions));
}

void PgUserCache::Drop(const std::string& user) {
  std::lock_guard lock(mu_);
  ++epoch_;
  if (user == "*") {
    entries_.clear();
  } else {
    entries_.erase(user);
  }
}

void PgUserCache::SetLive(bool live) {
  std::lock_guard lock(mu_);
  ++epoch_;
  live_ = live;
  entries_.clear();
}

// ---------------------------------------------------------------- session counts

void PgSessionCounter::Began(const std::string& user) {
  std::lock_guard lock(mu_);
  ++counts_[user];
}

bool PgSessionCounter::End(const std::string& user) {
  std::lock_guard lock(mu_);
  auto it = counts_.find(user);
  if (it == counts_.end()) return false;
  if (--it->second <= 0) counts_.erase(it);
  if (ends_.size() >= kPgMaxPendingSessionEnds) {
    ends_.clear();
    resync_ = true;
  } else if (!resync_) {
    ends_.push_back(user);
  }
  return true;
}

std::vector<std::string> PgSessionCounter::TakeEnds(bool* resync) {
  std::lock_guard lock(mu_);
  *resync = std::exchange(resync_, false);
  return std::exchange(ends_, {});
}

void PgSessionCounter::NeedResync() {
  std::lock_guard lock(mu_);
  resync_ = true;
  ends_.clear();
}

std::vector<std::pair<std::string, int64_t>> PgSessionCounter::snapshot() {
  std::lock_guard lock(mu_);
  return {counts_.begin(), counts_.end()};
}

// ---------------------------------------------------------------- listener

PgClusterListener::PgClusterListener(std::string uri, std::string node, int connect_timeout_ms, PgUserCache* cache,
                                     PgSessionCounter* sessions, bool use_cache)
    : uri_(std::move(uri)),
      node_(std::move(node)),
      connect_timeout_ms_(connect_timeout_ms),
      cache_(cache),
      sessions_(sessions),
      use_cache_(use_cache) {
  thread_ = std::thread([this] { Run(); });
}

PgClusterListener::~PgClusterListener() {
  stop_.store(true);
  wait_cv_.notify_all();
  thread_.join();
}

void PgClusterListener::Poke() {
  poked_.store(true);
}

void PgClusterListener::Run() {
  while (!stop_.load()) {
    Expected<PgConn> conn = PgConn::Connect(uri_, PgNowMs() + connect_timeout_ms_, connect_timeout_ms_);
    if (conn.ok()) {
      Serve(*conn);
      cache_->SetLive(false);
      sessions_->NeedResync();  // ends written meanwhile may be lost: rewrite the node's rows
    }
    std::unique_lock lock(wait_mu_);
    wait_cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stop_.load(); });
  }
}

void PgClusterListener::Serve(PgConn& conn) {
  const int64_t step_ms = connect_timeout_ms_;
  if (use_cache_) {
    if (!conn.Exec("LISTEN xr_users", {}, PgNowMs() + step_ms).ok()) return;
    // Only now may rows be cached: anything changed before is re-read.
    cache_->SetLive(true);
  }
  sessions_->NeedResync();
  int64_t next_beat = 0;
  while (!stop_.load()) {
    const int64_t now = PgNowMs();
    if (now >= next_beat || poked_.exchange(false)) {
      if (!Sync(conn).ok()) return;
      next_beat = PgNowMs() + kPgHeartbeatMs;
    }
    // Short waits: stop and pokes (session ends) are seen within 50 ms.
    Expected<std::vector<std::string>> names = conn.WaitNotifications(std::min(next_beat, PgNowMs() + 50));
    if (!names.ok()) return;
    for (const std::string& name : *names) cache_->Drop(name);
  }
}

Status PgClusterListener::Sync(PgConn& conn) {
  const int64_t deadline = PgNowMs() + connect_timeout_ms_;
  const std::string ttl = std::to_string(kPgNodeTtlMs);
  // The heartbeat doubles as the probe of a connection that went silent.
  Expected<PgResult> beat = conn.Exec("SELECT xr_node_heartbeat($1, $2::bigint)", {node_, ttl}, deadline);
  if (!beat.ok()) return beat.error();
  bool resync = false;
  std::vector<std::string> ends = sessions_->TakeEnds(&resync);
  if (resync) {
    // Exclusive: no worker is between its begin round trip and Began().
    std::unique_lock lock(sessions_->begin_mu());
    std::string users = "{", counts = "{";
    for (const auto& [user, n] : sessions_->snapshot()) {
      std::string quoted = "\"";
      for (char c : user) {
        if (c == '"' || c == '\\') quoted += '\\';
        quoted += c;
      }
      users += (users.size() > 1 ? "," : "") + quoted + "\"";
      counts += (counts.size() > 1 ? "," : "") + std::to_string(n);
    }
    users += "}";
    counts += "}";
    // The node's rows replaced by what it holds, in one transaction.
    for (const char* sql : {"BEGIN", "DELETE FROM xr_user_sessions WHERE node = $1",
                            "INSERT INTO xr_user_sessions SELECT $1, u, n FROM unnest($2::text[], $3::integer[]) AS t(u, n)",
                            "COMMIT"}) {
      PgParams params;
      if (std::string_view(sql).find("$3") != std::string_view::npos) {
        params = {node_, users, counts};
      } else if (std::string_view(sql).find("$1") != std::string_view::npos) {
        params = {node_};
      }
      Expected<PgResult> step = conn.Exec(sql, params, deadline);
      if (!step.ok()) {
        sessions_->NeedResync();
        return step.error();
      }
    }
    return Status::Ok();
  }
  for (const std::string& user : ends) {
    Expected<PgResult> r = conn.Exec("SELECT xr_session_end($1, $2)", {node_, user}, deadline);
    if (!r.ok()) {
      sessions_->NeedResync();
      return r.error();
    }
  }
  return Status::Ok();
}

}  // namespace xr::auth
