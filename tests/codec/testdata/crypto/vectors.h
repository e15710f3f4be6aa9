#pragma once
// Reader for the golden vector files written by tools/golden/crypto.py and
// tools/golden/websocket.py (tests only).
// Records are separated by blank lines; each line is "name value"; values are hex, except
// names ending in "_int" (decimal) and "_str" (plain text); '#' starts a comment line.

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace xr::testing {

class CryptoRecord {
 public:
  // The raw text of field `name`; throws when missing.
  const std::string& raw(const std::string& name) const {
    auto it = fields_.find(name);
    if (it == fields_.end()) throw std::runtime_error("golden record has no field " + name);
    return it->second;
  }
  // True when the record has field `name`.
  bool has(const std::string& name) const { return fields_.count(name) != 0; }
  // Hex field decoded to bytes.
  std::string bytes(const std::string& name) const { return Unhex(raw(name)); }
  // Decimal field.
  long num(const std::string& name) const { return std::stol(raw(name)); }

  std::map<std::string, std::string> fields_;

  // Lower/upper-case hex -> bytes; throws on odd length or a non-hex digit.
  static std::string Unhex(const std::string& hex) {
    if (hex.size() % 2 != 0) throw std::runtime_error("odd hex length");
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      throw std::runtime_error("bad hex digit");
    };
    std::string out;
    out.reserve(hex.size() / 2);
    for (size_t i = 0; i < hex.size(); i += 2) {
      out.push_back(static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
    }
    return out;
  }
};

// Loads the golden file at `rel` (a path from the workspace root, e.g.
// "tests/codec/testdata/websocket/frames.txt") from the test's runfiles; throws if unreadable.
inline std::vector<CryptoRecord> LoadGoldenVectors(const std::string& rel) {
  std::ifstream in(rel);
  if (!in) {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const char* ws = std::getenv("TEST_WORKSPACE");
    if (srcdir != nullptr) in.open(std::string(srcdir) + "/" + (ws ? ws : "xpra_relay") + "/" + rel);
  }
  if (!in) throw std::runtime_error("cannot open golden file " + rel);
  std::vector<CryptoRecord> records;
  CryptoRecord current;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '#') continue;
    if (line.empty()) {
      if (!current.fields_.empty()) records.push_back(std::move(current));
      current = CryptoRecord();
      continue;
    }
    const size_t sp = line.find(' ');
    if (sp == std::string::npos) throw std::runtime_error("bad golden line: " + line);
    current.fields_[line.substr(0, sp)] = line.substr(sp + 1);
  }
  if (!current.fields_.empty()) records.push_back(std::move(current));
  return records;
}

// Loads tests/codec/testdata/crypto/<name>.
inline std::vector<CryptoRecord> LoadCryptoVectors(const std::string& name) {
  return LoadGoldenVectors("tests/codec/testdata/crypto/" + name);
}

}  // namespace xr::testing
