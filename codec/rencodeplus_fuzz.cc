// Fuzz target: rencodeplus::Decode must never crash, and whatever it accepts must re-encode and
// decode to the same value (and the same bytes on a second round).
#include <cstddef>
#include <cstdint>

#include "codec/codec_fuzz_common.h"
#include "codec/rencodeplus.h"

namespace {

// rencodeplus keeps float widths and tells str from bytes, so both must come back exactly.
constexpr xr::codec_fuzz::FuzzedCodec kRencodePlus = {"rencodeplus", &xr::rencodeplus::Decode,
                                                      &xr::rencodeplus::Encode,
                                                      /*floats_by_bits=*/true, /*text_is_bytes=*/false};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return xr::codec_fuzz::FuzzOneInput(kRencodePlus, data, size);
}
