#pragma once
// Admission limits shared by every reactor: connections per source address, logins in progress
// per source, back-off after failed logins per source and per user name, and the memory all
// unauthenticated connections may hold together. Thread-safe; touched only on accept, close,
// login steps and login results, never per packet while relaying.
//
// A "source" is what one attacker cannot multiply cheaply: an IPv4 address, an IPv6 /64 (the
// smallest prefix a site gets; its 2^64 addresses rotate for free). See docs/security.md,
// "Back-off policy".

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace xr::engine {

struct AdmissionConfig {
  uint32_t max_per_address = 256;   // concurrent connections from one source address (0 = no cap)
  uint32_t free_failures = 5;       // failed logins allowed before back-off starts
  int64_t failure_window_ms = 600000;   // failures older than this are forgotten
  int64_t max_backoff_ms = 300000;  // back-off doubles per failure up to this
  uint32_t max_logins_per_source = 16;  // logins in progress from one source (0 = no cap)
};

class Admission {
 public:
  explicit Admission(AdmissionConfig config = {}) : config_(config) {}

  // A new connection from `address`; false when the address is at its cap (nothing recorded).
  bool Connect(const std::string& address);
  // The connection from `address` ended (pairs with a successful Connect).
  void Disconnect(const std::string& address);
  // A login starts from `address` (its source counts); false when the source already has
  // max_logins_per_source logins in progress (nothing recorded).
  bool BeginLogin(const std::string& address);
  // That login ended: authenticated, failed or closed (pairs with a successful BeginLogin).
  void EndLogin(const std::string& address);
  // Milliseconds the login of `user` from `address` must wait before it may be tried at `now_ms`
  // (0 = go ahead), from the failures recorded. The per-user wait applies only once the user's
  // failures come from more than one source: one source alone cannot lock a user out (its own
  // per-source wait covers it).
  int64_t BackoffMs(const std::string& address, const std::string& user, int64_t now_ms);
  // Whether a verification may start now: verifications in flight count as failures until they
  // end, so a source (or a user, as above) never has more in flight than its free failures
  // left, plus one. When false the caller waits a moment and asks again (BackoffMs refuses).
  bool MayVerify(const std::string& address, const std::string& user);
  // A verification starts (pairs with Finished): charged from now on.
  void Attempt(const std::string& address, const std::string& user);
  // It ended: failed records a failure; a success records nothing and clears nobody's
  // failures (another user's, or the source's earlier ones).
  void Finished(const std::string& address, const std::string& user, bool failed, int64_t now_ms);
  uint32_t connections(const std::string& address);
  uint32_t logins(const std::string& address);
  // Sources whose next login must wait at `now_ms` (the metrics' addresses in back-off).
  size_t BackedOffSources(int64_t now_ms);
  // New limits for what comes next (a reload); counts and failures recorded so far stay.
  void SetConfig(const AdmissionConfig& config);
  // The limits in force (a module sharing the back-off across a cluster applies the same ones).
  AdmissionConfig config();

 private:
  struct Failures {
    uint32_t count = 0;
    uint32_t in_flight = 0;  // verifications started and not yet finished
    int64_t last_ms = 0;
    std::string first_source;  // user records: the first source that failed
    bool many_sources = false;  // user records: failures came from more than one source
  };
  int64_t Backoff(const Failures& f, int64_t now_ms) const;
  // Over its free failures left plus one in flight; past its free failures a record still lets
  // one verification through at a time (BackoffMs has made it wait), never none: none kept every
  // login of the source waiting in challenge-sent until its login timeout.
  bool Busy(const Failures& f) const { return f.in_flight > 0 && f.count + f.in_flight > config_.free_failures; }
  void Forget(int64_t now_ms);
  // One more in counts[key] unless it is at cap (0 = no cap); one less (the caller holds mu_).
  static bool Take(std::unordered_map<std::string, uint32_t>& counts, const std::string& key, uint32_t cap);
  static void Release(std::unordered_map<std::string, uint32_t>& counts, const std::string& key);

  AdmissionConfig config_;
  std::mutex mu_;
  std::unordered_map<std::string, uint32_t> per_address_;
  std::unordered_map<std::string, uint32_t> logins_;  // by source
  std::unordered_map<std::string, Failures> address_failures_;
  std::unordered_map<std::string, Failures> user_failures_;
  int64_t last_forget_ms_ = 0;
};

// Milliseconds on the monotonic clock.
int64_t NowMs();

// The address part of "1.2.3.4:5678" / "[::1]:5678" ("unix" and others unchanged).
std::string AddressOf(const std::string& peer);
// The source an address belongs to: an IPv4 address as is (also when IPv4-mapped, ::ffff:a.b.c.d),
// an IPv6 address as its /64 ("2001:db8:1:2::/64"); anything else unchanged.
std::string SourceOf(const std::string& address);

// Bytes held by connections that have not authenticated yet, all of them together (buffered
// frames, decoded hellos, pending chunks), against one budget. Thread-safe.
class LoginMemory {
 public:
  explicit LoginMemory(size_t budget) : budget_(budget) {}
  // Moves one connection's charge from `from` to `to` bytes; false (nothing changed) when the
  // increase would take the total over the budget. Decreases always succeed.
  bool Recharge(size_t from, size_t to);
  size_t used() const { return used_.load(); }
  size_t budget() const { return budget_.load(); }
  // A new budget (a reload): what is held stays; growth is checked against the new one.
  void SetBudget(size_t budget) { budget_.store(budget); }

 private:
  std::atomic<size_t> budget_;
  std::atomic<size_t> used_{0};
};
LoginMemory& GlobalLoginMemory();

// Key-derivation work (PBKDF2 iterations) unauthenticated clients may cause per second,
// relay-wide: a token bucket refilled at `per_second`, holding at most one second's worth.
// Thread-safe.
class KdfBudget {
 public:
  explicit KdfBudget(int64_t per_second) : per_second_(per_second), tokens_(per_second) {}
  // Takes `iterations` at `now_ms`; false (nothing taken) when the bucket holds fewer.
  bool Take(int64_t iterations, int64_t now_ms);
  // A new rate (a reload); the bucket keeps what it holds, up to one second of the new rate.
  void SetRate(int64_t per_second);

  // Derivations running at once on the worker pool (xpra 6.x keys, up to 1,000,000 iterations
  // each): at most max_concurrent, so a flood of AES hellos leaves the other workers to
  // password checks. TakeSlot: false (nothing taken) when all are in use; every slot taken is
  // given back once with GiveSlot.
  bool TakeSlot();
  void GiveSlot();
  void SetMaxConcurrent(int max_concurrent);
  int slots_in_use();

 private:
  std::mutex mu_;
  int64_t per_second_;
  int64_t tokens_;
  int64_t last_ms_ = -1;
  int max_concurrent_ = 2;
  int in_use_ = 0;
};
KdfBudget& GlobalKdfBudget();
void ConfigureKdfBudget(int64_t per_second);
// Sets the relay-wide budget (at start-up, before any reactor runs).
void ConfigureLoginMemory(size_t budget);

// The process-wide admission state.
Admission& GlobalAdmission();
// Replaces its configuration (at start-up).
void ConfigureAdmission(const AdmissionConfig& config);

// TLS handshakes each source may start over time (--ssl-max-handshake-rate-per-address): a
// token bucket per source (SourceOf: an IPv4 address, an IPv6 /64) refilled at `per_second`
// and holding at most `burst`. A source whose bucket has filled up again is forgotten, so the
// table holds only sources seen in the last burst / per_second seconds, and never more than
// `max_sources`: when it is full (a spread-out flood) new sources are refused until entries
// refill, failing closed as the login slots do (the full table is swept at most every 100 ms).
// Thread-safe; touched once per TLS handshake.
class HandshakeRate {
 public:
  // per_second <= 0: no limit (Take always succeeds, nothing is recorded).
  HandshakeRate(double per_second, uint32_t burst, size_t max_sources = 65536);
  // A handshake from `source` starts at now_ms (monotonic): false, nothing taken, when its
  // bucket is empty or the table is full.
  bool Take(const std::string& source, int64_t now_ms);
  // Sources in the table now (tests, xpra info).
  size_t tracked();
  double per_second() const { return per_second_; }

 private:
  struct Bucket {
    double tokens = 0;
    int64_t last_ms = 0;
  };
  // Drops every source whose bucket is full at now_ms (the caller holds mu_).
  void Sweep(int64_t now_ms);

  const double per_second_;
  const double burst_;
  const size_t max_sources_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  int64_t last_sweep_ms_ = 0;
};

}  // namespace xr::engine
