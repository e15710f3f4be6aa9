// Fuzzes FrameReader with split points taken from the input: the frames (and the error, if
// any) must be the same whether the stream arrives whole or in pieces, and whether they are
// taken with Next() or NextView().
//
// Input: codec/fuzz_split.h.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codec/frame_reader.h"
#include "codec/fuzz_split.h"

namespace {

struct Outcome {
  std::vector<xr::RawFrame> frames;
  std::optional<xr::ErrorCode> error;
  size_t buffered = 0;
};

// NextView() as a RawFrame (the view copied at once), or Next().
xr::Expected<std::optional<xr::RawFrame>> Take(xr::FrameReader& reader, bool view) {
  if (!view) return reader.Next();
  auto v = reader.NextView();
  if (!v.ok()) return v.error();
  if (!v->has_value()) return std::optional<xr::RawFrame>();
  return std::optional<xr::RawFrame>(xr::RawFrame{(**v).header, std::string((**v).payload)});
}

Outcome Run(std::string_view stream, const std::vector<size_t>& sizes, bool view = false) {
  xr::FrameLimits limits;
  limits.max_payload = 1u << 20;
  xr::FrameReader reader(limits);
  Outcome out;
  size_t pos = 0, turn = 0;
  size_t fed = 0, taken = 0;
  do {
    size_t n = xr::fuzz::NextPiece(sizes, &turn, stream.size() - pos);
    reader.Feed(stream.substr(pos, n));
    pos += n;
    fed += n;
    while (true) {
      auto f = Take(reader, view);
      if (!f.ok()) {
        out.error = f.error().code;
        // Sticky: asking again gives the same error.
        auto again = Take(reader, !view);
        if (again.ok() || again.error().code != f.error().code) std::abort();
        return out;
      }
      if (!f->has_value()) break;
      xr::RawFrame& frame = **f;
      if (frame.payload.size() != frame.header.wire_payload_size()) std::abort();
      if (frame.payload.size() > limits.max_payload) std::abort();
      taken += xr::kHeaderSize + frame.payload.size();
      out.frames.push_back(std::move(frame));
    }
    if (reader.buffered() != fed - taken) std::abort();
  } while (pos < stream.size());
  out.buffered = reader.buffered();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto input = xr::fuzz::ParseSplitInput(data, size);
  if (!input) return 0;
  const std::vector<size_t>& sizes = input->sizes;
  std::string_view stream = input->stream;

  Outcome whole = Run(stream, {});
  Outcome split = Run(stream, sizes);
  Outcome bytewise = Run(stream, {1});
  Outcome split_view = Run(stream, sizes, /*view=*/true);
  for (const Outcome* o : {&split, &bytewise, &split_view}) {
    if (o->error != whole.error) std::abort();
    if (o->frames.size() != whole.frames.size()) std::abort();
    for (size_t i = 0; i < whole.frames.size(); ++i) {
      if (!(o->frames[i].header == whole.frames[i].header)) std::abort();
      if (o->frames[i].payload != whole.frames[i].payload) std::abort();
    }
    if (!o->error && o->buffered != whole.buffered) std::abort();
  }
  return 0;
}
