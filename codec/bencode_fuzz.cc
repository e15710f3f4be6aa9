// Fuzz target: bencode::Decode must never crash, and whatever it accepts must re-encode and
// decode to the same value (and the same bytes on a second round).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "codec/bencode.h"

namespace {

// Value equality where text and bytes of the same spelling match: xpra 3.1 writes every
// string as <len>:<bytes>, so a decoded u-string comes back as bytes.
bool Same(const xr::Value& a, const xr::Value& b) {
  if (a.is_string() && b.is_string()) return a.as_string() == b.as_string();
  if (a.kind() != b.kind()) return false;
  if (a.is_list()) {
    const auto& la = a.as_list();
    const auto& lb = b.as_list();
    if (la.size() != lb.size()) return false;
    for (size_t i = 0; i < la.size(); ++i) {
      if (!Same(la[i], lb[i])) return false;
    }
    return true;
  }
  if (a.is_dict()) {
    const auto& da = a.as_dict();
    const auto& db = b.as_dict();
    if (da.size() != db.size()) return false;
    for (size_t i = 0; i < da.size(); ++i) {
      if (!Same(da[i].first, db[i].first) || !Same(da[i].second, db[i].second)) return false;
    }
    return true;
  }
  return a == b;
}

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "bencode_fuzzer: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto first = xr::bencode::Decode(in);
  if (!first.ok()) {
    if (first.error().message.rfind("bencode: ", 0) != 0) Die("error message without prefix");
    return 0;
  }
  std::string once;
  if (!xr::bencode::Encode(*first, &once).ok()) Die("decoded value does not encode");
  auto second = xr::bencode::Decode(once);
  if (!second.ok()) Die("encoded value does not decode");
  if (!Same(*first, *second)) Die("value changed after encode/decode");
  std::string twice;
  if (!xr::bencode::Encode(*second, &twice).ok() || twice != once) Die("encoding is not stable");
  return 0;
}
