#include "codec/rencode.h"

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

constexpr CodecUnderTest kRencode = {"rencode", "tests/codec/testdata/rencode/", &xr::rencode::Decode,
                                     &xr::rencode::Encode, /*bools_as_ints=*/false};

const std::vector<GoldenVector>& Vectors() {
  static const std::vector<GoldenVector> vectors = {
#include "tests/codec/testdata/rencode/vectors.inc"
  };
  return vectors;
}

std::string Golden(const std::string& name) { return GoldenFile(kRencode, name); }

std::string Enc(const Value& v) { return EncodeOk(kRencode, v); }

// Decodes `data`, which must fail with `code`; returns the message.
std::string DecodeError(std::string_view data, ErrorCode code, const DecodeLimits& limits = {}) {
  return DecodeErrorOf(kRencode, data, code, limits);
}

}  // namespace

TEST_CASE("every golden file has a vector and every vector a golden file") {
  CheckGoldenFilesMatchVectors(kRencode, Vectors(), 70);
}

TEST_CASE("golden: C++ values encode to python-rencode's bytes, and decode back") {
  CheckGoldenRoundTrips(kRencode, Vectors());
}

TEST_CASE("hello vector: realistic size, flat dotted keys, nested values") {
  const std::string bytes = Golden("hello");
  auto v = xr::rencode::Decode(bytes);
  REQUIRE(v.ok());
  REQUIRE(v->is_list());
  REQUIRE(v->as_list().size() == 2);
  CHECK(v->as_list()[0] == Value::bytes("hello"));
  const Value& caps = v->as_list()[1];
  REQUIRE(caps.is_dict());
  CHECK(caps.as_dict().size() > 100);
  xr::Caps c(caps);
  CHECK(c.get_string("version") == "3.1.3");
  CHECK(c.get_bool("rencode"));
  CHECK(c.get_strings("digest").size() == 8);
  CHECK(c.get_string("cipher.key_salt").size() == 32);
  CHECK(caps.find("aliases")->as_dict().size() > 40);
  CHECK(caps.find("screen-id")->is_bigint());
}

TEST_CASE("draw vector carries 64 KiB of pixels in the long string form") {
  const std::string bytes = Golden("draw");
  CHECK(bytes.find("65536:") != std::string::npos);
  auto v = xr::rencode::Decode(bytes);
  REQUIRE(v.ok());
  const Value& pixels = v->as_list()[7];
  REQUIRE(pixels.is_bytes());
  CHECK(pixels.as_string() == Pattern(65536));
}

TEST_CASE("floats: python floats are float32 on the wire; Value(double) is float64") {
  // rencode.dumps(0.1) == b'B=\xcc\xcc\xcd'; rencode.dumps(0.1, 64) == b',?\xb9\x99\x99\x99\x99\x99\x9a'.
  CHECK(Enc(Value(Float{0.1f, true})) == "B=\xcc\xcc\xcd"s);
  CHECK(Enc(Value(Float{0.1f, true})) == Golden("float32_0_1"));
  CHECK(Enc(Value(0.1)) == Golden("float64_0_1"));
  auto d = xr::rencode::Decode(Golden("float32_0_1"));
  REQUIRE(d.ok());
  CHECK(d->as_float().single);
  CHECK(d->as_float().value == static_cast<double>(0.1f));
  // As the Cython cast: doubles beyond float32 range become infinities, tiny ones zero.
  CHECK(Enc(Value(Float{1e300, true})) == "B\x7f\x80\x00\x00"s);
  CHECK(Enc(Value(Float{-1e300, true})) == "B\xff\x80\x00\x00"s);
  CHECK(Enc(Value(Float{1e-46, true})) == "B\x00\x00\x00\x00"s);
  CHECK(Enc(Value(Float{std::numeric_limits<double>::quiet_NaN(), true})) == "B\x7f\xc0\x00\x00"s);
}

TEST_CASE("integers: each size tag is used exactly at python-rencode's boundaries") {
  CHECK(Enc(43) == "\x2b"s);
  CHECK(Enc(44) == "\x3e\x2c"s);
  CHECK(Enc(-32) == "\x65"s);
  CHECK(Enc(-33) == "\x3e\xdf"s);
  CHECK(Enc(128) == "\x3f\x00\x80"s);
  CHECK(Enc(32768) == "\x40\x00\x00\x80\x00"s);
  CHECK(Enc(int64_t{1} << 31) == "\x41\x00\x00\x00\x00\x80\x00\x00\x00"s);
  // A BigInt that fits int64 is written as the integer it is, as python would.
  CHECK(Enc(Value(BigInt{"5"})) == "\x05"s);
  CHECK(Enc(Value(BigInt{"-9223372036854775808"})) == Golden("int_neg_9223372036854775808"));
}

TEST_CASE("encode appends to the output and leaves it untouched on failure") {
  std::string out = "prefix";
  REQUIRE(xr::rencode::Encode(Value(true), &out).ok());
  CHECK(out == "prefixC");
  auto st = xr::rencode::Encode(Value(List{1, Value(BigInt{"12x"})}), &out);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kMalformed);
  CHECK(out == "prefixC");
}

TEST_CASE("encode refuses a big integer of 64 characters or more") {
  std::string out;
  auto st = xr::rencode::Encode(Value(BigInt{"1" + std::string(63, '0')}), &out);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kTooLarge);
  CHECK(out.empty());
  REQUIRE(xr::rencode::Encode(Value(BigInt{"1" + std::string(62, '0')}), &out).ok());
}

TEST_CASE("encode refuses nesting deeper than the ceiling instead of overflowing the stack") {
  Value v = List{};
  for (int i = 0; i < xr::kMaxDecodeDepthCeiling + 10; ++i) v = Value(List{std::move(v)});
  std::string out;
  auto st = xr::rencode::Encode(v, &out);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kTooDeep);
}

TEST_CASE("repeated dict keys: first position, last value, as a python dict") {
  // {b'a': 1, b'b': 2, b'a': 3} -> {b'a': 3, b'b': 2}
  auto v = xr::rencode::Decode("\x69\x81" "a\x01\x81" "b\x02\x81" "a\x03"sv);
  REQUIRE(v.ok());
  CHECK(*v == D({{B("a"sv), I(3)}, {B("b"sv), I(2)}}));
  // 1, True and 1.0 are one key; the first spelling stays.
  v = xr::rencode::Decode("\x69\x01\x00\x43\x01\x42\x3f\x80\x00\x00\x02"sv);
  REQUIRE(v.ok());
  CHECK(*v == D({{I(1), I(2)}}));
  // Large terminated dicts use the hash table: 200 keys, each written twice.
  std::string big = "\x3c";
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 200; ++i) {
      std::string key = "key" + std::to_string(i);
      big += static_cast<char>(0x80 + key.size());
      big += key;
      big += static_cast<char>(round == 0 ? 0 : 1);
    }
  }
  big += '\x7f';
  v = xr::rencode::Decode(big);
  REQUIRE(v.ok());
  REQUIRE(v->as_dict().size() == 200);
  CHECK(v->as_dict()[0].first == B("key0"sv));
  CHECK(v->as_dict()[199].first == B("key199"sv));
  for (const auto& [k, e] : v->as_dict()) CHECK(e == I(1));
}

TEST_CASE("NaN keys are never merged (NaN != NaN), in small and large dicts") {
  const std::string nan = "\x42\x7f\xc0\x00\x00"s;
  auto v = xr::rencode::Decode("\x68"s + nan + "\x01" + nan + "\x02");
  REQUIRE(v.ok());
  CHECK(v->as_dict().size() == 2);
  std::string big = "\x3c";
  for (int i = 0; i < 20; ++i) big += "\x81"s + static_cast<char>('A' + i) + "\x00"s;
  for (int i = 0; i < 3; ++i) big += nan + "\x01"s + "\xc1"s + nan + "\x02"s;  // NaN and (NaN,) keys
  big += "\x7f";
  v = xr::rencode::Decode(big);
  REQUIRE(v.ok());
  CHECK(v->as_dict().size() == 26);
}

TEST_CASE("malformed: truncated at every offset of the hello vector") {
  CheckTruncatedAtEveryOffset(kRencode, Golden("hello"));
}

TEST_CASE("malformed: truncated at every offset of the draw vector") {
  CheckTruncatedAtEveryOffset(kRencode, Golden("draw"));
}

TEST_CASE("malformed: unknown type tags") {
  for (char tag : {'\x2d', '\x2e', '\x2f', '\x30', '\x3a', '\x7f'}) {
    std::string msg = DecodeError(std::string(1, tag), ErrorCode::kMalformed);
    CHECK(msg.find("unknown type tag 0x") != std::string::npos);
  }
  CHECK(DecodeError("\xc2\x01\x2d"sv, ErrorCode::kMalformed) == "rencode: unknown type tag 0x2d at offset 2");
  // A terminator where a dict value belongs.
  DecodeError("\x3c\x01\x7f"sv, ErrorCode::kMalformed);
}

TEST_CASE("malformed: string length past the end is truncated input") {
  DecodeError("\x85" "abc"sv, ErrorCode::kTruncated);
  DecodeError("70:abc"sv, ErrorCode::kTruncated);
  DecodeError("70"sv, ErrorCode::kTruncated);
  DecodeError("\x3e"sv, ErrorCode::kTruncated);
  DecodeError("\x41\x00\x00"sv, ErrorCode::kTruncated);
  DecodeError("\x42\x00"sv, ErrorCode::kTruncated);
  DecodeError("\x2c\x00"sv, ErrorCode::kTruncated);
  DecodeError("\x3b\x01"sv, ErrorCode::kTruncated);
  DecodeError("\x3c\x01\x02"sv, ErrorCode::kTruncated);
  DecodeError("\x67\x01"sv, ErrorCode::kTruncated);
  DecodeError("=1234567890123456789"sv, ErrorCode::kTruncated);
}

TEST_CASE("malformed: depth bomb of 100000 nested list openers") {
  std::string bomb(100000, '\xc1');
  std::string msg = DecodeError(bomb, ErrorCode::kTooDeep);
  CHECK(msg.find("nesting deeper than 64") != std::string::npos);
  DecodeError(std::string(100000, '\x3b'), ErrorCode::kTooDeep);
  DecodeError(std::string(100000, '\x3c'), ErrorCode::kTooDeep);
  // Dict values nest too: {0: {0: {...}}}
  std::string dicts;
  for (int i = 0; i < 100000; ++i) dicts += "\x67\x00"s;
  DecodeError(dicts, ErrorCode::kTooDeep);
}

TEST_CASE("depth limit is exact and configurable") {
  auto nested = [](int depth) { return std::string(static_cast<size_t>(depth), '\xc1') + "\x00"s; };
  CHECK(xr::rencode::Decode(nested(64)).ok());
  DecodeError(nested(65), ErrorCode::kTooDeep);
  DecodeLimits two;
  two.max_depth = 2;
  CHECK(xr::rencode::Decode(nested(2), two).ok());
  DecodeError(nested(3), ErrorCode::kTooDeep, two);
  // Asking for more than the ceiling still stops there.
  DecodeLimits huge;
  huge.max_depth = 1 << 30;
  DecodeError(std::string(100000, '\xc1'), ErrorCode::kTooDeep, huge);
}

TEST_CASE("malformed: string length that overflows an integer") {
  DecodeError("99999999999999999999999:a"sv, ErrorCode::kMalformed);
  DecodeError("18446744073709551617:a"sv, ErrorCode::kMalformed);
  DecodeError("99999999999999999999999"sv, ErrorCode::kMalformed);  // even before the colon
  DecodeError("12a:"sv, ErrorCode::kMalformed);
  DecodeError("1 :a"sv, ErrorCode::kMalformed);
}

TEST_CASE("malformed: huge declared string length is over the limit, not truncation") {
  std::string msg = DecodeError("9999999999999999999:abc"sv, ErrorCode::kTooLarge);
  CHECK(msg.find("over the limit") != std::string::npos);
  DecodeLimits small;
  small.max_string_size = 100;
  DecodeError("101:"sv, ErrorCode::kTooLarge, small);
  DecodeError("100:"sv, ErrorCode::kTruncated, small);
}

TEST_CASE("malformed: trailing garbage after a complete value") {
  std::string msg = DecodeError("\x00\x00"sv, ErrorCode::kMalformed);
  CHECK(msg.find("trailing") != std::string::npos);
  DecodeError(Golden("hello") + "x", ErrorCode::kMalformed);
}

TEST_CASE("malformed: big integers that python-rencode would refuse") {
  DecodeError("=1" + std::string(63, '0') + "\x7f", ErrorCode::kMalformed);  // 64 characters
  DecodeError("=1" + std::string(70, '0'), ErrorCode::kMalformed);
  DecodeError("=12a\x7f"sv, ErrorCode::kMalformed);
  DecodeError("=\x7f"sv, ErrorCode::kMalformed);
  DecodeError("=-\x7f"sv, ErrorCode::kMalformed);
  DecodeError("=-0\x7f"sv, ErrorCode::kMalformed);
  DecodeError("=007\x7f"sv, ErrorCode::kMalformed);
  auto v = xr::rencode::Decode("=" + std::string(63, '9') + "\x7f");
  REQUIRE(v.ok());
  CHECK(v->as_bigint().decimal == std::string(63, '9'));
}

TEST_CASE("malformed: unhashable dict keys") {
  DecodeError("\x67\x66\x00"sv, ErrorCode::kMalformed);          // {{}: 0}
  DecodeError("\x67\xc1\x66\x00"sv, ErrorCode::kMalformed);      // {({},): 0}
  CHECK(xr::rencode::Decode("\x67\xc2\x01\x02\x00"sv).ok());     // {(1, 2): 0}
}

TEST_CASE("short terminated containers do not keep the room reserved for long ones") {
  // 50000 empty terminated lists and dicts: 4 bytes each on the wire.
  std::string many = "\x3b";
  for (int i = 0; i < 50000; ++i) many += "\x3b\x7f\x3c\x7f"s;
  many += "\x7f";
  auto v = xr::rencode::Decode(many);
  REQUIRE(v.ok());
  REQUIRE(v->as_list().size() == 100000);
  for (const auto& e : v->as_list()) {
    const size_t capacity = e.is_list() ? e.as_list().capacity() : e.as_dict().capacity();
    REQUIRE(capacity == 0);
  }
}

TEST_CASE("limits: element count") {
  DecodeLimits limits;
  limits.max_elements = 10;
  CHECK(xr::rencode::Decode(std::string("\xc9") + std::string(9, '\x01'), limits).ok());
  std::string msg = DecodeError(std::string("\xca") + std::string(10, '\x01'), ErrorCode::kTooLarge, limits);
  CHECK(msg.find("more than 10 elements") != std::string::npos);
}

TEST_CASE("texts and bytes both encode as byte strings") {
  CHECK(Enc(Value("abc")) == Enc(Value::bytes("abc")));
  CHECK(Enc(Value::text(std::string(64, 'a'))).substr(0, 3) == "64:");
  auto v = xr::rencode::Decode(Enc(Value("x")));
  REQUIRE(v.ok());
  CHECK(v->is_bytes());
}
