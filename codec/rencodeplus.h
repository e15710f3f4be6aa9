#pragma once
// rencodeplus: xpra 6.x's packet encoding (header flag 0x10; xpra/net/rencodeplus, "Cython 1.0.10").
//
// The rencode type tags (codec/rencode.h) with these differences, which matter on the wire:
//   - str and bytes are different values. A str (Text) is written as UTF-8, 0x80-0xbf + bytes
//     below 64 bytes, else "<len>:<bytes>"; it decodes as Text and must be valid UTF-8.
//     bytes (Bytes) are ALWAYS "<len>/<bytes>", even empty ("0/"), and decode as Bytes.
//     So the length may start with '0' (a lone "0"), which rencode never allows.
//   - floats are written as float64 only (float32 still decodes; a decoded float32 keeps its
//     width so it re-encodes to the same bytes).
//   - a big number ('=' ... 0x7f) has 18 to 63 characters: 6.x looks for the terminator from
//     the 19th character on (its encoder writes it only outside int64).
// Decoding is strict where 6.x's is loose (Python int() accepts "+1", " 1", "1_0", leading
// zeros): only what the 6.x encoder can write, plus the rencode forms 6.x reads back
// (terminated short lists/dicts, "<len>:" for short str, float32), is accepted.
// Implemented in codec/rencode.cc, beside rencode, with which it shares everything else.

#include <string>
#include <string_view>

#include "base/status.h"
#include "codec/decode_limits.h"
#include "codec/value.h"

namespace xr::rencodeplus {

// Decodes exactly one value filling `data`. Errors as rencode::Decode (kMalformed, kTruncated,
// kTooDeep, kTooLarge), messages start "rencodeplus: "; a str that is not UTF-8 -> kMalformed.
// A dict holding a bytes key and a text key of the same spelling -> kMalformed (Python keeps
// both; Value::find could not tell them apart).
Expected<Value> Decode(std::string_view data, const DecodeLimits& limits = {});

// Appends the rencodeplus encoding of v: Text as str, Bytes as bytes, Float as float64 unless
// it is a decoded float32. Fails, leaving *out as it was, as rencode::Encode does.
Status Encode(const Value& v, std::string* out);

}  // namespace xr::rencodeplus
