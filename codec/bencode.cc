#include "codec/bencode.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "codec/decode_util.h"

namespace xr::bencode {
namespace {

using codec_internal::AppendDecimal;
using codec_internal::FinishDict;
using codec_internal::Emplace;
using codec_internal::HexByte;
using codec_internal::ParseDecimal;

// CPython refuses to convert integers of more than 4300 digits (sys.int_max_str_digits).
constexpr size_t kMaxIntDigits = 4300;
// Digits of a string length that still fit comfortably in uint64.
constexpr size_t kMaxLengthDigits = 19;

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

class Decoder {
 public:
  Decoder(std::string_view data, const DecodeLimits& limits)
      : begin_(reinterpret_cast<const uint8_t*>(data.data())),
        p_(begin_),
        end_(begin_ + data.size()),
        limits_(limits),
        elements_left_(limits.max_elements),
        max_depth_(std::min(limits.max_depth, kMaxDecodeDepthCeiling)) {}

  Expected<Value> Run() {
    Value v;
    if (!DecodeValue(0, &v)) return std::move(error_);
    if (p_ != end_) {
      return MakeError(ErrorCode::kMalformed, "bencode: " + std::to_string(end_ - p_) +
                                                  " trailing bytes after the value at offset " +
                                                  std::to_string(p_ - begin_));
    }
    return v;
  }

 private:
  bool Fail(ErrorCode code, std::string message) {
    error_ = MakeError(code, "bencode: " + std::move(message));
    return false;
  }
  bool Truncated(const char* what) {
    return Fail(ErrorCode::kTruncated, std::string("input ends inside ") + what + " at offset " +
                                           std::to_string(p_ - begin_));
  }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }

  // Decodes the value at p_ (nesting level `level`, top = 0) into *out.
  bool DecodeValue(int level, Value* out) {
    if (p_ == end_) return Truncated("a value");
    if (elements_left_-- == 0) {
      return Fail(ErrorCode::kTooLarge, "more than " + std::to_string(limits_.max_elements) + " elements");
    }
    const uint8_t tag = *p_;
    if (tag >= '0' && tag <= '9') return DecodeString(false, out);
    switch (tag) {
      case 'i': return DecodeInt(out);
      case 'u': return DecodeString(true, out);
      case 'l': return DecodeList(level, out);
      case 'd': return DecodeDict(level, out);
      default: break;
    }
    return Fail(ErrorCode::kMalformed,
                "unknown type tag " + HexByte(tag) + " at offset " + std::to_string(p_ - begin_));
  }

  // i<decimal>e
  bool DecodeInt(Value* out) {
    const uint8_t* start = p_ + 1;
    const size_t limit = std::min(remaining() - 1, kMaxIntDigits + 2);  // sign + digits + 'e'
    const uint8_t* term = static_cast<const uint8_t*>(std::memchr(start, 'e', limit));
    const uint8_t* scan_end = term != nullptr ? term : start + limit;
    for (const uint8_t* q = start; q < scan_end; ++q) {
      if (!((*q >= '0' && *q <= '9') || (*q == '-' && q == start))) {
        return Fail(ErrorCode::kMalformed, "bad character in integer at offset " + std::to_string(q - begin_));
      }
    }
    const size_t digits = static_cast<size_t>(scan_end - start) - (scan_end > start && *start == '-' ? 1 : 0);
    if (digits > kMaxIntDigits) {
      return Fail(ErrorCode::kMalformed, "integer of more than 4300 digits at offset " +
                                             std::to_string(p_ - begin_));
    }
    if (term == nullptr) return Truncated("an integer");
    std::string_view text(reinterpret_cast<const char*>(start), static_cast<size_t>(term - start));
    bool fits = false;
    int64_t v = 0;
    if (!ParseDecimal(text, &fits, &v)) {
      return Fail(ErrorCode::kMalformed, "invalid integer at offset " + std::to_string(p_ - begin_));
    }
    p_ = term + 1;
    *out = fits ? Value(v) : Value(BigInt{std::string(text)});
    return true;
  }

  // [u]<len>:<bytes>
  bool DecodeString(bool text, Value* out) {
    const uint8_t* start = p_ + (text ? 1 : 0);
    uint64_t n = 0;
    const uint8_t* q = start;
    for (;; ++q) {
      if (q == end_) {
        p_ = q;
        return Truncated("a string length");
      }
      if (*q == ':' && q != start) break;
      if (*q < '0' || *q > '9') {
        return Fail(ErrorCode::kMalformed, "bad character in string length at offset " +
                                               std::to_string(q - begin_));
      }
      if (q != start && *start == '0') {
        return Fail(ErrorCode::kMalformed, "leading zero in string length at offset " +
                                               std::to_string(start - begin_));
      }
      if (static_cast<size_t>(q - start) >= kMaxLengthDigits) {
        return Fail(ErrorCode::kMalformed, "string length overflows at offset " + std::to_string(start - begin_));
      }
      n = n * 10 + static_cast<uint64_t>(*q - '0');
    }
    if (n > limits_.max_string_size) {
      return Fail(ErrorCode::kTooLarge, "string of " + std::to_string(n) + " bytes at offset " +
                                            std::to_string(p_ - begin_) + " is over the limit of " +
                                            std::to_string(limits_.max_string_size));
    }
    const uint8_t* tag_at = p_;
    p_ = q + 1;
    if (remaining() < n) return Truncated("a string");
    const size_t len = static_cast<size_t>(n);
    if (text) {
      if (!IsValidUtf8(p_, len)) {
        p_ = tag_at;
        return Fail(ErrorCode::kMalformed, "invalid utf-8 in text string at offset " +
                                               std::to_string(tag_at - begin_));
      }
      Emplace(out, Text{std::string(reinterpret_cast<const char*>(p_), len)});
    } else {
      Emplace(out, Bytes{std::string(reinterpret_cast<const char*>(p_), len)});
    }
    p_ += len;
    return true;
  }

  bool EnterContainer(int level) {
    if (level + 1 > max_depth_) {
      return Fail(ErrorCode::kTooDeep, "nesting deeper than " + std::to_string(max_depth_) + " at offset " +
                                           std::to_string(p_ - begin_));
    }
    ++p_;
    return true;
  }

  bool DecodeList(int level, Value* out) {
    if (!EnterContainer(level)) return false;
    List list;
    while (true) {
      if (p_ == end_) return Truncated("a list");
      if (*p_ == 'e') {
        ++p_;
        break;
      }
      list.emplace_back();
      if (!DecodeValue(level + 1, &list.back())) return false;
    }
    Emplace(out, std::move(list));
    return true;
  }

  bool DecodeDict(int level, Value* out) {
    const uint8_t* dict_at = p_;
    if (!EnterContainer(level)) return false;
    Dict dict;
    while (true) {
      if (p_ == end_) return Truncated("a dict");
      if (*p_ == 'e') {
        ++p_;
        break;
      }
      auto& entry = dict.emplace_back();
      if (!DecodeValue(level + 1, &entry.first) || !DecodeValue(level + 1, &entry.second)) return false;
    }
    Status st = FinishDict(&dict, /*lists_are_tuples=*/false, "bencode");
    if (!st.ok()) {
      error_ = Error{st.error().code, st.error().message + " in the dict at offset " + std::to_string(dict_at - begin_)};
      return false;
    }
    Emplace(out, std::move(dict));
    return true;
  }

  const uint8_t* begin_;
  const uint8_t* p_;
  const uint8_t* end_;
  const DecodeLimits limits_;
  size_t elements_left_;  // values still allowed by max_elements
  const int max_depth_;
  Error error_;
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
      if (level >= kMaxDecodeDepthCeiling) {
        return MakeError(ErrorCode::kTooDeep, "bencode: cannot encode nesting deeper than " +
                                                  std::to_string(kMaxDecodeDepthCeiling));
      }
      if (v.is_list()) {
        out->push_back('l');
        for (const auto& item : v.as_list()) {
          Status st = EncodeValue(item, level + 1, out);
          if (!st.ok()) return st;
        }
      } else {
        out->push_back('d');
        for (const auto& [key, item] : v.as_dict()) {
          Status st = EncodeValue(key, level + 1, out);
          if (st.ok()) st = EncodeValue(item, level + 1, out);
          if (!st.ok()) return st;
        }
      }
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

Status Encode(const Value& v, std::string* out) {
  const size_t before = out->size();
  Status st = EncodeValue(v, 0, out);
  if (!st.ok()) out->resize(before);
  return st;
}

}  // namespace xr::bencode
