#include "engine/liveness.h"

namespace xr::engine {

void Liveness::Start(int64_t now_ms) {
  for (Clock& c : legs_) c.last_in_ms = c.last_out_ms = now_ms;
}

DeadLeg Liveness::Check(const LegActivity (&legs)[2], int64_t now, int64_t idle_ms, bool probe,
                        const OutqProbe& probe_outq) {
  for (Dir d : {kClientLeg, kServerLeg}) {
    const LegActivity& a = legs[d];
    Clock& c = legs_[d];
    if (a.bytes_in != c.seen_in) {
      c.seen_in = a.bytes_in;
      c.last_in_ms = now;
    }
    if (a.bytes_out != c.seen_out) {
      c.seen_out = a.bytes_out;
      c.last_out_ms = now;
    }
    if (a.not_read) c.last_in_ms = now;
    if (a.waiting == 0) {
      c.last_out_ms = now;
    } else if ((probe && now - c.last_out_ms >= 1000) || now - c.last_out_ms >= idle_ms) {
      int queued = probe_outq ? probe_outq(d) : -1;
      if (queued >= 0 && queued != c.out_mark) {
        c.out_mark = queued;
        c.last_out_ms = now;
      }
    }
  }
  if (now - legs_[kClientLeg].last_in_ms >= idle_ms) return DeadLeg::kClientSilent;
  if (now - legs_[kClientLeg].last_out_ms >= idle_ms) return DeadLeg::kClientStalled;
  if (now - legs_[kServerLeg].last_in_ms >= idle_ms) return DeadLeg::kServerSilent;
  if (now - legs_[kServerLeg].last_out_ms >= idle_ms) return DeadLeg::kServerStalled;
  return DeadLeg::kNone;
}

}  // namespace xr::engine
