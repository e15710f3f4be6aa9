// Fuzzes ParseProxyHeader: the answer for the whole input must be the answer reached by
// feeding it in pieces (ProxyHeaderReader, split sizes from the input), a header never claims
// more bytes than it saw nor more than the bounds, and its addresses print.
//
// Input: byte 0 = accepted versions (1, 2 or 3 after mod), byte 1 = split size (0 counts as 1),
// then the stream.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "codec/proxy_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  xr::proxy::ProxyLimits limits;
  limits.accept = static_cast<xr::proxy::Versions>(data[0] % 3 + 1);
  limits.max_v2_body = 256;
  size_t step = data[1] == 0 ? 1 : data[1];
  std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  auto whole = xr::proxy::ParseProxyHeader(stream, limits);
  xr::proxy::ProxyHeaderReader reader(limits);
  for (size_t pos = 0; pos < stream.size() && reader.state() == xr::proxy::ProxyHeaderReader::State::kNeedMore;
       pos += step) {
    reader.Feed(stream.substr(pos, step));
  }
  using State = xr::proxy::ProxyHeaderReader::State;
  if (!whole.ok()) {
    if (reader.state() != State::kFailed || reader.error().code != whole.error().code) std::abort();
    return 0;
  }
  if (!whole->has_value()) {
    if (reader.state() != State::kNeedMore) std::abort();
    if (stream.size() >= xr::proxy::kV2HeaderLength + limits.max_v2_body) std::abort();  // bound
    return 0;
  }
  const auto& h = **whole;
  if (reader.state() != State::kDone || reader.header().length != h.length) std::abort();
  if (h.length > stream.size() || h.length == 0) std::abort();
  if (h.version == 1 && h.length > xr::proxy::kV1MaxLength) std::abort();
  if (h.version == 2 && h.length > xr::proxy::kV2HeaderLength + limits.max_v2_body) std::abort();
  if (reader.rest() != stream.substr(h.length, reader.rest().size())) std::abort();
  if (h.has_addresses() && (h.source.ToString().empty() || h.destination.ToString().empty())) std::abort();
  return 0;
}
