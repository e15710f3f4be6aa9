#include "codec/bencode.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "codec/decode_util.h"

namespace xr::bencode {
namespace {

using codec_internal::AppendDecimal;
using codec_internal::CheckEncodeDepth;
using codec_internal::Emplace;
using codec_internal::EncodeItems;
using codec_internal::FindNonDecimal;
using codec_internal::HexByte;
using codec_internal::ParseDecimal;

// CPython refuses to convert integers of more than 4300 digits (sys.int_max_str_digits).
constexpr size_t kMaxIntDigits = 4300;

// Strict UTF-8 as Python's bytes.decode("utf8"): no overlongs, surrogates or > U+10FFFF.
bool IsValidUtf8(const uint8_t* p, size_t n) {
  const uint8_t* end = p + n;
  while (p < end) {
    const uint8_t c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (static_cast<size_t>(end - p) < len) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (size_t i = 2; i < len; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
    }
    p += len;
  }
  return true;
}

class Decoder : public codec_internal::DecoderBase<Decoder> {
 public:
  Decoder(std::string_view data, const DecodeLimits& limits) : DecoderBase(data, limits, "bencode") {}

 private:
  friend class codec_internal::DecoderBase<Decoder>;

  // Decodes the value at p_ (nesting level `level`, top = 0) into *out.
  bool DecodeValue(int level, Value* out) {
    if (!StartValue()) return false;
    const uint8_t tag = *p_;
    if (tag >= '0' && tag <= '9') return DecodeString(false, out);
    switch (tag) {
      case 'i': return DecodeInt(out);
      case 'u': return DecodeString(true, out);
      case 'l': return DecodeList(level, out);
      case 'd': return DecodeDict(level, out);
      default: break;
    }
    return Fail(ErrorCode::kMalformed, "unknown type tag " + HexByte(tag) + " at offset " + Offset(p_));
  }

  // i<decimal>e
  bool DecodeInt(Value* out) {
    const uint8_t* start = p_ + 1;
    const size_t limit = std::min(remaining() - 1, kMaxIntDigits + 2);  // sign + digits + 'e'
    const uint8_t* term = static_cast<const uint8_t*>(std::memchr(start, 'e', limit));
    const uint8_t* scan_end = term != nullptr ? term : start + limit;
    const uint8_t* bad = FindNonDecimal(start, scan_end);
    if (bad != scan_end) {
      return Fail(ErrorCode::kMalformed, "bad character in integer at offset " + Offset(bad));
    }
    const size_t digits = static_cast<size_t>(scan_end - start) - (scan_end > start && *start == '-' ? 1 : 0);
    if (digits > kMaxIntDigits) {
      return Fail(ErrorCode::kMalformed, "integer of more than 4300 digits at offset " + Offset(p_));
    }
    if (term == nullptr) return Truncated("an integer");
    return DecodeDecimal(p_, start, term, "integer", out);
  }

  // [u]<len>:<bytes>
  bool DecodeString(bool text, Value* out) {
    const uint8_t* tag_at = p_;
    size_t len = 0;
    if (!ReadStringLength(tag_at, tag_at + (text ? 1 : 0), &len)) return false;
    if (text) {
      if (!IsValidUtf8(p_, len)) {
        p_ = tag_at;
        return Fail(ErrorCode::kMalformed, "invalid utf-8 in text string at offset " + Offset(tag_at));
      }
      Emplace(out, Text{std::string(reinterpret_cast<const char*>(p_), len)});
    } else {
      Emplace(out, Bytes{std::string(reinterpret_cast<const char*>(p_), len)});
    }
    p_ += len;
    return true;
  }

  bool DecodeList(int level, Value* out) {
    if (!EnterContainer(level, p_)) return false;
    List list;
    if (!DecodeUntil(level, 'e', "a list", &list)) return false;
    Emplace(out, std::move(list));
    return true;
  }

  bool DecodeDict(int level, Value* out) {
    const uint8_t* dict_at = p_;
    if (!EnterContainer(level, dict_at)) return false;
    Dict dict;
    if (!DecodeUntil(level, 'e', "a dict", &dict)) return false;
    if (!FinishDictAt(&dict, /*lists_are_tuples=*/false, dict_at)) return false;
    Emplace(out, std::move(dict));
    return true;
  }
};

Status EncodeValue(const Value& v, int level, std::string* out) {
  switch (v.kind()) {
    case Value::Kind::kNone:
      return MakeError(ErrorCode::kUnsupported, "bencode: cannot encode None");
    case Value::Kind::kFloat:
      return MakeError(ErrorCode::kUnsupported, "bencode: cannot encode a float");
    case Value::Kind::kBool:
      out->append(v.as_bool() ? "i1e" : "i0e");
      break;
    case Value::Kind::kInt:
      out->push_back('i');
      AppendDecimal(v.as_int(), out);
      out->push_back('e');
      break;
    case Value::Kind::kBigInt: {
      const std::string& text = v.as_bigint().decimal;
      bool fits = false;
      int64_t small = 0;
      const size_t digits = text.size() - (!text.empty() && text[0] == '-' ? 1 : 0);
      if (!ParseDecimal(text, &fits, &small) || digits > kMaxIntDigits) {
        return MakeError(ErrorCode::kMalformed, "bencode: BigInt is not a decimal integer of at most 4300 digits: '" +
                                                    text.substr(0, 80) + "'");
      }
      out->push_back('i');
      out->append(text);
      out->push_back('e');
      break;
    }
    case Value::Kind::kBytes:
    case Value::Kind::kText: {
      const std::string& s = v.as_string();
      AppendDecimal(static_cast<int64_t>(s.size()), out);
      out->push_back(':');
      out->append(s);
      break;
    }
    case Value::Kind::kList:
    case Value::Kind::kDict: {
      if (Status st = CheckEncodeDepth(level, "bencode"); !st.ok()) return st;
      out->push_back(v.is_list() ? 'l' : 'd');
      Status st = v.is_list() ? EncodeItems(v.as_list(), level, &EncodeValue, out)
                              : EncodeItems(v.as_dict(), level, &EncodeValue, out);
      if (!st.ok()) return st;
      out->push_back('e');
      break;
    }
  }
  return Status::Ok();
}

}  // namespace

Expected<Value> Decode(std::string_view data, const DecodeLimits& limits) {
  return Decoder(data, limits).Run();
}

Status Encode(const Value& v, std::string* out) { return codec_internal::EncodeTopLevel(v, &EncodeValue, out); }

}  // namespace xr::bencode
