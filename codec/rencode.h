#pragma once
// rencode as written by python-rencode 1.0.6 (the Cython module xpra 3.1 uses).
//
// Wire format, one type tag byte per value (integers big-endian):
//   0x00-0x2b  int 0..43            0x46-0x65  int -1..-32
//   0x3e/3f/40/41  int8/16/32/64    0x3d  big int: decimal text, 0x7f ('=-123..\x7f', < 64 chars)
//   0x42  float32   0x2c  float64   0x43 True  0x44 False  0x45 None
//   0x80-0xbf  string of 0..63 bytes      '1'-'9'  "<len>:<bytes>" (64 bytes or more)
//   0xc0-0xff  list of 0..63 values       0x3b ... 0x7f  list of 64 or more
//   0x66-0x7e  dict of 0..24 pairs        0x3c ... 0x7f  dict of 25 or more
// Strings decode as Bytes; Text encodes as its UTF-8 bytes. Python's rencode.dumps() writes
// floats as float32 by default: decoded floats remember their width (Float::single) so they
// re-encode to the same bytes; Value(double) (single = false) is written as float64.

#include <string>
#include <string_view>

#include "base/status.h"
#include "codec/decode_limits.h"
#include "codec/value.h"

namespace xr::rencode {

// Decodes exactly one value filling `data` (trailing bytes -> kMalformed; short -> kTruncated;
// over a limit -> kTooDeep / kTooLarge; anything python-rencode could not produce or would
// reject -> kMalformed). Repeated dict keys follow Python: first position, last value.
Expected<Value> Decode(std::string_view data, const DecodeLimits& limits = {});

// Appends the python-rencode 1.0.6 encoding of v to *out (Text and Bytes both as byte strings).
// Fails, leaving *out as it was, on a BigInt that is not a canonical decimal of fewer than 64
// characters (kMalformed / kTooLarge) or on nesting deeper than kMaxDecodeDepthCeiling.
Status Encode(const Value& v, std::string* out);

}  // namespace xr::rencode
