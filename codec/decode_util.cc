#include "codec/decode_util.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

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

Status CheckEncodeDepth(int level, const char* codec) {
  if (level >= kMaxDecodeDepthCeiling) {
    return MakeError(ErrorCode::kTooDeep, std::string(codec) + ": cannot encode nesting deeper than " +
                                              std::to_string(kMaxDecodeDepthCeiling));
  }
  return Status::Ok();
}

Status EncodeTopLevel(const Value& v, EncodeFn encode, std::string* out) {
  const size_t before = out->size();
  Status st = encode(v, 0, out);
  if (!st.ok()) out->resize(before);
  return st;
}

const uint8_t* FindNonDecimal(const uint8_t* start, const uint8_t* end) {
  for (const uint8_t* q = start; q < end; ++q) {
    if (!((*q >= '0' && *q <= '9') || (*q == '-' && q == start))) return q;
  }
  return end;
}

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const uint8_t b0 = *p;
    if (b0 < 0x80) {
      ++p;
      continue;
    }
    // Unicode 15 table 3-7: the lead byte gives the length and the range of the second byte.
    int len = 0;
    uint8_t lo = 0x80, hi = 0xbf;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      len = 2;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      len = 3;
      if (b0 == 0xe0) lo = 0xa0;  // overlong
      if (b0 == 0xed) hi = 0x9f;  // surrogates
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      len = 4;
      if (b0 == 0xf0) lo = 0x90;  // overlong
      if (b0 == 0xf4) hi = 0x8f;  // above U+10FFFF
    } else {
      return false;  // continuation byte, overlong 0xc0/0xc1, or 0xf5..0xff
    }
    if (end - p < len) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (int i = 2; i < len; ++i) {
      if (p[i] < 0x80 || p[i] > 0xbf) return false;
    }
    p += len;
  }
  return true;
}

std::string HexByte(uint8_t b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  return std::string{'0', 'x', kDigits[b >> 4], kDigits[b & 15]};
}

namespace {

constexpr size_t kPairwiseLimit = 16;  // dicts up to this size are checked pair by pair

// Order of key families; equal keys are always in the same family.
int Family(Value::Kind k) {
  switch (k) {
    case Value::Kind::kBool:
    case Value::Kind::kInt:
    case Value::Kind::kFloat: return 0;
    case Value::Kind::kNone: return 1;
    case Value::Kind::kBigInt: return 2;
    case Value::Kind::kBytes:
    case Value::Kind::kText: return 3;
    case Value::Kind::kList: return 4;
    case Value::Kind::kDict: return 5;
  }
  return 6;
}

template <typename T>
int Cmp(T a, T b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

// Exact three-way comparison of an int64 and a non-NaN double.
int CompareIntDouble(int64_t i, double d) {
  constexpr double kTwo63 = 9223372036854775808.0;
  if (d >= kTwo63) return -1;
  if (d < -kTwo63) return 1;
  const double whole = std::trunc(d);
  const int c = Cmp(i, static_cast<int64_t>(whole));
  if (c != 0) return c;
  return Cmp(0.0, d - whole);
}

// Decimal magnitude comparison of two canonical big integers.
int CompareBig(const std::string& a, const std::string& b) {
  const bool na = !a.empty() && a[0] == '-';
  const bool nb = !b.empty() && b[0] == '-';
  if (na != nb) return na ? -1 : 1;
  int mag = Cmp(a.size(), b.size());
  if (mag == 0) mag = a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
  return na ? -mag : mag;
}

// A total preorder on hashable keys whose ties are exactly Python's == for keys without NaN
// (NaNs tie with each other but equal nothing; see HasNaN). Strings compare by bytes only.
int KeyCompare(const Value& a, const Value& b) {
  const int fa = Family(a.kind()), fb = Family(b.kind());
  if (fa != fb) return Cmp(fa, fb);
  switch (fa) {
    case 0: {
      const bool da = a.is_float(), db = b.is_float();
      if (!da && !db) return Cmp(*a.to_int(), *b.to_int());
      const double x = da ? a.as_float().value : 0, y = db ? b.as_float().value : 0;
      const bool xnan = da && std::isnan(x), ynan = db && std::isnan(y);
      if (xnan || ynan) return Cmp(xnan, ynan);  // NaNs after every number
      if (da && db) return Cmp(x, y);
      return da ? -CompareIntDouble(*b.to_int(), x) : CompareIntDouble(*a.to_int(), y);
    }
    case 1: return 0;
    case 2: return CompareBig(a.as_bigint().decimal, b.as_bigint().decimal);
    case 3: {
      const int c = a.as_string().compare(b.as_string());
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    case 4: {
      const List& la = a.as_list();
      const List& lb = b.as_list();
      for (size_t i = 0; i < la.size() && i < lb.size(); ++i) {
        if (int c = KeyCompare(la[i], lb[i])) return c;
      }
      return Cmp(la.size(), lb.size());
    }
    default: return 0;
  }
}

// True when the key holds a NaN somewhere: such a key equals no other key.
bool HasNaN(const Value& v) {
  if (v.is_float()) return std::isnan(v.as_float().value);
  if (v.is_list()) return std::any_of(v.as_list().begin(), v.as_list().end(), HasNaN);
  return false;
}

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

// A quick hash of short strings (dict keys), 8 bytes per step. Collisions only cost time:
// keys with equal hashes are then sorted, so crafted collisions cannot make this quadratic.
uint64_t StringHash(std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
  auto load64 = [](const char* q) {
    uint64_t w;
    std::memcpy(&w, q, 8);
    return w;
  };
  if (n >= 8) {
    for (; n > 8; p += 8, n -= 8) h = (h ^ load64(p)) * 0xbf58476d1ce4e5b9ULL;
    h ^= load64(p + n - 8);  // the last 8 bytes, overlapping what came before
  } else if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    h ^= (uint64_t{a} << 32) | b;
  } else if (n > 0) {
    h ^= (uint64_t{static_cast<uint8_t>(p[0])} << 16) | (uint64_t{static_cast<uint8_t>(p[n / 2])} << 8) |
         static_cast<uint8_t>(p[n - 1]);
  }
  return Mix(h);
}

// Equal keys (KeyCompare ties) hash alike: numbers by integral value, strings by bytes.
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
    case Value::Kind::kBigInt: return StringHash(v.as_bigint().decimal) ^ 0xb16ULL;
    case Value::Kind::kBytes:
    case Value::Kind::kText: return StringHash(v.as_string());
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

// Merges entry `dup` into the earlier, equal entry `keep` (Python: first key, last value).
Status Merge(Dict& d, size_t keep, size_t dup, const char* codec) {
  const Value& kept = d[keep].first;
  if (kept.is_string() && kept.kind() != d[dup].first.kind()) {
    return MakeError(ErrorCode::kMalformed, std::string(codec) + ": dict has both a bytes and a text key " +
                                                kept.repr(64));
  }
  d[keep].second = std::move(d[dup].second);
  return Status::Ok();
}

// Drops the entries marked in `gone`, keeping the order of the rest.
void Compact(Dict& d, const std::vector<bool>& gone) {
  size_t out = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    if (gone[i]) continue;
    if (out != i) d[out] = std::move(d[i]);
    ++out;
  }
  d.erase(d.begin() + static_cast<ptrdiff_t>(out), d.end());
}

}  // namespace

Status FinishDict(Dict* dict, bool lists_are_tuples, const char* codec) {
  Dict& d = *dict;
  const size_t n = d.size();
  for (const auto& entry : d) {
    if (entry.first.is_string() || entry.first.is_int()) continue;
    if (const char* bad = UnhashablePart(entry.first, lists_are_tuples)) {
      return MakeError(ErrorCode::kMalformed, std::string(codec) + ": unhashable dict key (" + bad + ")");
    }
  }
  std::vector<bool> gone;
  if (n <= kPairwiseLimit) {
    // Each key against the kept keys before it.
    for (size_t i = 1; i < n; ++i) {
      for (size_t j = 0; j < i; ++j) {
        if ((!gone.empty() && gone[j]) || KeyCompare(d[j].first, d[i].first) != 0 || HasNaN(d[i].first)) continue;
        Status st = Merge(d, j, i, codec);
        if (!st.ok()) return st;
        if (gone.empty()) gone.resize(n);
        gone[i] = true;
        break;
      }
    }
  } else {
    // Sort (hash, position) pairs; only keys sharing a hash can be equal. Each such group is
    // then sorted by key (ties by position) and each run of equal keys merged into its first.
    std::vector<uint64_t> by_hash(n);
    for (size_t i = 0; i < n; ++i) by_hash[i] = (KeyHash(d[i].first) & 0xffffffff00000000ULL) | i;
    std::sort(by_hash.begin(), by_hash.end());
    std::vector<uint32_t> group;
    for (size_t start = 0; start < n;) {
      size_t end = start + 1;
      while (end < n && (by_hash[end] >> 32) == (by_hash[start] >> 32)) ++end;
      if (end - start > 1) {
        group.clear();
        for (size_t k = start; k < end; ++k) group.push_back(static_cast<uint32_t>(by_hash[k]));
        std::sort(group.begin(), group.end(), [&d](uint32_t a, uint32_t b) {
          const int c = KeyCompare(d[a].first, d[b].first);
          return c != 0 ? c < 0 : a < b;
        });
        for (size_t run = 0; run < group.size();) {
          size_t stop = run + 1;
          while (stop < group.size() && KeyCompare(d[group[run]].first, d[group[stop]].first) == 0) ++stop;
          if (stop - run > 1 && !HasNaN(d[group[run]].first)) {
            for (size_t k = run + 1; k < stop; ++k) {
              Status st = Merge(d, group[run], group[k], codec);
              if (!st.ok()) return st;
              if (gone.empty()) gone.resize(n);
              gone[group[k]] = true;
            }
          }
          run = stop;
        }
      }
      start = end;
    }
  }
  if (!gone.empty()) Compact(d, gone);
  return Status::Ok();
}

}  // namespace xr::codec_internal
