#pragma once
// Relay-wide counters and the table of relayed connections ("instances"), shared by every
// reactor thread and read by the relay's own control socket. Updated only on connection
// events (accept, login result, relay start, close), never per packet. What moves per packet
// (bytes relayed) is counted per reactor (TrafficCounters) and summed when asked.

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "codec/value.h"

namespace xr::engine {

struct RelayCounters {
  std::atomic<uint64_t> accepted{0};       // client connections accepted
  std::atomic<int64_t> handshaking{0};     // accepted, not yet relaying or closed
  std::atomic<int64_t> relaying{0};        // relaying now
  std::atomic<uint64_t> relayed_total{0};  // ever reached relaying
  std::atomic<uint64_t> auth_failures{0};
  std::atomic<uint64_t> closed{0};
  std::atomic<uint64_t> control_requests{0};
};

// A counter with one writer (its reactor's thread) and readers on any thread: adding is a
// relaxed load and store, no locked read-modify-write shared between cores on the data path.
class OwnedCounter {
 public:
  void Add(uint64_t n) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// One reactor's traffic, written only by its thread.
struct TrafficCounters {
  OwnedCounter bytes_to_client;
  OwnedCounter bytes_to_server;
  OwnedCounter bytes_spliced;  // server->client bytes moved by splice (no copy)
  OwnedCounter recv_nobufs;    // receives that found the buffer ring empty (-ENOBUFS)
};

// The sum over reactors, when asked.
struct TrafficTotals {
  uint64_t bytes_to_client = 0;
  uint64_t bytes_to_server = 0;
  uint64_t bytes_spliced = 0;
  uint64_t recv_nobufs = 0;
  void Add(const TrafficCounters& c) {
    bytes_to_client += c.bytes_to_client.get();
    bytes_to_server += c.bytes_to_server.get();
    bytes_spliced += c.bytes_spliced.get();
    recv_nobufs += c.recv_nobufs.get();
  }
};

// The process-wide counters.
RelayCounters& Counters();

struct InstanceSummary {
  uint64_t id = 0;
  std::string display;  // ":proxy-N"
  std::string peer;
  std::string username;
  std::string target;
  int64_t started_unix = 0;  // seconds since the epoch
};

class InstanceTable {
 public:
  // Adds or replaces the instance `s.id`.
  void Put(const InstanceSummary& s);
  // Removes instance `id` (no-op when absent).
  void Remove(uint64_t id);
  // Every instance as a dict keyed by ":proxy-N".
  Value ToValue() const;
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::map<uint64_t, InstanceSummary> items_;
};

// The process-wide instance table.
InstanceTable& Instances();

}  // namespace xr::engine
