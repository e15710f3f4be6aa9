#pragma once
// Pieces shared by the rencode and bencode codecs (not a public API).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

// Collects the entries of one decoded dict with Python semantics for repeated keys: a key
// equal (Python ==: 1 == True == 1.0, tuples item by item) to an earlier one keeps the earlier
// position and takes the new value, so the relay sees what a Python peer sees. Keys Python
// cannot hash (dicts; lists unless the codec decodes them as tuples, as rencode does) are
// refused, and so is a bytes key next to a text key of the same spelling: distinct in Python
// but the same to Value::find.
class DictBuilder {
 public:
  // `expected` sizes the first allocation (0 when unknown); `codec` prefixes error messages.
  DictBuilder(size_t expected, bool lists_are_tuples, const char* codec);

  // Adds one entry (see the class comment); kMalformed for a refused key.
  Status Add(Value key, Value value);

  // The finished dict, in first-seen key order.
  Dict Take() { return std::move(entries_); }

 private:
  // Index of an existing entry equal to key, or -1.
  ptrdiff_t Find(const Value& key, uint64_t hash) const;
  void Rehash(size_t slots);

  bool lists_are_tuples_;
  const char* codec_;
  Dict entries_;
  std::vector<uint64_t> hashes_;  // one per entry, filled once the table is in use
  std::vector<uint32_t> table_;   // open addressing: entry index + 1, 0 = empty
};

}  // namespace xr::codec_internal
