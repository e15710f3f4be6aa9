// Fuzzes the WebSocket frame decoder with split points from the input: the data stream, the
// control frames, the final status and close code must not depend on how the bytes are cut;
// limits hold; whatever the encoder writes, a decoder (mask not required) reads back.
//
// Input: codec/fuzz_split.h.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "codec/fuzz_split.h"
#include "codec/websocket.h"

namespace {

struct Outcome {
  xr::ws::DecodeStatus status = xr::ws::DecodeStatus::kOk;
  std::string data;
  std::vector<xr::ws::ControlFrame> control;
  uint16_t error_code = 0;
  size_t consumed = 0;
};

Outcome Run(std::string_view stream, const std::vector<size_t>& sizes, const xr::ws::DecoderLimits& limits) {
  xr::ws::Decoder d(limits);
  Outcome out;
  size_t pos = 0, turn = 0;
  do {
    size_t n = xr::fuzz::NextPiece(sizes, &turn, stream.size() - pos);
    size_t used = 0;
    out.status = d.Feed(stream.substr(pos, n), &out.data, &out.control, &used);
    if (used > n) std::abort();
    if (out.status == xr::ws::DecodeStatus::kOk && used != n) std::abort();
    out.consumed += used;
    pos += n;
  } while (out.status == xr::ws::DecodeStatus::kOk && pos < stream.size());
  if (out.status == xr::ws::DecodeStatus::kError) {
    out.error_code = d.error_code();
    if (d.error_reason().empty()) std::abort();
    out.consumed = 0;  // how far the decoder read before failing is not specified
  }
  for (const auto& c : out.control) {
    if (c.payload.size() > 125) std::abort();
  }
  if (out.data.size() > stream.size()) std::abort();
  return out;
}

bool Same(const Outcome& a, const Outcome& b) {
  if (a.status != b.status || a.error_code != b.error_code || a.consumed != b.consumed) return false;
  if (a.status != xr::ws::DecodeStatus::kError && a.data != b.data) return false;
  if (a.status == xr::ws::DecodeStatus::kError) return true;  // partial outputs may differ in length
  if (a.control.size() != b.control.size()) return false;
  for (size_t i = 0; i < a.control.size(); ++i) {
    if (a.control[i].opcode != b.control[i].opcode || a.control[i].payload != b.control[i].payload) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto input = xr::fuzz::ParseSplitInput(data, size);
  if (!input) return 0;
  const std::vector<size_t>& sizes = input->sizes;
  std::string_view stream = input->stream;
  xr::ws::DecoderLimits limits;
  limits.max_frame_payload = 4096;
  limits.max_message_payload = 8192;

  Outcome whole = Run(stream, {}, limits);
  if (!Same(whole, Run(stream, sizes, limits)) || !Same(whole, Run(stream, {1}, limits))) std::abort();
  // Bytes decoded from masked or unmasked frames re-encode as server frames that an unmasked
  // decoder reads back exactly.
  if (whole.status != xr::ws::DecodeStatus::kError) {
    std::string enc;
    xr::ws::AppendBinaryFrame(whole.data, &enc);
    for (const auto& c : whole.control) {
      if (c.opcode == xr::ws::Opcode::kPing) xr::ws::AppendPong(c.payload, &enc);
    }
    xr::ws::DecoderLimits loose;
    loose.mask = xr::ws::MaskPolicy::kAny;
    Outcome back = Run(enc, {}, loose);
    if (back.status != xr::ws::DecodeStatus::kOk || back.data != whole.data) std::abort();
  }
  // The server stream agrees with the decoder, and what it sends on its own (pongs, a close)
  // is well-formed server frames. (The ping rate is the stream's own rule: checked below.)
  xr::ws::StreamLimits stream_limits;
  stream_limits.decoder = limits;
  stream_limits.max_pending_control = 1u << 30;
  stream_limits.max_pings_per_second = 0;
  xr::ws::ServerStream server(stream_limits);
  std::string app;
  xr::Status st = server.Decode(stream, &app);
  if (st.ok() != (whole.status == xr::ws::DecodeStatus::kOk)) std::abort();
  if (st.ok() && app != whole.data) std::abort();
  if (server.close_sent() == st.ok()) std::abort();
  xr::ws::DecoderLimits loose;
  loose.mask = xr::ws::MaskPolicy::kAny;
  Outcome own = Run(server.TakeOwnOutput(), {}, loose);
  if (own.status == xr::ws::DecodeStatus::kError) std::abort();
  // The ping rate: with the clock standing still, the ping after the burst closes the stream
  // (pings after a close frame are never answered, so they do not count).
  xr::ws::StreamLimits rated = stream_limits;
  rated.max_pings_per_second = 10;
  rated.ping_burst = 20;
  rated.clock_ms = +[]() -> int64_t { return 0; };
  size_t pings = 0;
  for (const auto& c : whole.control) {
    if (c.opcode == xr::ws::Opcode::kClose) break;
    if (c.opcode == xr::ws::Opcode::kPing) ++pings;
  }
  xr::ws::ServerStream limited(rated);
  std::string app_limited;
  if (limited.Decode(stream, &app_limited).ok() != (st.ok() && pings <= rated.ping_burst)) std::abort();
  return 0;
}
