#pragma once
// Test helper: the packets in a plain xpra byte stream (what a relay leg received).

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "codec/frame_reader.h"
#include "codec/packet.h"
#include "codec/value.h"

namespace xr::testing {

inline std::vector<Value> DecodePackets(const std::string& bytes) {
  FrameReader r;
  PacketDecoder d;
  r.Feed(bytes);
  std::vector<Value> out;
  while (true) {
    auto f = r.Next();
    REQUIRE(f.ok());
    if (!f->has_value()) break;
    auto p = d.Push(std::move(**f));
    REQUIRE(p.ok());
    if (p->has_value()) out.push_back(std::move(**p));
  }
  return out;
}

}  // namespace xr::testing
