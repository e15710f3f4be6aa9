// Fuzz target: rencode::Decode must never crash, and whatever it accepts must re-encode and
// decode to the same value (and the same bytes on a second round).
#include <cstddef>
#include <cstdint>

#include "codec/codec_fuzz_common.h"
#include "codec/rencode.h"

namespace {

// rencode keeps float widths, so floats must come back bit for bit; strings always decode as bytes.
constexpr xr::codec_fuzz::FuzzedCodec kRencode = {"rencode", &xr::rencode::Decode, &xr::rencode::Encode,
                                                  /*floats_by_bits=*/true, /*text_is_bytes=*/false};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return xr::codec_fuzz::FuzzOneInput(kRencode, data, size);
}
