// Fuzzes FrameTracker against a plain whole-buffer model of the framing rules
// (codec/frame_tracker.h): whether the stream arrives whole, in pieces, byte by byte, or with
// its payloads skipped unseen (the splice path), and whether whole frames are given to
// AcceptFrame(), the headers, frame ends, error and error position must be the model's.
//
// Input: byte 0 = k (mod 8) split sizes; byte 1 = limits (low 4 bits: max_payload = 16 << n,
// high 4 bits: max_pending_chunks = n mod 5); bytes 2..k+1 = the sizes (0 counts as 1); then
// the stream.
#include <algorithm>
#include <bitset>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codec/frame_tracker.h"

namespace {

using xr::FrameTracker;

struct Outcome {
  std::vector<xr::FrameHeader> headers;
  std::vector<uint64_t> starts;  // stream offset of each header
  std::vector<uint64_t> ends;    // stream offset just past each complete frame
  std::optional<xr::ErrorCode> error;
  uint64_t error_start = 0;
};

bool Same(const Outcome& a, const Outcome& b) {
  if (a.error != b.error || a.headers.size() != b.headers.size() || a.starts != b.starts || a.ends != b.ends) {
    return false;
  }
  for (size_t i = 0; i < a.headers.size(); ++i) {
    if (!(a.headers[i] == b.headers[i])) return false;
  }
  return !a.error || a.error_start == b.error_start;
}

// The rules, written plainly over the whole stream.
Outcome Model(std::string_view s, const xr::FrameLimits& limits) {
  Outcome out;
  size_t max_payload = std::min(limits.max_payload, xr::kHardMaxPayload);
  std::bitset<256> chunks;
  size_t pos = 0;
  auto fail = [&](xr::ErrorCode code) {
    out.error = code;
    out.error_start = pos;
    return out;
  };
  while (pos < s.size()) {
    if (s[pos] != xr::kHeaderMagic) return fail(xr::ErrorCode::kMalformed);
    if (s.size() - pos < xr::kHeaderSize) break;
    auto h = xr::DecodeHeader(s.substr(pos));
    if (!h.ok()) std::abort();
    if (!xr::CheckFlags(h->flags).ok()) return fail(xr::ErrorCode::kMalformed);
    size_t wire = h->wire_payload_size();
    if (wire > max_payload) return fail(xr::ErrorCode::kTooLarge);
    if (wire == 0) return fail(xr::ErrorCode::kMalformed);
    if (h->index == 0) {
      chunks.reset();
    } else {
      if (chunks.test(h->index)) return fail(xr::ErrorCode::kMalformed);
      if (chunks.count() >= limits.max_pending_chunks) return fail(xr::ErrorCode::kTooLarge);
      chunks.set(h->index);
    }
    out.headers.push_back(*h);
    out.starts.push_back(pos);
    if (s.size() - pos - xr::kHeaderSize < wire) break;
    pos += xr::kHeaderSize + wire;
    out.ends.push_back(pos);
  }
  return out;
}

// Feeds the stream in pieces of `sizes` (cycled; empty = whole); with `skip`, payload bytes
// are accounted for with Skip() instead of Feed().
Outcome Walk(std::string_view s, const xr::FrameLimits& limits, const std::vector<size_t>& sizes, bool skip) {
  FrameTracker t(limits);
  Outcome out;
  size_t pos = 0, turn = 0;
  while (pos < s.size()) {
    size_t n = sizes.empty() ? s.size() - pos : std::min(sizes[turn++ % sizes.size()], s.size() - pos);
    std::string_view piece = s.substr(pos, n);
    while (!piece.empty()) {
      const uint64_t before = t.offset();
      const bool payload = t.in_payload();
      FrameTracker::Step step;
      if (skip && payload) {
        size_t k = std::min(piece.size(), t.payload_remaining());
        step.consumed = k;
        step.event = t.Skip(k);
      } else {
        auto r = t.Feed(piece);
        if (!r.ok()) {
          if (!t.failed() || r.error().code != t.error().code) std::abort();
          // Sticky, and nothing moves after it.
          auto again = t.Feed("P");
          if (again.ok() || again.error().code != r.error().code) std::abort();
          if (t.Skip(1) != FrameTracker::Event::kNone || t.payload_remaining() != 0 || t.at_boundary()) std::abort();
          out.error = r.error().code;
          out.error_start = t.frame_start();
          if (t.frame_start() > before) std::abort();
          return out;
        }
        step = *r;
      }
      if (step.consumed == 0 || step.consumed > piece.size()) std::abort();
      if (t.offset() != before + step.consumed) std::abort();
      if (payload && step.event == FrameTracker::Event::kHeader) std::abort();
      if (!payload && step.event == FrameTracker::Event::kFrameEnd) std::abort();
      if (t.pending_chunks() > limits.max_pending_chunks) std::abort();
      switch (step.event) {
        case FrameTracker::Event::kHeader:
          if (!t.in_payload() || t.payload_remaining() != t.header().wire_payload_size()) std::abort();
          if (t.payload_remaining() > t.max_payload()) std::abort();
          if (t.offset() != t.frame_start() + xr::kHeaderSize) std::abort();
          out.headers.push_back(t.header());
          out.starts.push_back(t.frame_start());
          break;
        case FrameTracker::Event::kFrameEnd:
          if (!t.at_boundary()) std::abort();
          out.ends.push_back(t.offset());
          break;
        case FrameTracker::Event::kNone:
          if (t.at_boundary()) std::abort();
          break;
      }
      piece.remove_prefix(step.consumed);
    }
    pos += n;
  }
  if (t.offset() != s.size()) std::abort();
  return out;
}

// Gives the model's complete frames (and the one that fails) to AcceptFrame().
void CheckAcceptFrame(std::string_view s, const xr::FrameLimits& limits, const Outcome& model) {
  FrameTracker t(limits);
  for (size_t i = 0; i < model.ends.size(); ++i) {
    if (!t.AcceptFrame(model.headers[i]).ok()) std::abort();
    if (t.offset() != model.ends[i] || !t.at_boundary()) std::abort();
  }
  if (!model.error || model.error_start + xr::kHeaderSize > s.size()) return;
  auto h = xr::DecodeHeader(s.substr(model.error_start));
  if (!h.ok()) return;  // bad magic: there is no header to give
  xr::Status st = t.AcceptFrame(*h);
  if (st.ok() || st.error().code != *model.error || t.frame_start() != model.error_start) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t k = data[0] % 8;
  if (size < 2 + k) return 0;
  xr::FrameLimits limits;
  limits.max_payload = size_t{16} << (data[1] & 0x0f);
  limits.max_pending_chunks = (data[1] >> 4) % 5;
  std::vector<size_t> sizes;
  for (size_t i = 0; i < k; ++i) sizes.push_back(data[2 + i] == 0 ? 1 : data[2 + i]);
  std::string_view stream(reinterpret_cast<const char*>(data + 2 + k), size - 2 - k);

  Outcome model = Model(stream, limits);
  for (const Outcome& o : {Walk(stream, limits, {}, false), Walk(stream, limits, sizes, false),
                           Walk(stream, limits, {1}, false), Walk(stream, limits, sizes, true),
                           Walk(stream, limits, {1}, true)}) {
    if (!Same(o, model)) std::abort();
  }
  CheckAcceptFrame(stream, limits, model);
  return 0;
}
