#include "auth/postgresql_cluster.h"

#include <algorithm>
#include <chrono>

namespace xr::auth {

// deploy/cluster/schema/010_login_policy.sql, as a raw string literal (genrule in auth/BUILD).
const char kPgClusterSchemaSql[] =
#include "auth/postgresql_cluster_schema.inc"
    ;

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
    std::vector<std::string> user_list;
    std::vector<int64_t> count_list;
    for (auto& [user, n] : sessions_->snapshot()) {
      user_list.push_back(std::move(user));
      count_list.push_back(n);
    }
    const std::string users = PgTextArray(user_list), counts = PgIntArray(count_list);
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
