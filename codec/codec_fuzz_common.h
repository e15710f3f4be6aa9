#pragma once
// The fuzz body the rencode and bencode fuzzers share: Decode must never crash, its errors must
// name the codec, and whatever it accepts must re-encode and decode to the same value (and the
// same bytes on a second round).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "base/status.h"
#include "codec/decode_limits.h"
#include "codec/value.h"

namespace xr::codec_fuzz {

// One codec under fuzzing and how its round trip may legitimately change a value.
struct FuzzedCodec {
  const char* name;  // "rencode": every error message starts with "rencode: "
  Expected<Value> (*decode)(std::string_view data, const DecodeLimits& limits);
  Status (*encode)(const Value& v, std::string* out);
  bool floats_by_bits;  // floats match only bit for bit and width for width (NaN matches itself)
  bool text_is_bytes;   // text and bytes of the same spelling match (the encoder writes both as bytes)
};

// Value equality under the codec's rules above, applied at every depth.
inline bool Same(const FuzzedCodec& codec, const Value& a, const Value& b) {
  if (codec.text_is_bytes && a.is_string() && b.is_string()) return a.as_string() == b.as_string();
  if (a.kind() != b.kind()) return false;
  if (codec.floats_by_bits && a.is_float()) {
    const auto& fa = a.as_float();
    const auto& fb = b.as_float();
    return fa.single == fb.single && std::memcmp(&fa.value, &fb.value, sizeof(double)) == 0;
  }
  if (a.is_list()) {
    const auto& la = a.as_list();
    const auto& lb = b.as_list();
    if (la.size() != lb.size()) return false;
    for (size_t i = 0; i < la.size(); ++i) {
      if (!Same(codec, la[i], lb[i])) return false;
    }
    return true;
  }
  if (a.is_dict()) {
    const auto& da = a.as_dict();
    const auto& db = b.as_dict();
    if (da.size() != db.size()) return false;
    for (size_t i = 0; i < da.size(); ++i) {
      if (!Same(codec, da[i].first, db[i].first) || !Same(codec, da[i].second, db[i].second)) return false;
    }
    return true;
  }
  return a == b;
}

// Prints "<codec>_fuzzer: what" and aborts, which the fuzzer reports as a finding.
[[noreturn]] inline void Die(const FuzzedCodec& codec, const char* what) {
  std::fprintf(stderr, "%s_fuzzer: %s\n", codec.name, what);
  std::abort();
}

// The whole fuzz iteration for one input; returns 0 (aborts on a finding).
inline int FuzzOneInput(const FuzzedCodec& codec, const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto first = codec.decode(in, DecodeLimits{});
  if (!first.ok()) {
    if (first.error().message.rfind(std::string(codec.name) + ": ", 0) != 0) Die(codec, "error message without prefix");
    return 0;
  }
  std::string once;
  if (!codec.encode(*first, &once).ok()) Die(codec, "decoded value does not encode");
  auto second = codec.decode(once, DecodeLimits{});
  if (!second.ok()) Die(codec, "encoded value does not decode");
  if (!Same(codec, *first, *second)) Die(codec, "value changed after encode/decode");
  std::string twice;
  if (!codec.encode(*second, &twice).ok() || twice != once) Die(codec, "encoding is not stable");
  return 0;
}

}  // namespace xr::codec_fuzz
