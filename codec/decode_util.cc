#include "codec/decode_util.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <functional>

namespace xr::codec_internal {

bool ParseDecimal(std::string_view text, bool* fits, int64_t* v) {
  *fits = false;
  std::string_view digits = text;
  const bool negative = !digits.empty() && digits.front() == '-';
  if (negative) digits.remove_prefix(1);
  if (digits.empty()) return false;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
  }
  if (digits.front() == '0' && (digits.size() > 1 || negative)) return false;  // 007, -0
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *v);
  *fits = ec == std::errc() && ptr == text.data() + text.size();
  return true;
}

void AppendDecimal(int64_t v, std::string* out) {
  char buf[24];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;  // 24 bytes always suffice for int64
  out->append(buf, ptr);
}

std::string HexByte(uint8_t b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  return std::string{'0', 'x', kDigits[b >> 4], kDigits[b & 15]};
}

namespace {

constexpr size_t kLinearLimit = 8;  // dicts up to this size are searched linearly

bool IsNumeric(Value::Kind k) {
  return k == Value::Kind::kBool || k == Value::Kind::kInt || k == Value::Kind::kFloat;
}

// f == i in Python: f integral and exactly i.
bool FloatEqualsInt(double f, int64_t i) {
  constexpr double kTwo63 = 9223372036854775808.0;
  if (!(f >= -kTwo63 && f < kTwo63) || f != std::trunc(f)) return false;
  return static_cast<int64_t>(f) == i;
}

// Python == between two hashable keys (string spellings compare regardless of bytes/text).
bool KeyEqual(const Value& a, const Value& b) {
  const auto ka = a.kind(), kb = b.kind();
  if (IsNumeric(ka) && IsNumeric(kb)) {
    if (ka == Value::Kind::kFloat && kb == Value::Kind::kFloat) {
      return a.as_float().value == b.as_float().value;
    }
    if (ka == Value::Kind::kFloat) return FloatEqualsInt(a.as_float().value, *b.to_int());
    if (kb == Value::Kind::kFloat) return FloatEqualsInt(b.as_float().value, *a.to_int());
    return *a.to_int() == *b.to_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() == b.as_string();
  if (ka != kb) return false;
  switch (ka) {
    case Value::Kind::kNone: return true;
    case Value::Kind::kBigInt: return a.as_bigint() == b.as_bigint();
    case Value::Kind::kList: {
      const List& la = a.as_list();
      const List& lb = b.as_list();
      if (la.size() != lb.size()) return false;
      for (size_t i = 0; i < la.size(); ++i) {
        if (!KeyEqual(la[i], lb[i])) return false;
      }
      return true;
    }
    default: return false;
  }
}

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

// Consistent with KeyEqual: equal keys hash alike.
uint64_t KeyHash(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kNone: return 0x6e6f6e65ULL;
    case Value::Kind::kBool:
    case Value::Kind::kInt: return Mix(static_cast<uint64_t>(*v.to_int()));
    case Value::Kind::kFloat: {
      const double f = v.as_float().value;
      if (f >= -9223372036854775808.0 && f < 9223372036854775808.0 && f == std::trunc(f)) {
        return Mix(static_cast<uint64_t>(static_cast<int64_t>(f)));
      }
      uint64_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      return Mix(bits);
    }
    case Value::Kind::kBigInt: return Mix(std::hash<std::string_view>{}(v.as_bigint().decimal) ^ 0xb16ULL);
    case Value::Kind::kBytes:
    case Value::Kind::kText: return std::hash<std::string_view>{}(v.as_string());
    case Value::Kind::kList: {
      uint64_t h = 0x7475706cULL;
      for (const auto& e : v.as_list()) h = Mix(h * 31 + KeyHash(e));
      return h;
    }
    case Value::Kind::kDict: return 0;  // never a key
  }
  return 0;
}

// Kind name of the first unhashable part of key, or nullptr when Python could hash it.
const char* UnhashablePart(const Value& key, bool lists_are_tuples) {
  if (key.is_dict()) return "dict";
  if (!key.is_list()) return nullptr;
  if (!lists_are_tuples) return "list";
  for (const auto& e : key.as_list()) {
    if (const char* bad = UnhashablePart(e, true)) return bad;
  }
  return nullptr;
}

}  // namespace

DictBuilder::DictBuilder(size_t expected, bool lists_are_tuples, const char* codec)
    : lists_are_tuples_(lists_are_tuples), codec_(codec) {
  entries_.reserve(expected);
}

ptrdiff_t DictBuilder::Find(const Value& key, uint64_t hash) const {
  if (table_.empty()) {
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (KeyEqual(entries_[i].first, key)) return static_cast<ptrdiff_t>(i);
    }
    return -1;
  }
  const size_t mask = table_.size() - 1;
  for (size_t s = hash & mask;; s = (s + 1) & mask) {
    const uint32_t slot = table_[s];
    if (slot == 0) return -1;
    const size_t i = slot - 1;
    if (hashes_[i] == hash && KeyEqual(entries_[i].first, key)) return static_cast<ptrdiff_t>(i);
  }
}

void DictBuilder::Rehash(size_t slots) {
  table_.assign(slots, 0);
  const size_t mask = slots - 1;
  for (size_t i = 0; i < entries_.size(); ++i) {
    size_t s = hashes_[i] & mask;
    while (table_[s] != 0) s = (s + 1) & mask;
    table_[s] = static_cast<uint32_t>(i + 1);
  }
}

Status DictBuilder::Add(Value key, Value value) {
  if (const char* bad = UnhashablePart(key, lists_are_tuples_)) {
    return MakeError(ErrorCode::kMalformed, std::string(codec_) + ": unhashable dict key (" + bad + ")");
  }
  uint64_t hash = 0;
  if (!table_.empty() || entries_.size() >= kLinearLimit) {
    if (table_.empty()) {
      hashes_.reserve(entries_.size() * 2);
      for (const auto& e : entries_) hashes_.push_back(KeyHash(e.first));
      Rehash(32);
    }
    hash = KeyHash(key);
  }
  const ptrdiff_t found = Find(key, hash);
  if (found >= 0) {
    Value& existing = entries_[static_cast<size_t>(found)].first;
    if (existing.is_string() && existing.kind() != key.kind()) {
      return MakeError(ErrorCode::kMalformed, std::string(codec_) + ": dict has both a bytes and a text key '" +
                                                  existing.repr(64) + "'");
    }
    entries_[static_cast<size_t>(found)].second = std::move(value);
    return Status::Ok();
  }
  entries_.emplace_back(std::move(key), std::move(value));
  if (!table_.empty()) {
    hashes_.push_back(hash);
    if (entries_.size() * 2 > table_.size()) {
      Rehash(table_.size() * 2);
    } else {
      const size_t mask = table_.size() - 1;
      size_t s = hash & mask;
      while (table_[s] != 0) s = (s + 1) & mask;
      table_[s] = static_cast<uint32_t>(entries_.size());
    }
  }
  return Status::Ok();
}

}  // namespace xr::codec_internal
