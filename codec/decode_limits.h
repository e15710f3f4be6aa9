#pragma once
// Bounds applied while decoding untrusted rencode / bencode data.

#include <cstddef>

namespace xr {

struct DecodeLimits {
  int max_depth = 64;                         // nesting of lists/dicts (a top-level list is depth 1)
  size_t max_elements = 1 << 20;              // total values in one decode (dict keys count too)
  size_t max_string_size = size_t{256} << 20; // one declared string length; more -> kTooLarge
};

// Hard ceiling on max_depth: the decoders recurse once per nesting level, so a caller asking
// for more still gets at most this many (keeps the stack bounded whatever the limits say).
constexpr int kMaxDecodeDepthCeiling = 1024;

}  // namespace xr
