#include "codec/bencode.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "tests/codec/codec_test_util.h"

using namespace std::literals;
using xr::BigInt;
using xr::DecodeLimits;
using xr::Dict;
using xr::ErrorCode;
using xr::Float;
using xr::List;
using xr::Value;
using namespace xr::codec_test;  // builders (vectors.inc), golden files, shared checks

namespace {

constexpr CodecUnderTest kBencode = {"bencode", "tests/codec/testdata/bencode/", &xr::bencode::Decode,
                                     &xr::bencode::Encode, /*bools_as_ints=*/true};

const std::vector<GoldenVector>& Vectors() {
  static const std::vector<GoldenVector> vectors = {
#include "tests/codec/testdata/bencode/vectors.inc"
  };
  return vectors;
}

std::string Golden(const std::string& name) { return GoldenFile(kBencode, name); }

std::string Enc(const Value& v) { return EncodeOk(kBencode, v); }

// Decodes `data`, which must fail with `code`; returns the message.
std::string DecodeError(std::string_view data, ErrorCode code, const DecodeLimits& limits = {}) {
  return DecodeErrorOf(kBencode, data, code, limits);
}

}  // namespace

TEST_CASE("every golden file has a vector and every vector a golden file") {
  CheckGoldenFilesMatchVectors(kBencode, Vectors(), 50);
}

TEST_CASE("golden: C++ values encode to xpra's bencode bytes, and decode back") {
  CheckGoldenRoundTrips(kBencode, Vectors());
}

TEST_CASE("hello vector: keys stay in wire order, unsorted") {
  auto v = xr::bencode::Decode(Golden("hello"));
  REQUIRE(v.ok());
  const Value& caps = v->as_list()[1];
  REQUIRE(caps.as_dict().size() > 100);
  CHECK(caps.as_dict()[0].first == B("digest"sv));
  CHECK(caps.as_dict()[1].first == B("salt-digest"sv));
  xr::Caps c(caps);
  CHECK(c.get_string("version") == "3.1.3");
  CHECK(c.get_bool("rencode"));
  CHECK(caps.find("rencode")->is_int());  // bools travel as integers
  CHECK(c.get_string("cipher.key_salt").size() == 32);
}

TEST_CASE("draw vector carries 64 KiB of pixels") {
  auto v = xr::bencode::Decode(Golden("draw"));
  REQUIRE(v.ok());
  CHECK(v->as_list()[7].as_string() == Pattern(65536));
}

TEST_CASE("u-strings decode as text and are written back as plain strings, as xpra 3.1 does") {
  auto v = xr::bencode::Decode("u5:hello"sv);
  REQUIRE(v.ok());
  CHECK(*v == T("hello"sv));
  CHECK(Enc(*v) == "5:hello");
  v = xr::bencode::Decode("u0:"sv);
  REQUIRE(v.ok());
  CHECK(*v == T(""sv));
}

TEST_CASE("booleans are written as integers") {
  CHECK(Enc(Value(true)) == "i1e");
  CHECK(Enc(Value(false)) == "i0e");
  CHECK(Enc(L({Value(true), D({{T("a"sv), Value(false)}})})) == "li1ed1:ai0eee");
}

TEST_CASE("encode refuses None and floats, leaving the output untouched") {
  std::string out = "x";
  auto st = xr::bencode::Encode(L({I(1), Value()}), &out);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kUnsupported);
  CHECK(st.error().message == "bencode: cannot encode None");
  st = xr::bencode::Encode(D({{T("f"sv), Value(1.5)}}), &out);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kUnsupported);
  CHECK(out == "x");
}

TEST_CASE("encode refuses an invalid BigInt") {
  std::string out;
  CHECK_FALSE(xr::bencode::Encode(Value(BigInt{"1.5"}), &out).ok());
  CHECK_FALSE(xr::bencode::Encode(Value(BigInt{""}), &out).ok());
  CHECK_FALSE(xr::bencode::Encode(Value(BigInt{std::string(4301, '9')}), &out).ok());
  CHECK(out.empty());
  REQUIRE(xr::bencode::Encode(Value(BigInt{std::string(4300, '9')}), &out).ok());
  CHECK(out.size() == 4302);
}

TEST_CASE("encode refuses nesting deeper than the ceiling") {
  Value v = List{};
  for (int i = 0; i < xr::kMaxDecodeDepthCeiling + 10; ++i) v = Value(List{std::move(v)});
  std::string out;
  auto st = xr::bencode::Encode(v, &out);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kTooDeep);
}

TEST_CASE("integers up to python's 4300 digits") {
  auto v = xr::bencode::Decode("i" + std::string(4300, '7') + "e");
  REQUIRE(v.ok());
  CHECK(v->as_bigint().decimal.size() == 4300);
  v = xr::bencode::Decode("i-" + std::string(4300, '7') + "e");
  REQUIRE(v.ok());
  DecodeError("i" + std::string(4301, '7') + "e", ErrorCode::kMalformed);
  DecodeError("i" + std::string(5000, '7'), ErrorCode::kMalformed);  // before the end is seen
  v = xr::bencode::Decode("i-9223372036854775808e"sv);
  REQUIRE(v.ok());
  CHECK(*v == I(std::numeric_limits<int64_t>::min()));
}

TEST_CASE("repeated dict keys: first position, last value") {
  auto v = xr::bencode::Decode("d1:ai1e1:bi2e1:ai3ee"sv);
  REQUIRE(v.ok());
  CHECK(*v == D({{B("a"sv), I(3)}, {B("b"sv), I(2)}}));
  v = xr::bencode::Decode("di1e1:ai1e1:be"sv);
  REQUIRE(v.ok());
  CHECK(*v == D({{I(1), B("b"sv)}}));
}

TEST_CASE("malformed: a bytes key and a text key of the same spelling") {
  // Python keeps both (b'user' != 'user') but Value::find cannot tell them apart.
  std::string msg = DecodeError("d4:useri1eu4:useri2ee"sv, ErrorCode::kMalformed);
  CHECK(msg.find("both a bytes and a text key") != std::string::npos);
}

TEST_CASE("malformed: unhashable dict keys") {
  DecodeError("dli1eei2ee"sv, ErrorCode::kMalformed);
  DecodeError("ddei2ee"sv, ErrorCode::kMalformed);
}

TEST_CASE("malformed: truncated at every offset of the hello vector") {
  CheckTruncatedAtEveryOffset(kBencode, Golden("hello"));
}

TEST_CASE("malformed: truncated at every offset of the draw vector") {
  CheckTruncatedAtEveryOffset(kBencode, Golden("draw"));
}

TEST_CASE("malformed: unknown type tags") {
  for (std::string_view bad : {"x"sv, "e"sv, "-1:a"sv, " 1:a"sv, "n"sv, "f1.5e"sv}) {
    std::string msg = DecodeError(bad, ErrorCode::kMalformed);
    CHECK(msg.find("unknown type tag 0x") != std::string::npos);
  }
  CHECK(DecodeError("li1exe"sv, ErrorCode::kMalformed) == "bencode: unknown type tag 0x78 at offset 4");
  DecodeError("d1:ae"sv, ErrorCode::kMalformed);  // 'e' where the value belongs
}

TEST_CASE("malformed: string length past the end is truncated input") {
  DecodeError("5:abc"sv, ErrorCode::kTruncated);
  DecodeError("1:"sv, ErrorCode::kTruncated);  // the Cython decoder reads past the end here
  DecodeError("u5:abc"sv, ErrorCode::kTruncated);
  DecodeError("12"sv, ErrorCode::kTruncated);
  DecodeError("i12"sv, ErrorCode::kTruncated);
  DecodeError("l"sv, ErrorCode::kTruncated);
  DecodeError("li1e"sv, ErrorCode::kTruncated);
  DecodeError("d1:a"sv, ErrorCode::kTruncated);
}

TEST_CASE("malformed: depth bomb of 100000 nested list openers") {
  std::string msg = DecodeError(std::string(100000, 'l'), ErrorCode::kTooDeep);
  CHECK(msg.find("bencode: nesting deeper than 64") == 0);
  std::string dicts;
  for (int i = 0; i < 100000; ++i) dicts += "d1:a";
  DecodeError(dicts, ErrorCode::kTooDeep);
}

TEST_CASE("depth limit is exact and configurable") {
  auto nested = [](int depth) {
    return std::string(static_cast<size_t>(depth), 'l') + std::string(static_cast<size_t>(depth), 'e');
  };
  CHECK(xr::bencode::Decode(nested(64)).ok());
  DecodeError(nested(65), ErrorCode::kTooDeep);
  DecodeLimits one;
  one.max_depth = 1;
  CHECK(xr::bencode::Decode("li1ee"sv, one).ok());
  DecodeError("llee"sv, ErrorCode::kTooDeep, one);
}

TEST_CASE("malformed: string length that overflows an integer") {
  DecodeError("99999999999999999999999:a"sv, ErrorCode::kMalformed);
  DecodeError("u99999999999999999999999:a"sv, ErrorCode::kMalformed);
  DecodeError("99999999999999999999999"sv, ErrorCode::kMalformed);
}

TEST_CASE("malformed: huge declared string length is over the limit") {
  std::string msg = DecodeError("9999999999999999999:abc"sv, ErrorCode::kTooLarge);
  CHECK(msg.find("over the limit") != std::string::npos);
  DecodeLimits small;
  small.max_string_size = 10;
  DecodeError("u11:"sv, ErrorCode::kTooLarge, small);
}

TEST_CASE("malformed: trailing garbage after a complete value") {
  std::string msg = DecodeError("i5ex"sv, ErrorCode::kMalformed);
  CHECK(msg.find("trailing") != std::string::npos);
  DecodeError(Golden("hello") + "e", ErrorCode::kMalformed);
}

TEST_CASE("malformed: integers python's bencode refuses, and ones it only accepts by accident") {
  DecodeError("ie"sv, ErrorCode::kMalformed);
  DecodeError("i-e"sv, ErrorCode::kMalformed);
  DecodeError("i-0e"sv, ErrorCode::kMalformed);
  DecodeError("i05e"sv, ErrorCode::kMalformed);
  DecodeError("i1.5e"sv, ErrorCode::kMalformed);
  // Python's int() also takes these; no encoder writes them, so they are refused here.
  DecodeError("i+5e"sv, ErrorCode::kMalformed);
  DecodeError("i 5e"sv, ErrorCode::kMalformed);
  DecodeError("i1_0e"sv, ErrorCode::kMalformed);
}

TEST_CASE("malformed: string lengths with leading zeros") {
  DecodeError("00:"sv, ErrorCode::kMalformed);
  DecodeError("01:a"sv, ErrorCode::kMalformed);
  DecodeError("u01:a"sv, ErrorCode::kMalformed);
  DecodeError("u:"sv, ErrorCode::kMalformed);
  CHECK(xr::bencode::Decode("0:"sv).ok());
}

TEST_CASE("malformed: u-strings that are not valid utf-8") {
  DecodeError("u1:\xff"sv, ErrorCode::kMalformed);
  DecodeError("u2:\xc0\xaf"sv, ErrorCode::kMalformed);          // overlong '/'
  DecodeError("u3:\xed\xa0\x80"sv, ErrorCode::kMalformed);      // surrogate U+D800
  DecodeError("u4:\xf4\x90\x80\x80"sv, ErrorCode::kMalformed);  // above U+10FFFF
  DecodeError("u2:\xe2\x82"sv, ErrorCode::kMalformed);          // cut sequence
  auto v = xr::bencode::Decode("u4:\xf0\x9f\x98\x80"sv);
  REQUIRE(v.ok());
  CHECK(v->as_string() == "\xf0\x9f\x98\x80");
}

TEST_CASE("limits: element count") {
  DecodeLimits limits;
  limits.max_elements = 4;
  CHECK(xr::bencode::Decode("li1ei2ei3ee"sv, limits).ok());
  std::string msg = DecodeError("li1ei2ei3ei4ee"sv, ErrorCode::kTooLarge, limits);
  CHECK(msg.find("more than 4 elements") != std::string::npos);
}
