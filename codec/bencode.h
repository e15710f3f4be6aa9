#pragma once
// xpra 3.1's own bencode variant (the Cython module xpra.net.bencode.cython_bencode, 3.0).
//
//   i<decimal>e     integer of any size (Python's 4300-digit limit); bools are written as i1e/i0e
//   <len>:<bytes>   byte string, decoded as Bytes
//   u<len>:<utf-8>  text string, decoded as Text (xpra 3.1 reads it but never writes it)
//   l...e           list
//   d...e           dict, keys of any hashable type, in wire order (never sorted)
// Encoding writes Text and Bytes alike as <len>:<bytes>, exactly as xpra 3.1 does for str.
// There is no None and no float: encoding either fails with kUnsupported, as in xpra.

#include <string>
#include <string_view>

#include "base/status.h"
#include "codec/decode_limits.h"
#include "codec/value.h"

namespace xr::bencode {

// Decodes exactly one value filling `data` (trailing bytes -> kMalformed; short -> kTruncated;
// over a limit -> kTooDeep / kTooLarge; invalid -> kMalformed). Repeated dict keys follow
// Python: first position, last value.
Expected<Value> Decode(std::string_view data, const DecodeLimits& limits = {});

// Appends xpra 3.1's bencoding of v to *out. Fails, leaving *out as it was, on None or Float
// (kUnsupported), on a BigInt that is not a canonical decimal (kMalformed), or on nesting
// deeper than kMaxDecodeDepthCeiling (kTooDeep).
Status Encode(const Value& v, std::string* out);

}  // namespace xr::bencode
