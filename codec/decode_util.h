#pragma once
// Pieces shared by the rencode and bencode codecs (not a public API).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "codec/decode_limits.h"
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

// kTooDeep ("<codec>: cannot encode nesting deeper than ...") when an encoder at nesting
// `level` is about to open one more container past kMaxDecodeDepthCeiling; Ok otherwise.
Status CheckEncodeDepth(int level, const char* codec);

// The encoder of one value at a nesting level, appending to out.
using EncodeFn = Status (*)(const Value& v, int level, std::string* out);

// Encodes each item of `list` (at nesting level + 1) with `encode`; the first failure stops.
// Inline so that the codec's own encoder is called directly, as a plain recursion would.
inline Status EncodeItems(const List& list, int level, EncodeFn encode, std::string* out) {
  for (const auto& item : list) {
    Status st = encode(item, level + 1, out);
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

// Encodes each key, then its value, of `dict` (at nesting level + 1); the first failure stops.
inline Status EncodeItems(const Dict& dict, int level, EncodeFn encode, std::string* out) {
  for (const auto& [key, item] : dict) {
    Status st = encode(key, level + 1, out);
    if (st.ok()) st = encode(item, level + 1, out);
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

// Appends the encoding of the top-level value v; on failure *out is left as it was.
Status EncodeTopLevel(const Value& v, EncodeFn encode, std::string* out);

// True when s is well-formed UTF-8 as Python's strict decoder sees it: no overlong forms, no
// surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequence.
bool IsValidUtf8(std::string_view s);

// The first byte of [start, end) that is neither a decimal digit nor a '-' at start, or end.
const uint8_t* FindNonDecimal(const uint8_t* start, const uint8_t* end);

// What the rencode and bencode decoders share: the cursor over the input, the limits, and
// errors that name the codec ("rencode: ...") and an offset. `Codec` (CRTP) supplies
// `bool DecodeValue(int level, Value* out)`, which decodes the value at p_ and starts with
// StartValue(). Every bool method returns false after storing the error in error_.
template <typename Codec>
class DecoderBase {
 public:
  // Decodes exactly one value filling the input (leftover bytes -> kMalformed).
  Expected<Value> Run() {
    Value v;
    if (!Derived().DecodeValue(0, &v)) return std::move(error_);
    if (p_ != end_) {
      return MakeError(ErrorCode::kMalformed, std::string(codec_) + ": " + std::to_string(end_ - p_) +
                                                  " trailing bytes after the value at offset " + Offset(p_));
    }
    return v;
  }

 protected:
  // codec: the name errors start with; a string literal.
  DecoderBase(std::string_view data, const DecodeLimits& limits, const char* codec)
      : begin_(reinterpret_cast<const uint8_t*>(data.data())),
        p_(begin_),
        end_(begin_ + data.size()),
        limits_(limits),
        elements_left_(limits.max_elements),
        max_depth_(std::min(limits.max_depth, kMaxDecodeDepthCeiling)),
        codec_(codec) {}

  // Records "<codec>: message" with `code`; returns false.
  bool Fail(ErrorCode code, std::string message) {
    error_ = MakeError(code, std::string(codec_) + ": " + std::move(message));
    return false;
  }
  // Records kTruncated: the input ends (at p_) inside `what`.
  bool Truncated(const char* what) {
    return Fail(ErrorCode::kTruncated, std::string("input ends inside ") + what + " at offset " + Offset(p_));
  }
  // Bytes left after p_.
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  // Decimal offset of `at` in the input, for messages.
  std::string Offset(const uint8_t* at) const { return std::to_string(at - begin_); }

  // Checks that a value starts at p_ and that max_elements allows one more.
  bool StartValue() {
    if (p_ == end_) return Truncated("a value");
    if (elements_left_-- == 0) {
      return Fail(ErrorCode::kTooLarge, "more than " + std::to_string(limits_.max_elements) + " elements");
    }
    return true;
  }

  // Enters the list or dict whose tag is at tag_at, one level below `level`: fails (kTooDeep)
  // past max_depth, else leaves p_ just past the tag.
  bool EnterContainer(int level, const uint8_t* tag_at) {
    if (level + 1 > max_depth_) {
      return Fail(ErrorCode::kTooDeep,
                  "nesting deeper than " + std::to_string(max_depth_) + " at offset " + Offset(tag_at));
    }
    p_ = tag_at + 1;
    return true;
  }

  // Appends the items (values, or key/value pairs for a Dict) of a container at nesting
  // `level` up to and past the byte `term`; running out of input is kTruncated inside `what`.
  template <typename Container>
  bool DecodeUntil(int level, uint8_t term, const char* what, Container* items) {
    while (true) {
      if (p_ == end_) return Truncated(what);
      if (*p_ == term) {
        ++p_;
        return true;
      }
      if (!DecodeItem(level, items)) return false;
    }
  }
  // Appends one more value decoded from p_ to *list (its nesting level + 1).
  bool DecodeItem(int level, List* list) { return Derived().DecodeValue(level + 1, &list->emplace_back()); }
  // Appends one more key/value pair decoded from p_ to *dict.
  bool DecodeItem(int level, Dict* dict) {
    auto& entry = dict->emplace_back();
    return Derived().DecodeValue(level + 1, &entry.first) && Derived().DecodeValue(level + 1, &entry.second);
  }

  // FinishDict for the dict whose tag is at dict_at (the offset is added to its error).
  bool FinishDictAt(Dict* dict, bool lists_are_tuples, const uint8_t* dict_at) {
    Status st = FinishDict(dict, lists_are_tuples, codec_);
    if (!st.ok()) {
      error_ = Error{st.error().code, st.error().message + " in the dict at offset " + Offset(dict_at)};
      return false;
    }
    return true;
  }

  // Reads "<decimal length>:" from `digits` (no leading zero, at most 19 digits) for the string
  // whose tag is at tag_at; checks the length against max_string_size (kTooLarge) and the input
  // left (kTruncated). On success p_ is at the string's first byte and *len its size.
  // `terms` lists the bytes that may end the length (rencodeplus: "/:"); *term gets the one found.
  bool ReadStringLength(const uint8_t* tag_at, const uint8_t* digits, size_t* len, std::string_view terms = ":",
                        uint8_t* term = nullptr) {
    constexpr size_t kMaxLengthDigits = 19;  // still fits comfortably in uint64
    uint64_t n = 0;
    const uint8_t* q = digits;
    for (;; ++q) {
      if (q == end_) {
        p_ = q;
        return Truncated("a string length");
      }
      if (q != digits && terms.find(static_cast<char>(*q)) != std::string_view::npos) break;
      if (*q < '0' || *q > '9') {
        return Fail(ErrorCode::kMalformed, "bad character in string length at offset " + Offset(q));
      }
      if (q != digits && *digits == '0') {
        return Fail(ErrorCode::kMalformed, "leading zero in string length at offset " + Offset(digits));
      }
      if (static_cast<size_t>(q - digits) >= kMaxLengthDigits) {
        return Fail(ErrorCode::kMalformed, "string length overflows at offset " + Offset(digits));
      }
      n = n * 10 + static_cast<uint64_t>(*q - '0');
    }
    if (n > limits_.max_string_size) {
      return Fail(ErrorCode::kTooLarge, "string of " + std::to_string(n) + " bytes at offset " + Offset(tag_at) +
                                            " is over the limit of " + std::to_string(limits_.max_string_size));
    }
    if (term != nullptr) *term = *q;
    p_ = q + 1;
    if (remaining() < n) return Truncated("a string");
    *len = static_cast<size_t>(n);
    return true;
  }

  // Stores the canonical decimal [start, term) (an int64, else a BigInt) in *out and moves p_
  // past term; anything else fails "invalid <what> at offset <tag_at>" (kMalformed).
  bool DecodeDecimal(const uint8_t* tag_at, const uint8_t* start, const uint8_t* term, const char* what, Value* out) {
    std::string_view text(reinterpret_cast<const char*>(start), static_cast<size_t>(term - start));
    bool fits = false;
    int64_t v = 0;
    if (!ParseDecimal(text, &fits, &v)) {
      return Fail(ErrorCode::kMalformed, std::string("invalid ") + what + " at offset " + Offset(tag_at));
    }
    p_ = term + 1;
    *out = fits ? Value(v) : Value(BigInt{std::string(text)});
    return true;
  }

  const uint8_t* begin_;
  const uint8_t* p_;
  const uint8_t* end_;
  const DecodeLimits limits_;
  size_t elements_left_;  // values still allowed by max_elements
  const int max_depth_;
  Error error_;

 private:
  Codec& Derived() { return *static_cast<Codec*>(this); }

  const char* codec_;
};

}  // namespace xr::codec_internal
