#pragma once
// Liveness: which leg of a relaying connection is dead, read off the legs' byte counts and a
// clock. A leg is dead when it sent the relay nothing for `idle_ms`, or when what is queued for
// it made no progress for that long (its peer does not read). Every data path (receives,
// sends, splices) keeps the counts, so nothing is timed per packet; the reactor's 100 ms tick
// calls Check. A leg the relay is not reading (paused by back-pressure, or its spliced bytes
// still in the pipe) does not age; nor does an empty queue. A queue that has not moved for a
// second asks the kernel (`probe_outq`, once a second and before it is declared dead) whether
// its socket's own queue did: a slow reader drains the socket long before the kernel wakes a
// blocked sender (that waits for half the send buffer, megabytes on a fast link).
//
// No I/O and no clock of its own: the caller passes `now` and the kernel probe, so tests
// drive it with a fake clock.

#include <cstddef>
#include <cstdint>
#include <functional>

#include "engine/leg.h"

namespace xr::engine {

// What Check reads off one leg.
struct LegActivity {
  uint64_t bytes_in = 0;   // received from the leg's socket, ever
  uint64_t bytes_out = 0;  // sent to the leg's socket, ever
  size_t waiting = 0;      // bytes the relay holds for the leg's socket (queued, or in the pipe)
  bool not_read = false;   // the relay is not reading the leg (back-pressure, splice pipe full)
};

enum class DeadLeg { kNone, kClientSilent, kClientStalled, kServerSilent, kServerStalled };

class Liveness {
 public:
  // The kernel's send queue length of leg `d`'s socket (SIOCOUTQ), or -1 when unknown.
  using OutqProbe = std::function<int(Dir d)>;

  // Both legs count as active at `now_ms` (relaying starts).
  void Start(int64_t now_ms);
  // The first dead leg at `now_ms` (client before server, silent before stalled), or kNone.
  // `probe` allows asking the kernel about queues unmoved for a second (once a second).
  DeadLeg Check(const LegActivity (&legs)[2], int64_t now_ms, int64_t idle_ms, bool probe, const OutqProbe& probe_outq);

 private:
  struct Clock {
    int64_t last_in_ms = 0;   // when bytes_in last moved
    int64_t last_out_ms = 0;  // when bytes_out last moved (or nothing was waiting)
    uint64_t seen_in = 0;     // the counts the last Check saw
    uint64_t seen_out = 0;
    int out_mark = -1;        // the kernel's send queue length when last probed
  };
  Clock legs_[2];
};

}  // namespace xr::engine
