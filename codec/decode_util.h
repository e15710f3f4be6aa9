#pragma once
// Pieces shared by the rencode and bencode codecs (not a public API).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "codec/result.h"
#include "codec/value.h"

namespace xr::codec_internal {

// Returns true when text is a canonical decimal integer: "-"? ("0" | [1-9][0-9]*), not "-0".
// When it also fits int64, *fits is set and *v holds the value.
bool ParseDecimal(std::string_view text, bool* fits, int64_t* v);

// Appends the decimal spelling of v.
void AppendDecimal(int64_t v, std::string* out);

// "0x2d": a byte as printed in error messages.
std::string HexByte(uint8_t b);

// Replaces *out, a default (None) Value, with x constructed in place: cheaper on the decode
// path than assigning a temporary Value (one variant move and two destructions fewer).
template <typename T>
inline void Emplace(Value* out, T&& x) {
  std::destroy_at(out);
  std::construct_at(out, std::forward<T>(x));
}

// Gives a dict decoded in wire order Python's meaning: a key equal (Python ==: 1 == True == 1.0,
// tuples item by item; NaN equals nothing) to an earlier one keeps the earlier position and
// hands it its value, so the relay sees the dict a Python peer sees. Fails (kMalformed) on
// keys Python cannot hash (dicts; lists unless `lists_are_tuples`, as rencode decodes them)
// and on a bytes key next to a text key of the same spelling: distinct in Python but the
// same to Value::find. Runs in O(n log n) comparisons whatever the keys (no hash flooding).
// Known gap: a float key equal to a big-int key (2.0**70 vs 2**70) is not merged.
Status FinishDict(Dict* dict, bool lists_are_tuples, const char* codec);

}  // namespace xr::codec_internal
