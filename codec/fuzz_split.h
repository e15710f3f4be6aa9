#pragma once
// The input layout the stream fuzzers share (frame reader, HTTP request head, WebSocket
// frames): byte 0 = k (mod 8) split sizes, bytes 1..k = the sizes (0 counts as 1), then the
// stream. Each fuzzer feeds the stream whole, cut by those sizes and byte by byte, and checks
// that the outcome does not depend on the cut.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace xr::fuzz {

struct SplitInput {
  std::vector<size_t> sizes;  // piece sizes, used in turn; empty = the whole stream at once
  std::string_view stream;
};

// nullopt when the input is too short for its own size list.
inline std::optional<SplitInput> ParseSplitInput(const uint8_t* data, size_t size) {
  if (size == 0) return std::nullopt;
  const size_t k = data[0] % 8;
  if (size < 1 + k) return std::nullopt;
  SplitInput in;
  for (size_t i = 0; i < k; ++i) in.sizes.push_back(data[1 + i] == 0 ? 1 : data[1 + i]);
  in.stream = std::string_view(reinterpret_cast<const char*>(data + 1 + k), size - 1 - k);
  return in;
}

// Length of the next piece: all that remains when sizes is empty, else the next size in turn
// (advancing *turn), at most `remaining`.
inline size_t NextPiece(const std::vector<size_t>& sizes, size_t* turn, size_t remaining) {
  if (sizes.empty()) return remaining;
  return std::min(sizes[(*turn)++ % sizes.size()], remaining);
}

}  // namespace xr::fuzz
