#include "codec/rencode.h"

#include "codec/rencodeplus.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "codec/decode_util.h"

namespace xr::rencode {
namespace {

using codec_internal::AppendDecimal;
using codec_internal::CheckEncodeDepth;
using codec_internal::Emplace;
using codec_internal::EncodeItems;
using codec_internal::FindNonDecimal;
using codec_internal::HexByte;
using codec_internal::ParseDecimal;

// Type tags (python-rencode's names in comments).
constexpr uint8_t kFloat64 = 44;    // CHR_FLOAT64
constexpr uint8_t kList = 59;       // CHR_LIST
constexpr uint8_t kDict = 60;       // CHR_DICT
constexpr uint8_t kBigInt = 61;     // CHR_INT
constexpr uint8_t kInt1 = 62;       // CHR_INT1
constexpr uint8_t kInt2 = 63;       // CHR_INT2
constexpr uint8_t kInt4 = 64;       // CHR_INT4
constexpr uint8_t kInt8 = 65;       // CHR_INT8
constexpr uint8_t kFloat32 = 66;    // CHR_FLOAT32
constexpr uint8_t kTrue = 67;       // CHR_TRUE
constexpr uint8_t kFalse = 68;      // CHR_FALSE
constexpr uint8_t kNone = 69;       // CHR_NONE
constexpr uint8_t kTerm = 127;      // CHR_TERM

constexpr uint8_t kIntPosFixedStart = 0;
constexpr int kIntPosFixedCount = 44;
constexpr uint8_t kIntNegFixedStart = 70;
constexpr int kIntNegFixedCount = 32;
constexpr uint8_t kDictFixedStart = 102;
constexpr size_t kDictFixedCount = 25;
constexpr uint8_t kStrFixedStart = 128;
constexpr size_t kStrFixedCount = 64;
constexpr uint8_t kListFixedStart = kStrFixedStart + kStrFixedCount;  // 192
constexpr size_t kListFixedCount = 64;

// python-rencode refuses big numbers of 64 characters or more (sign included).
constexpr size_t kMaxBigIntChars = 63;
// xpra 6.x's rencodeplus looks for the terminator from the 19th character on: a shorter big
// number (which its encoder never writes: those fit int64) is unreadable there.
constexpr size_t kMinPlusBigIntChars = 18;

// The two formats one decoder and one encoder handle: python-rencode 1.0.6 (xpra 3.1) and xpra
// 6.x's rencodeplus, which differ only in strings (see codec/rencodeplus.h) and big numbers.
enum class Dialect : uint8_t { kRencode, kPlus };

uint64_t LoadBigEndian(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

void StoreBigEndian(uint64_t v, int n, std::string* out) {
  char buf[8];
  for (int i = n - 1; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  out->append(buf, static_cast<size_t>(n));
}

// A short terminated container (never written by python-rencode, but cheap to send) must not
// keep the room reserved for a long one: 2 input bytes would otherwise pin kilobytes.
template <typename Vec>
void ReleaseSlack(Vec& v) {
  if (v.capacity() > 2 * v.size() + 8) v.shrink_to_fit();
}

class Decoder : public codec_internal::DecoderBase<Decoder> {
 public:
  Decoder(std::string_view data, const DecodeLimits& limits, Dialect dialect)
      : DecoderBase(data, limits, dialect == Dialect::kPlus ? "rencodeplus" : "rencode"),
        plus_(dialect == Dialect::kPlus) {}

 private:
  friend class codec_internal::DecoderBase<Decoder>;

  // Decodes the value at p_ (nesting level `level`, top = 0) into *out.
  bool DecodeValue(int level, Value* out) {
    if (!StartValue()) return false;
    const uint8_t tag = *p_++;
    if (tag >= kListFixedStart) return DecodeList(level, tag - kListFixedStart, out);
    if (tag >= kStrFixedStart) return DecodeString(tag - kStrFixedStart, /*text=*/plus_, out);
    if (tag < kIntPosFixedStart + kIntPosFixedCount) {
      Emplace(out, static_cast<int64_t>(tag));
      return true;
    }
    if (tag >= kIntNegFixedStart && tag < kIntNegFixedStart + kIntNegFixedCount) {
      Emplace(out, static_cast<int64_t>(-1 - (tag - kIntNegFixedStart)));
      return true;
    }
    if (tag >= kDictFixedStart && tag < kDictFixedStart + kDictFixedCount) {
      return DecodeDict(level, tag - kDictFixedStart, out);
    }
    switch (tag) {
      case kInt1: return DecodeFixedInt(1, out);
      case kInt2: return DecodeFixedInt(2, out);
      case kInt4: return DecodeFixedInt(4, out);
      case kInt8: return DecodeFixedInt(8, out);
      case kBigInt: return DecodeBigInt(out);
      case kFloat32: {
        if (remaining() < 4) return Truncated("a float32");
        const uint32_t bits = static_cast<uint32_t>(LoadBigEndian(p_, 4));
        float f;
        std::memcpy(&f, &bits, sizeof f);
        p_ += 4;
        Emplace(out, Float{f, true});
        return true;
      }
      case kFloat64: {
        if (remaining() < 8) return Truncated("a float64");
        const uint64_t bits = LoadBigEndian(p_, 8);
        double d;
        std::memcpy(&d, &bits, sizeof d);
        p_ += 8;
        Emplace(out, Float{d, false});
        return true;
      }
      case kTrue: Emplace(out, true); return true;
      case kFalse: Emplace(out, false); return true;
      case kNone: return true;  // *out is already None
      case kList: return DecodeList(level, -1, out);
      case kDict: return DecodeDict(level, -1, out);
      default: break;
    }
    if (tag >= (plus_ ? '0' : '1') && tag <= '9') return DecodeLongString(out);
    --p_;
    return Fail(ErrorCode::kMalformed, "unknown type tag " + HexByte(tag) + " at offset " + Offset(p_));
  }

  bool DecodeFixedInt(int n, Value* out) {
    if (remaining() < static_cast<size_t>(n)) return Truncated("an integer");
    const uint64_t raw = LoadBigEndian(p_, n);
    p_ += n;
    // Sign-extend from n bytes.
    const int shift = 64 - 8 * n;
    Emplace(out, static_cast<int64_t>(raw << shift) >> shift);
    return true;
  }

  // '=' <decimal> 0x7f: integers outside int64 (python-rencode never writes smaller ones).
  bool DecodeBigInt(Value* out) {
    const uint8_t* start = p_;
    const size_t limit = std::min(remaining(), kMaxBigIntChars + 1);
    const uint8_t* term = static_cast<const uint8_t*>(std::memchr(start, kTerm, limit));
    if (term == nullptr) {
      // No terminator yet: invalid already if a non-digit shows up or it is too long.
      const uint8_t* bad = FindNonDecimal(start, start + limit);
      if (bad != start + limit) {
        return Fail(ErrorCode::kMalformed, "bad character in big integer at offset " + Offset(bad));
      }
      if (limit > kMaxBigIntChars) {
        return Fail(ErrorCode::kMalformed, "big integer longer than 63 characters at offset " + Offset(start - 1));
      }
      return Truncated("a big integer");
    }
    if (plus_ && static_cast<size_t>(term - start) < kMinPlusBigIntChars) {
      return Fail(ErrorCode::kMalformed, "big integer shorter than 18 characters at offset " + Offset(start - 1));
    }
    return DecodeDecimal(start - 1, start, term, "big integer", out);
  }

  // n bytes at p_: Bytes, or Text (rencodeplus str: must be UTF-8, as Python decodes it).
  bool DecodeString(size_t n, bool text, Value* out) {
    if (remaining() < n) return Truncated("a string");
    std::string s(reinterpret_cast<const char*>(p_), n);
    if (text) {
      if (!codec_internal::IsValidUtf8(s)) {
        return Fail(ErrorCode::kMalformed, "text string at offset " + Offset(p_) + " is not valid UTF-8");
      }
      Emplace(out, Text{std::move(s)});
    } else {
      Emplace(out, Bytes{std::move(s)});
    }
    p_ += n;
    return true;
  }

  // rencode: <len>':'<bytes> (bytes); rencodeplus: <len>':'<utf-8> (text) or <len>'/'<bytes>.
  // p_ is just past the first length digit ('0' only for rencodeplus, and then alone).
  bool DecodeLongString(Value* out) {
    size_t n = 0;
    uint8_t term = ':';
    if (!ReadStringLength(p_ - 1, p_ - 1, &n, plus_ ? "/:" : ":", &term)) return false;
    return DecodeString(n, /*text=*/plus_ && term == ':', out);
  }

  // count < 0: terminated by kTerm.
  bool DecodeList(int level, int count, Value* out) {
    if (!EnterContainer(level, p_ - 1)) return false;
    List list;
    if (count >= 0) {
      list.resize(static_cast<size_t>(count));
      for (auto& item : list) {
        if (!DecodeValue(level + 1, &item)) return false;
      }
    } else {
      list.reserve(kListFixedCount);  // python-rencode only terminates lists this long
      if (!DecodeUntil(level, kTerm, "a list", &list)) return false;
      ReleaseSlack(list);
    }
    Emplace(out, std::move(list));
    return true;
  }

  bool DecodeDict(int level, int count, Value* out) {
    const uint8_t* dict_at = p_ - 1;
    if (!EnterContainer(level, dict_at)) return false;
    Dict dict;
    if (count >= 0) {
      dict.reserve(static_cast<size_t>(count));
      for (int i = 0; i < count; ++i) {
        if (!DecodeItem(level, &dict)) return false;
      }
    } else {
      dict.reserve(kDictFixedCount);  // python-rencode only terminates dicts this long
      if (!DecodeUntil(level, kTerm, "a dict", &dict)) return false;
      ReleaseSlack(dict);
    }
    if (!FinishDictAt(&dict, /*lists_are_tuples=*/true, dict_at)) return false;
    Emplace(out, std::move(dict));
    return true;
  }

  const bool plus_;  // xpra 6.x rencodeplus: str and bytes are told apart
};

void EncodeInt(int64_t x, std::string* out) {
  if (x >= 0 && x < kIntPosFixedCount) {
    out->push_back(static_cast<char>(kIntPosFixedStart + x));
  } else if (x < 0 && x >= -kIntNegFixedCount) {
    out->push_back(static_cast<char>(kIntNegFixedStart - 1 - x));
  } else if (x >= -128 && x < 128) {
    out->push_back(static_cast<char>(kInt1));
    StoreBigEndian(static_cast<uint64_t>(x), 1, out);
  } else if (x >= -32768 && x < 32768) {
    out->push_back(static_cast<char>(kInt2));
    StoreBigEndian(static_cast<uint64_t>(x), 2, out);
  } else if (x >= std::numeric_limits<int32_t>::min() && x <= std::numeric_limits<int32_t>::max()) {
    out->push_back(static_cast<char>(kInt4));
    StoreBigEndian(static_cast<uint64_t>(x), 4, out);
  } else {
    out->push_back(static_cast<char>(kInt8));
    StoreBigEndian(static_cast<uint64_t>(x), 8, out);
  }
}

// As the Cython module's C cast: out-of-range doubles become infinities.
float ToFloat32(double d) {
  constexpr double kMax = std::numeric_limits<float>::max();
  if (d > kMax || d < -kMax) {
    // Values that round down to FLT_MAX stay finite; others overflow to infinity.
    const double kHalfUlpAbove = kMax + std::ldexp(1.0, 103);
    if (std::isfinite(d) && std::fabs(d) < kHalfUlpAbove) return d > 0 ? std::numeric_limits<float>::max()
                                                                        : -std::numeric_limits<float>::max();
    return d > 0 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
  }
  return static_cast<float>(d);
}

template <Dialect kDialect>
Status EncodeValue(const Value& v, int level, std::string* out) {
  constexpr const char* kName = kDialect == Dialect::kPlus ? "rencodeplus" : "rencode";
  switch (v.kind()) {
    case Value::Kind::kNone: out->push_back(static_cast<char>(kNone)); break;
    case Value::Kind::kBool: out->push_back(static_cast<char>(v.as_bool() ? kTrue : kFalse)); break;
    case Value::Kind::kInt: EncodeInt(v.as_int(), out); break;
    case Value::Kind::kBigInt: {
      const std::string& text = v.as_bigint().decimal;
      bool fits = false;
      int64_t small = 0;
      if (!ParseDecimal(text, &fits, &small)) {
        return MakeError(ErrorCode::kMalformed,
                         std::string(kName) + ": BigInt is not a decimal integer: '" + text.substr(0, 80) + "'");
      }
      if (fits) {
        EncodeInt(small, out);
      } else if (text.size() > kMaxBigIntChars) {
        return MakeError(ErrorCode::kTooLarge, std::string(kName) + ": number is longer than 63 characters");
      } else {
        out->push_back(static_cast<char>(kBigInt));
        out->append(text);
        out->push_back(static_cast<char>(kTerm));
      }
      break;
    }
    case Value::Kind::kFloat: {
      const Float& f = v.as_float();
      if (f.single) {
        const float narrow = ToFloat32(f.value);
        uint32_t bits;
        std::memcpy(&bits, &narrow, sizeof bits);
        out->push_back(static_cast<char>(kFloat32));
        StoreBigEndian(bits, 4, out);
      } else {
        uint64_t bits;
        std::memcpy(&bits, &f.value, sizeof bits);
        out->push_back(static_cast<char>(kFloat64));
        StoreBigEndian(bits, 8, out);
      }
      break;
    }
    case Value::Kind::kBytes:
    case Value::Kind::kText: {
      const std::string& s = v.as_string();
      if (kDialect == Dialect::kPlus && v.is_bytes()) {  // rencodeplus bytes: always <len>'/'
        AppendDecimal(static_cast<int64_t>(s.size()), out);
        out->push_back('/');
      } else if (s.size() < kStrFixedCount) {
        out->push_back(static_cast<char>(kStrFixedStart + s.size()));
      } else {
        AppendDecimal(static_cast<int64_t>(s.size()), out);
        out->push_back(':');
      }
      out->append(s);
      break;
    }
    case Value::Kind::kList: {
      if (Status st = CheckEncodeDepth(level, kName); !st.ok()) return st;
      const List& list = v.as_list();
      const bool fixed = list.size() < kListFixedCount;
      out->push_back(static_cast<char>(fixed ? kListFixedStart + list.size() : kList));
      if (Status st = EncodeItems(list, level, &EncodeValue<kDialect>, out); !st.ok()) return st;
      if (!fixed) out->push_back(static_cast<char>(kTerm));
      break;
    }
    case Value::Kind::kDict: {
      if (Status st = CheckEncodeDepth(level, kName); !st.ok()) return st;
      const Dict& dict = v.as_dict();
      const bool fixed = dict.size() < kDictFixedCount;
      out->push_back(static_cast<char>(fixed ? kDictFixedStart + dict.size() : kDict));
      if (Status st = EncodeItems(dict, level, &EncodeValue<kDialect>, out); !st.ok()) return st;
      if (!fixed) out->push_back(static_cast<char>(kTerm));
      break;
    }
  }
  return Status::Ok();
}

}  // namespace

Expected<Value> Decode(std::string_view data, const DecodeLimits& limits) {
  return Decoder(data, limits, Dialect::kRencode).Run();
}

Status Encode(const Value& v, std::string* out) {
  return codec_internal::EncodeTopLevel(v, &EncodeValue<Dialect::kRencode>, out);
}

}  // namespace xr::rencode

namespace xr::rencodeplus {

Expected<Value> Decode(std::string_view data, const DecodeLimits& limits) {
  return rencode::Decoder(data, limits, rencode::Dialect::kPlus).Run();
}

Status Encode(const Value& v, std::string* out) {
  return codec_internal::EncodeTopLevel(v, &rencode::EncodeValue<rencode::Dialect::kPlus>, out);
}

}  // namespace xr::rencodeplus
