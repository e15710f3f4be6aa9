#pragma once
// Helpers the framing tests share (frame tracker, frame reader, compression, packets): the
// golden wire captures in testdata/framing/ and header bytes built by hand.

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>

#include <doctest/doctest.h>

#include "codec/header.h"

namespace xr::framing_test {

// The bytes of tests/codec/testdata/framing/NAME (see its MANIFEST.txt).
inline std::string ReadGolden(const std::string& name) {
  std::ifstream in("tests/codec/testdata/framing/" + name, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "missing golden file " << name);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The 8 header bytes of a frame.
inline std::string Header(uint8_t flags, uint8_t level, uint8_t index, uint32_t size) {
  char buf[kHeaderSize];
  EncodeHeader(FrameHeader{flags, level, index, size}, buf);
  return std::string(buf, kHeaderSize);
}

}  // namespace xr::framing_test
