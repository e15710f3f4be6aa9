// Liveness with a fake clock: silent legs, stalled legs, what does not age, the kernel probe.
#include "engine/liveness.h"

#include <doctest/doctest.h>

#include <vector>

using namespace xr::engine;

namespace {

constexpr int64_t kIdle = 5000;

struct Fixture {
  Liveness live;
  LegActivity legs[2];
  int64_t now = 1000000;  // the fake clock
  std::vector<Dir> probed;
  int outq[2] = {-1, -1};  // what the kernel probe answers per leg
  Fixture() { live.Start(now); }
  DeadLeg Tick(int64_t advance_ms, bool probe = false) {
    now += advance_ms;
    return live.Check(legs, now, kIdle, probe, [this](Dir d) {
      probed.push_back(d);
      return outq[d];
    });
  }
  // Ticks a second at a time while both legs keep sending, up to `ticks` times or until a
  // leg is found dead; what was found.
  DeadLeg TickWhileSending(int ticks, bool probe) {
    DeadLeg d = DeadLeg::kNone;
    for (int i = 0; i < ticks && d == DeadLeg::kNone; ++i) {
      for (auto& l : legs) l.bytes_in += 1;
      d = Tick(1000, probe);
    }
    return d;
  }
  // Both legs move bytes both ways.
  void Traffic() {
    for (auto& l : legs) {
      l.bytes_in += 10;
      l.bytes_out += 10;
    }
  }
};

}  // namespace

TEST_CASE("legs that move stay alive") {
  Fixture f;
  for (int i = 0; i < 100; ++i) {
    f.Traffic();
    CHECK(f.Tick(1000) == DeadLeg::kNone);
  }
}

TEST_CASE("a client that sends nothing for the idle time is silent") {
  Fixture f;
  for (int i = 0; i < 4; ++i) {
    f.legs[kServerLeg].bytes_in += 1;
    CHECK(f.Tick(1000) == DeadLeg::kNone);
  }
  f.legs[kServerLeg].bytes_in += 1;
  CHECK(f.Tick(999) == DeadLeg::kNone);
  f.legs[kServerLeg].bytes_in += 1;
  CHECK(f.Tick(1) == DeadLeg::kClientSilent);
}

TEST_CASE("a silent server is found when the client is alive") {
  Fixture f;
  f.legs[kClientLeg].bytes_in += 1;
  CHECK(f.Tick(4000) == DeadLeg::kNone);
  f.legs[kClientLeg].bytes_in += 1;
  CHECK(f.Tick(1000) == DeadLeg::kServerSilent);
}

TEST_CASE("a leg the relay is not reading does not age") {
  Fixture f;
  f.legs[kClientLeg].not_read = true;
  f.legs[kServerLeg].not_read = true;
  for (int i = 0; i < 20; ++i) CHECK(f.Tick(1000) == DeadLeg::kNone);
  f.legs[kClientLeg].not_read = false;
  CHECK(f.Tick(4999) == DeadLeg::kNone);
  CHECK(f.Tick(1) == DeadLeg::kClientSilent);
}

TEST_CASE("bytes waiting for a leg that reads nothing: stalled") {
  Fixture f;
  f.legs[kClientLeg].waiting = 4096;
  CHECK(f.TickWhileSending(4, false) == DeadLeg::kNone);
  CHECK(f.TickWhileSending(1, false) == DeadLeg::kClientStalled);
  CHECK(!f.probed.empty());  // the kernel was asked before the leg was called stalled
}

TEST_CASE("an empty queue never stalls") {
  Fixture f;
  for (int i = 0; i < 20; ++i) {
    for (auto& l : f.legs) l.bytes_in += 1;
    CHECK(f.Tick(1000) == DeadLeg::kNone);
  }
  CHECK(f.probed.empty());
}

TEST_CASE("a kernel send queue that moved counts as progress") {
  Fixture f;
  f.legs[kServerLeg].waiting = 100;
  int outq = 50000;
  for (int i = 0; i < 30; ++i) {
    for (auto& l : f.legs) l.bytes_in += 1;
    f.outq[kServerLeg] = outq -= 100;  // the peer drains the socket slowly
    CHECK(f.Tick(1000, /*probe=*/true) == DeadLeg::kNone);
  }
  // Once the kernel's queue stops moving too, the leg is stalled after the idle time.
  CHECK(f.TickWhileSending(6, true) == DeadLeg::kServerStalled);
}

TEST_CASE("a failed kernel probe is no progress") {
  Fixture f;
  f.legs[kClientLeg].waiting = 1;
  f.outq[kClientLeg] = -1;
  CHECK(f.TickWhileSending(4, true) == DeadLeg::kNone);
  CHECK(f.TickWhileSending(1, true) == DeadLeg::kClientStalled);
}

TEST_CASE("without the probe flag, the kernel is asked only at the idle time") {
  Fixture f;
  f.legs[kClientLeg].waiting = 1;
  CHECK(f.TickWhileSending(4, false) == DeadLeg::kNone);
  CHECK(f.probed.empty());
  f.outq[kClientLeg] = 10;
  for (auto& l : f.legs) l.bytes_in += 1;
  CHECK(f.Tick(1000, false) == DeadLeg::kNone);  // the probe saw the queue move
  CHECK(f.probed.size() == 1);
}
