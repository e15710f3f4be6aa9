#pragma once
// Payload compression as xpra 3.1 does it (net/compression.py):
//   zlib: a zlib stream (RFC 1950), level byte = level (1..9).
//   lz4:  an lz4 block prefixed with the uncompressed size (u32 little-endian),
//         level byte = 0x10 | level; levels <= 3 use fast mode (acceleration 8 - 2*level),
//         4..6 the default mode, >= 7 high-compression mode at that level; output is byte-identical
//         to python-lz4's lz4.block.compress, which xpra uses.
//   lzo, brotli: recognised, not supported.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "codec/header.h"

namespace xr {

// Decompresses a payload whose header carried `level` into at most max_out bytes.
// level 0 returns the input unchanged. Output over max_out -> kTooLarge, detected before it
// is allocated, and nothing is allocated ahead of the data (lz4: a size prefix over max_out, or
// over what the bytes present can expand to (255:1), is refused before allocating; zlib: the
// output grows in steps, at most doubling what was already produced). Corrupt or truncated
// data -> kMalformed; lzo/brotli -> kUnsupported.
Expected<std::string> Decompress(uint8_t level, std::string_view in, size_t max_out);

// Compresses `in` with compressor c at level 1..9 (as xpra's compressors do) and appends the
// result to *out; returns the level byte for the header. kNone appends `in` as is and returns 0.
// Level outside 1..9 -> kMalformed; lzo/brotli -> kUnsupported.
Expected<uint8_t> Compress(Compressor c, int level, std::string_view in, std::string* out);

}  // namespace xr
