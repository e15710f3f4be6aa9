#pragma once
// Value: the in-memory model of an xpra packet element (rencode / bencode data).
//
// Packets are lists whose first element is the packet type. Dicts keep their wire order
// (xpra's bencode does not sort keys), so decode -> encode reproduces the same bytes.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace xr {

class Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<Value, Value>>;

// Integer too large for int64: kept as its decimal text ("-123456789012345678901234").
struct BigInt {
  std::string decimal;
  bool operator==(const BigInt&) const = default;
};

// Byte string (Python bytes; rencode and bencode both carry these).
struct Bytes {
  std::string data;
  bool operator==(const Bytes&) const = default;
};

// Text (Python str). Both encoders write it as a plain UTF-8 byte string (xpra 3.1's bencode
// never writes `u<len>:`, though it decodes it as Text).
struct Text {
  std::string utf8;
  bool operator==(const Text&) const = default;
};

// Floating point; `single` records that the wire used 32 bits (rencode tag 66).
struct Float {
  double value = 0;
  bool single = false;
  bool operator==(const Float&) const = default;
};

class Value {
 public:
  enum class Kind : uint8_t { kNone, kBool, kInt, kBigInt, kFloat, kBytes, kText, kList, kDict };

  Value() = default;  // None
  Value(std::nullptr_t) {}                                   // NOLINT
  Value(bool b) : v_(b) {}                                   // NOLINT
  Value(int i) : v_(int64_t{i}) {}                           // NOLINT
  Value(unsigned i) : v_(int64_t{i}) {}                      // NOLINT
  Value(long i) : v_(int64_t{i}) {}                          // NOLINT
  Value(long long i) : v_(int64_t{i}) {}                     // NOLINT
  Value(BigInt b) : v_(std::move(b)) {}                      // NOLINT
  Value(double d) : v_(Float{d, false}) {}                   // NOLINT
  Value(Float f) : v_(f) {}                                  // NOLINT
  Value(Bytes b) : v_(std::move(b)) {}                       // NOLINT
  Value(Text t) : v_(std::move(t)) {}                        // NOLINT
  Value(List l) : v_(std::move(l)) {}                        // NOLINT
  Value(Dict d) : v_(std::move(d)) {}                        // NOLINT
  // C strings become Text: packet types and capability keys are Python str in xpra.
  Value(const char* s) : v_(Text{s}) {}                      // NOLINT
  Value(std::string_view s) : v_(Text{std::string(s)}) {}    // NOLINT
  Value(std::string s) : v_(Text{std::move(s)}) {}           // NOLINT

  static Value bytes(std::string data) { return Value(Bytes{std::move(data)}); }
  static Value text(std::string utf8) { return Value(Text{std::move(utf8)}); }

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_bigint() const { return kind() == Kind::kBigInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_bytes() const { return kind() == Kind::kBytes; }
  bool is_text() const { return kind() == Kind::kText; }
  bool is_string() const { return is_bytes() || is_text(); }  // bytes or text
  bool is_list() const { return kind() == Kind::kList; }
  bool is_dict() const { return kind() == Kind::kDict; }

  // Unchecked accessors: call only after the matching is_*() test.
  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  const BigInt& as_bigint() const { return std::get<BigInt>(v_); }
  const Float& as_float() const { return std::get<Float>(v_); }
  // The raw bytes of a Bytes or Text value.
  const std::string& as_string() const {
    return is_bytes() ? std::get<Bytes>(v_).data : std::get<Text>(v_).utf8;
  }
  std::string& mutable_string() {
    return is_bytes() ? std::get<Bytes>(v_).data : std::get<Text>(v_).utf8;
  }
  const List& as_list() const { return std::get<List>(v_); }
  List& as_list() { return std::get<List>(v_); }
  const Dict& as_dict() const { return std::get<Dict>(v_); }
  Dict& as_dict() { return std::get<Dict>(v_); }

  // Checked conversions in xpra's lenient style: bools count as ints and vice versa,
  // bytes and text both count as strings.
  std::optional<int64_t> to_int() const;
  std::optional<bool> to_bool() const;
  std::optional<std::string_view> to_string() const;

  // Dict lookup by string key (bytes or text); nullptr when absent or not a dict.
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  // Sets key (as Text) to value, replacing an existing bytes/text key of the same spelling.
  void set(std::string_view key, Value value);
  // Removes every entry whose string key satisfies pred; returns how many were removed.
  template <typename Pred>
  size_t erase_if(Pred pred) {
    if (!is_dict()) return 0;
    auto& d = as_dict();
    size_t before = d.size();
    std::erase_if(d, [&](const auto& kv) {
      auto k = kv.first.to_string();
      return k && pred(*k);
    });
    return before - d.size();
  }

  bool operator==(const Value& o) const { return v_ == o.v_; }

  // Python-like repr for logs and test failures (bytes shown escaped, long values cut).
  std::string repr(size_t max_len = 512) const;

 private:
  std::variant<std::monostate, bool, int64_t, BigInt, Float, Bytes, Text, List, Dict> v_;
};

// Typed, read-only view of a capabilities dict (a hello). xpra 3.1 uses flat dotted keys
// ("encoding.something"); lookups also descend into nested dicts ("a.b" finds {"a": {"b": ..}}),
// so newer peers that nest work too. Missing or wrongly typed keys yield the default.
// xpra 5.0+ nests a key's own value under "" when it also has sub-keys ({"lz4": {"": True}},
// {"encryption": {"": "AES-CBC", ...}}): as its typedict does, get_string/get_int/get_bool read
// that "" entry when the key names a dict (get() and get_strings() do not).
class Caps {
 public:
  explicit Caps(const Value& dict) : dict_(dict) {}

  const Value* get(std::string_view key) const;
  // get(), or for a dict its "" entry (nullptr when it has none).
  const Value* get_scalar(std::string_view key) const;
  bool has(std::string_view key) const { return get(key) != nullptr; }
  std::string get_string(std::string_view key, std::string_view def = {}) const;
  int64_t get_int(std::string_view key, int64_t def = 0) const;
  bool get_bool(std::string_view key, bool def = false) const;
  // A list of strings (or a single comma-separated string, as some xpra keys are).
  std::vector<std::string> get_strings(std::string_view key) const;

 private:
  const Value& dict_;
};

}  // namespace xr
