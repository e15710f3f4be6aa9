// Fuzz target: bencode::Decode must never crash, and whatever it accepts must re-encode and
// decode to the same value (and the same bytes on a second round).
#include <cstddef>
#include <cstdint>

#include "codec/bencode.h"
#include "codec/codec_fuzz_common.h"

namespace {

// xpra 3.1 writes every string as <len>:<bytes>, so a decoded u-string comes back as bytes;
// bencode has no floats.
constexpr xr::codec_fuzz::FuzzedCodec kBencode = {"bencode", &xr::bencode::Decode, &xr::bencode::Encode,
                                                  /*floats_by_bits=*/false, /*text_is_bytes=*/true};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return xr::codec_fuzz::FuzzOneInput(kBencode, data, size);
}
