#pragma once
// Helpers the rencode and bencode tests share: the value builders the generated
// testdata/*/vectors.inc files use, golden-file access, and checks both codecs must pass.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "base/status.h"
#include "codec/decode_limits.h"
#include "codec/value.h"

namespace xr::codec_test {

// Builders used by the generated vectors.inc files.
inline Value I(int64_t v) { return Value(v); }
inline Value Big(const char* decimal) { return Value(BigInt{decimal}); }
inline Value F32(double v) { return Value(Float{v, true}); }
inline Value F64(double v) { return Value(Float{v, false}); }
inline Value N() { return Value(); }
inline Value B(std::string_view s) { return Value::bytes(std::string(s)); }
inline Value B(std::string s) { return Value::bytes(std::move(s)); }
inline Value T(std::string_view s) { return Value::text(std::string(s)); }
inline Value L(std::initializer_list<Value> items) { return Value(List(items)); }
inline Value D(std::initializer_list<std::pair<Value, Value>> items) { return Value(Dict(items)); }

// n bytes of the same formula as pattern() in tools/golden/rencode_bencode.py.
inline std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + (i >> 8) * 3 + (i >> 16)) & 0xff);
  return s;
}

// One entry of a vectors.inc file.
struct GoldenVector {
  const char* name;
  Value value;
  bool canonical;  // NAME.bin is the encoder's output for value (else: NAME.out.bin is)
};

// A codec under test.
struct CodecUnderTest {
  const char* name;  // "rencode": every error message starts with "rencode: "
  const char* dir;   // golden files, "tests/codec/testdata/rencode/"
  Expected<Value> (*decode)(std::string_view data, const DecodeLimits& limits);
  Status (*encode)(const Value& v, std::string* out);
  bool bools_as_ints;  // the encoder writes True/False as 1/0
  bool keeps_text = false;  // Text decodes as Text (rencodeplus), not as Bytes
  bool python_writes_float64 = false;  // the Python encoder writes every float as float64
};

// The whole file at path (REQUIREs that it opens).
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The golden file NAME.bin of the codec.
inline std::string GoldenFile(const CodecUnderTest& codec, const std::string& name) {
  return ReadFile(codec.dir + name + ".bin");
}

// What a decoder returns for a value a caller built: strings all come back as bytes (xpra
// writes str as plain byte strings), and bools as integers where the codec writes them so.
inline Value ToWire(const CodecUnderTest& codec, const Value& v) {
  if (v.is_text() && !codec.keeps_text) return Value::bytes(v.as_string());
  if (codec.bools_as_ints && v.is_bool()) return Value(v.as_bool() ? 1 : 0);
  if (v.is_list()) {
    List out;
    for (const auto& e : v.as_list()) out.push_back(ToWire(codec, e));
    return Value(std::move(out));
  }
  if (v.is_dict()) {
    Dict out;
    for (const auto& [k, e] : v.as_dict()) out.emplace_back(ToWire(codec, k), ToWire(codec, e));
    return Value(std::move(out));
  }
  return v;
}

// v with every float32 made float64: what a Python encoder that writes only float64 writes
// for a decoded value.
inline Value Widened(const Value& v) {
  if (v.is_float()) return Value(v.as_float().value);
  if (v.is_list()) {
    List out;
    for (const auto& e : v.as_list()) out.push_back(Widened(e));
    return Value(std::move(out));
  }
  if (v.is_dict()) {
    Dict out;
    for (const auto& [k, e] : v.as_dict()) out.emplace_back(Widened(k), Widened(e));
    return Value(std::move(out));
  }
  return v;
}

// The encoding of v (REQUIREs success).
inline std::string EncodeOk(const CodecUnderTest& codec, const Value& v) {
  std::string out;
  auto st = codec.encode(v, &out);
  REQUIRE_MESSAGE(st.ok(), st.error().message);
  return out;
}

// Decodes `data`, which must fail with `code` and a message naming the codec; returns the message.
inline std::string DecodeErrorOf(const CodecUnderTest& codec, std::string_view data, ErrorCode code,
                                 const DecodeLimits& limits = {}) {
  auto r = codec.decode(data, limits);
  REQUIRE_FALSE(r.ok());
  CHECK_MESSAGE(r.error().code == code, "got " << ErrorCodeName(r.error().code) << ": " << r.error().message);
  CHECK(r.error().message.rfind(std::string(codec.name) + ": ", 0) == 0);
  return r.error().message;
}

// Checks that the golden files (NAME.bin, not NAME.out.bin) are exactly the vectors' names,
// and that there are more than min_count of them.
inline void CheckGoldenFilesMatchVectors(const CodecUnderTest& codec, const std::vector<GoldenVector>& vectors,
                                         size_t min_count) {
  std::set<std::string> files, names;
  for (const auto& e : std::filesystem::directory_iterator(codec.dir)) {
    std::string f = e.path().filename().string();
    if (f.ends_with(".bin") && !f.ends_with(".out.bin")) files.insert(f.substr(0, f.size() - 4));
  }
  for (const auto& g : vectors) names.insert(g.name);
  CHECK(files == names);
  CHECK(names.size() > min_count);
}

// Checks every vector: its golden file decodes; a canonical value encodes to the file and
// decodes to ToWire(value); otherwise the file decodes to value and both re-encode to NAME.out.bin.
inline void CheckGoldenRoundTrips(const CodecUnderTest& codec, const std::vector<GoldenVector>& vectors) {
  for (const auto& g : vectors) {
    INFO("vector " << g.name);
    const std::string input = GoldenFile(codec, g.name);
    auto decoded = codec.decode(input, DecodeLimits{});
    REQUIRE_MESSAGE(decoded.ok(), decoded.error().message);
    if (g.canonical) {
      CHECK(EncodeOk(codec, g.value) == input);
      CHECK(*decoded == ToWire(codec, g.value));
      CHECK(EncodeOk(codec, *decoded) == input);
    } else {
      const std::string reencoded = ReadFile(codec.dir + std::string(g.name) + ".out.bin");
      CHECK(*decoded == g.value);
      const Value& as_python = codec.python_writes_float64 ? Widened(*decoded) : *decoded;
      CHECK(EncodeOk(codec, as_python) == reencoded);
      CHECK(EncodeOk(codec, codec.python_writes_float64 ? Widened(g.value) : g.value) == reencoded);
    }
  }
}

// Checks that every proper prefix of `bytes` fails as kTruncated and the whole decodes.
inline void CheckTruncatedAtEveryOffset(const CodecUnderTest& codec, const std::string& bytes) {
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = codec.decode(std::string_view(bytes).substr(0, n), DecodeLimits{});
    REQUIRE_FALSE(r.ok());
    REQUIRE_MESSAGE(r.error().code == ErrorCode::kTruncated, "prefix " << n << ": " << r.error().message);
  }
  CHECK(codec.decode(bytes, DecodeLimits{}).ok());
}

}  // namespace xr::codec_test
