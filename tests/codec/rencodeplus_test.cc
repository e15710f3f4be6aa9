#include "codec/rencodeplus.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "codec/rencode.h"
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

constexpr CodecUnderTest kPlus = {"rencodeplus", "tests/codec/testdata/rencodeplus/", &xr::rencodeplus::Decode,
                                  &xr::rencodeplus::Encode, /*bools_as_ints=*/false, /*keeps_text=*/true,
                                  /*python_writes_float64=*/true};

const std::vector<GoldenVector>& Vectors() {
  static const std::vector<GoldenVector> vectors = {
#include "tests/codec/testdata/rencodeplus/vectors.inc"
  };
  return vectors;
}

std::string Golden(const std::string& name) { return GoldenFile(kPlus, name); }

std::string Enc(const Value& v) { return EncodeOk(kPlus, v); }

Value Dec(std::string_view data) {
  auto v = xr::rencodeplus::Decode(data);
  REQUIRE_MESSAGE(v.ok(), v.error().message);
  return *v;
}

// Decodes `data`, which must fail with `code`; returns the message.
std::string DecodeError(std::string_view data, ErrorCode code, const DecodeLimits& limits = {}) {
  return DecodeErrorOf(kPlus, data, code, limits);
}

// Every prefix of `bytes` fed to the decoder, one byte more each time (the byte-by-byte feed of
// the other codec tests): all but the whole fail kTruncated, the whole decodes to `whole`.
void CheckByteByByte(const std::string& bytes, const Value& whole) {
  CheckTruncatedAtEveryOffset(kPlus, bytes);
  CHECK(Dec(bytes) == whole);
}

}  // namespace

TEST_CASE("every golden file has a vector and every vector a golden file") {
  CheckGoldenFilesMatchVectors(kPlus, Vectors(), 60);
}

TEST_CASE("golden: C++ values encode to xpra 6.5.3 rencodeplus's bytes, and decode back") {
  CheckGoldenRoundTrips(kPlus, Vectors());
}

TEST_CASE("golden vectors whole and byte by byte") {
  for (const auto& g : Vectors()) {
    INFO("vector " << g.name);
    const std::string bytes = Golden(g.name);
    if (bytes.size() > 20000) continue;  // hello and draw: their own cases below
    CheckByteByByte(bytes, g.canonical ? ToWire(kPlus, g.value) : g.value);
  }
}

TEST_CASE("str and bytes are different values on the wire: str is Text, bytes are '<len>/'") {
  CHECK(Enc(T("abc"sv)) == "\x83" "abc"s);
  CHECK(Enc(B("abc"sv)) == "3/abc"s);
  CHECK(Enc(B(""sv)) == "0/"s);
  CHECK(Enc(T(""sv)) == "\x80"s);
  CHECK(Enc(T(std::string(64, 'a'))).substr(0, 3) == "64:");
  CHECK(Dec("3/abc"sv) == B("abc"sv));
  CHECK(Dec("\x83" "abc"sv) == T("abc"sv));
  CHECK(Dec("3:abc"sv) == T("abc"sv));
  CHECK(Dec("0/"sv) == B(""sv));
  CHECK(Dec("0:"sv) == T(""sv));
  CHECK(Golden("str_and_bytes") == "\xc4\x83" "abc3/abc\x80" "0/"s);
  // rencode (3.1) reads neither '0' nor '/': the formats are not interchangeable.
  CHECK_FALSE(xr::rencode::Decode("3/abc"sv).ok());
  CHECK_FALSE(xr::rencode::Decode("0/"sv).ok());
}

TEST_CASE("floats: Value(double) is float64 as 6.x writes; a decoded float32 keeps its width") {
  CHECK(Enc(Value(0.1)) == Golden("float64_0_1"));
  CHECK(Enc(Value(0.1)) == ",?\xb9\x99\x99\x99\x99\x99\x9a"s);
  const Value f = Dec("B?\xc0\x00\x00"sv);
  REQUIRE(f.is_float());
  CHECK(f.as_float().single);
  CHECK(f.as_float().value == 1.5);
  CHECK(Enc(f) == "B?\xc0\x00\x00"s);
}

TEST_CASE("hello vector: a 6.x hello nests capabilities in dicts; dotted lookups reach them") {
  const std::string bytes = Golden("hello");
  const Value v = Dec(bytes);
  REQUIRE(v.is_list());
  CHECK(v.as_list()[0] == T("hello"sv));
  xr::Caps c(v.as_list()[1]);
  CHECK(c.get_string("version") == "6.5.3");
  CHECK(c.get_string("encryption.cipher") == "AES");
  CHECK(c.get_int("encryption.key_stretch_iterations") == 10000);
  CHECK(c.get_string("encryption.key_salt").size() == 32);
  CHECK(c.get("encryption.key_salt")->is_bytes());
  CHECK(c.get_strings("encryption.padding.options") == std::vector<std::string>{"PKCS#7"});
  CHECK(c.get_strings("encoders") == std::vector<std::string>{"rencodeplus", "yaml", "none"});
  CHECK(c.get("screen-id")->is_bigint());
  CHECK(Enc(v) == bytes);
}

TEST_CASE("malformed: truncated at every offset of the hello vectors") {
  CheckTruncatedAtEveryOffset(kPlus, Golden("hello"));
  CheckTruncatedAtEveryOffset(kPlus, Golden("hello_31_shape"));
}

TEST_CASE("malformed: truncated at every offset of the draw vector") {
  CheckTruncatedAtEveryOffset(kPlus, Golden("draw"));
}

TEST_CASE("malformed: unknown type tags") {
  for (char tag : {'\x2d', '\x2e', '\x2f', '\x3a', '\x7f'}) {
    std::string msg = DecodeError(std::string(1, tag), ErrorCode::kMalformed);
    CHECK(msg.find("unknown type tag 0x") != std::string::npos);
  }
  CHECK(DecodeError("\xc2\x01\x2d"sv, ErrorCode::kMalformed) == "rencodeplus: unknown type tag 0x2d at offset 2");
}

TEST_CASE("malformed: a terminator where a dict value belongs") {
  DecodeError("\x3c\x01\x7f"sv, ErrorCode::kMalformed);
}

TEST_CASE("malformed: str that is not UTF-8 (6.x decodes str strictly)") {
  CHECK(DecodeError("\x81\xff"sv, ErrorCode::kMalformed).find("not valid UTF-8") != std::string::npos);
  DecodeError("\x82\xc3\x28"sv, ErrorCode::kMalformed);            // bad continuation
  DecodeError("\x81\xc3"sv, ErrorCode::kMalformed);                // cut sequence
  DecodeError("\x82\xc0\xaf"sv, ErrorCode::kMalformed);            // overlong '/'
  DecodeError("\x83\xe0\x80\xaf"sv, ErrorCode::kMalformed);        // overlong, 3 bytes
  DecodeError("\x83\xed\xa0\x80"sv, ErrorCode::kMalformed);        // surrogate U+D800
  DecodeError("\x84\xf4\x90\x80\x80"sv, ErrorCode::kMalformed);    // above U+10FFFF
  DecodeError("\x81\x80"sv, ErrorCode::kMalformed);                // lone continuation
  DecodeError("2:\xc3\x28"sv, ErrorCode::kMalformed);              // long form too
  // The same bytes as bytes are fine, and valid UTF-8 of every length is accepted.
  CHECK(Dec("1/\xff"sv) == B("\xff"sv));
  CHECK(Dec("\x84\xf0\x9f\x98\x80"sv) == T("\xf0\x9f\x98\x80"sv));
  CHECK(Dec("\x83\xef\xbf\xbf"sv) == T("\xef\xbf\xbf"sv));
}

TEST_CASE("malformed: string lengths") {
  DecodeError("05/abcde"sv, ErrorCode::kMalformed);   // leading zero
  DecodeError("00/"sv, ErrorCode::kMalformed);
  DecodeError("1x/a"sv, ErrorCode::kMalformed);
  DecodeError("1 /a"sv, ErrorCode::kMalformed);
  DecodeError("99999999999999999999999/a"sv, ErrorCode::kMalformed);
}

TEST_CASE("malformed: string length past the end is truncated input") {
  DecodeError("\x85" "abc"sv, ErrorCode::kTruncated);
  DecodeError("70/abc"sv, ErrorCode::kTruncated);
  DecodeError("70:abc"sv, ErrorCode::kTruncated);
  DecodeError("70"sv, ErrorCode::kTruncated);
  DecodeError("0"sv, ErrorCode::kTruncated);
}

TEST_CASE("malformed: truncated numbers and containers") {
  DecodeError("\x3e"sv, ErrorCode::kTruncated);
  DecodeError("\x41\x00\x00"sv, ErrorCode::kTruncated);
  DecodeError("\x42\x00"sv, ErrorCode::kTruncated);
  DecodeError("\x2c\x00"sv, ErrorCode::kTruncated);
  DecodeError("\x3b\x01"sv, ErrorCode::kTruncated);
  DecodeError("\x3c\x01\x02"sv, ErrorCode::kTruncated);
  DecodeError("\x67\x01"sv, ErrorCode::kTruncated);
  DecodeError("=1234567890123456789"sv, ErrorCode::kTruncated);
}

TEST_CASE("malformed: huge declared string length is over the limit, not truncation") {
  CHECK(DecodeError("9999999999999999999/abc"sv, ErrorCode::kTooLarge).find("over the limit") != std::string::npos);
  DecodeLimits small;
  small.max_string_size = 100;
  DecodeError("101/"sv, ErrorCode::kTooLarge, small);
  DecodeError("101:"sv, ErrorCode::kTooLarge, small);
  DecodeError("100/"sv, ErrorCode::kTruncated, small);
}

TEST_CASE("malformed: big numbers shorter than 18 characters (6.x cannot read them)") {
  CHECK(DecodeError("=12345\x7f"sv, ErrorCode::kMalformed).find("shorter than 18") != std::string::npos);
  DecodeError("=10000000000000000\x7f"sv, ErrorCode::kMalformed);  // 17 characters
  CHECK(Dec("=100000000000000000\x7f"sv) == I(100000000000000000));  // 18
}

TEST_CASE("malformed: big numbers of 64 characters or more, or not decimal") {
  DecodeError("=1" + std::string(63, '0') + "\x7f", ErrorCode::kMalformed);
  DecodeError("=1" + std::string(70, '0'), ErrorCode::kMalformed);
  DecodeError("=+00000000000000000001\x7f"sv, ErrorCode::kMalformed);
  DecodeError("=000000000000000000001\x7f"sv, ErrorCode::kMalformed);
  DecodeError("=1_000000000000000000\x7f"sv, ErrorCode::kMalformed);
}

TEST_CASE("malformed: trailing garbage after a complete value") {
  CHECK(DecodeError("\x00\x00"sv, ErrorCode::kMalformed).find("trailing") != std::string::npos);
  DecodeError(Golden("hello") + "x", ErrorCode::kMalformed);
}

TEST_CASE("malformed: unhashable dict keys") {
  DecodeError("\x67\x66\x00"sv, ErrorCode::kMalformed);      // {{}: 0}
  DecodeError("\x67\xc1\x66\x00"sv, ErrorCode::kMalformed);  // {({},): 0}
  CHECK(Dec("\x67\xc2\x01\x02\x00"sv).is_dict());             // {(1, 2): 0}
}

TEST_CASE("malformed: a bytes key next to a text key of the same spelling") {
  // Python keeps {b'a': 1, 'a': 2} as two keys; Value::find could not tell them apart.
  DecodeError("\x68" "1/a\x01\x81" "a\x02"sv, ErrorCode::kMalformed);
}

TEST_CASE("malformed: depth bomb of 100000 nested list openers") {
  CHECK(DecodeError(std::string(100000, '\xc1'), ErrorCode::kTooDeep).find("nesting deeper than 64") !=
        std::string::npos);
  DecodeError(std::string(100000, '\x3b'), ErrorCode::kTooDeep);
}

TEST_CASE("limits: element count") {
  DecodeLimits limits;
  limits.max_elements = 10;
  CHECK(xr::rencodeplus::Decode(std::string("\xc9") + std::string(9, '\x01'), limits).ok());
  DecodeError(std::string("\xca") + std::string(10, '\x01'), ErrorCode::kTooLarge, limits);
}

TEST_CASE("encode: appends, refuses what 6.x cannot read, leaves the output untouched on failure") {
  std::string out = "prefix";
  REQUIRE(xr::rencodeplus::Encode(Value(true), &out).ok());
  CHECK(out == "prefixC");
  auto st = xr::rencodeplus::Encode(Value(List{1, Value(BigInt{"1" + std::string(63, '0')})}), &out);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kTooLarge);
  CHECK(st.error().message.rfind("rencodeplus: ", 0) == 0);
  CHECK(out == "prefixC");
  CHECK(Enc(Value(BigInt{"5"})) == "\x05"s);
}
