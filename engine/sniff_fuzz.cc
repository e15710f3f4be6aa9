// Fuzzes Sniff: never crashes, never reads past max_bytes, and is monotonic: once a prefix is
// decisive, every longer input starting with it gets the same answer (so the caller may decide
// as soon as the answer is not kNeedMore, whatever the read boundaries).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engine/sniff.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  xr::SniffLimits limits;
  limits.max_bytes = 64;
  const xr::SniffKind whole = xr::Sniff(in, limits);
  if (whole == xr::SniffKind::kNeedMore && in.size() >= limits.max_bytes) std::abort();
  xr::SniffKind decided = xr::SniffKind::kNeedMore;
  for (size_t n = 0; n <= in.size(); ++n) {
    xr::SniffKind k = xr::Sniff(in.substr(0, n), limits);
    if (decided != xr::SniffKind::kNeedMore && k != decided) std::abort();
    if (k != xr::SniffKind::kNeedMore) decided = k;
  }
  if (decided != whole) std::abort();
  // Bytes past max_bytes never matter.
  if (in.size() > limits.max_bytes && xr::Sniff(in.substr(0, limits.max_bytes), limits) != whole) std::abort();
  (void)xr::SniffDescribe(in);
  (void)xr::ClientHelloOffersHttp11(in);
  return 0;
}
