#pragma once
// The 8-byte xpra frame header (xpra 3.1 net/header.py):
//   'P', proto_flags, level, index, payload_size (u32, big-endian).
// proto_flags: 0x1 rencode, 0x4 yaml, 0x10 rencodeplus (xpra 6.x), none of them = bencode;
//   0x2 = payload is AES-encrypted; 0x8 = flush (6.x: nothing more follows for now).
//   No other bit exists. With several encoder bits xpra reads the first of rencodeplus, rencode,
//   yaml (6.x net/packet_encoding.py; 3.1 likewise without rencodeplus), so the relay does too.
// level: 0 = not compressed, else low bits = compression level, high bits = compressor
//   (0x00 zlib, 0x10 lz4, 0x20 lzo, 0x40 brotli).
// index: 0 = a main packet; N > 0 = the raw value of element N of the next main packet.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace xr {

constexpr size_t kHeaderSize = 8;
constexpr char kHeaderMagic = 'P';

namespace flags {
constexpr uint8_t kRencode = 0x1;
constexpr uint8_t kCipher = 0x2;
constexpr uint8_t kYaml = 0x4;
constexpr uint8_t kFlush = 0x8;         // xpra 6.x: the sender's queue is empty after this frame
constexpr uint8_t kRencodePlus = 0x10;  // xpra 6.x's encoder (codec/rencodeplus.h)
constexpr uint8_t kEncoderMask = kRencode | kYaml | kRencodePlus;
constexpr uint8_t kKnownMask = kEncoderMask | kCipher | kFlush;
}  // namespace flags

// xpra 6.x, while it waits for a peer's first frame, only takes a header whose payload is under
// 4 MiB (net/protocol/socket_handler.py: find_xpra_header(max_data_size=4 MiB)); a larger first
// frame is never found and the connection hangs until its timeout. A relay's first frame to a
// 6.x peer must stay below this.
constexpr size_t kXpra6MaxFirstPayload = size_t{4} << 20;

// Ok when `flags` uses only bits xpra defines; else kMalformed "invalid header flags 0x..: unknown
// flag bits".
Status CheckFlags(uint8_t flags);

// Compressor bits of the level byte.
namespace level_flags {
constexpr uint8_t kZlib = 0x00;
constexpr uint8_t kLz4 = 0x10;
constexpr uint8_t kLzo = 0x20;
constexpr uint8_t kBrotli = 0x40;
}  // namespace level_flags

enum class Compressor : uint8_t { kNone, kZlib, kLz4, kLzo, kBrotli };

// AES padding block of xpra 3.1 (equals crypto::kPaddingBlock).
constexpr size_t kCipherPaddingBlock = 32;

// The compressor a level byte selects, tested in xpra's order: lz4, lzo, brotli, else zlib; 0 -> kNone.
Compressor CompressorForLevel(uint8_t level);

// Lower-case name of a compressor ("none", "zlib", "lz4", "lzo", "brotli").
const char* CompressorName(Compressor c);

struct FrameHeader {
  uint8_t flags = 0;
  uint8_t level = 0;
  uint8_t index = 0;
  uint32_t payload_size = 0;  // unpadded size, also for encrypted frames

  // True when the payload is encrypted (flags & kCipher).
  bool encrypted() const { return (flags & flags::kCipher) != 0; }
  // The compressor named by the level byte (kNone for level 0).
  Compressor compressor() const { return CompressorForLevel(level); }
  // Bytes that follow the header on the wire: payload_size, or crypto::PaddedSize(payload_size)
  // (1..32 padding bytes added) when encrypted.
  size_t wire_payload_size() const;
  // As wire_payload_size() with the padding block `cipher_block` of the encrypted form in use:
  // 32 (xpra 3.1), 16 (6.x CBC), 0 (6.x CTR: unpadded). Equal to payload_size when not encrypted.
  size_t wire_payload_size(size_t cipher_block) const;

  bool operator==(const FrameHeader&) const = default;
};

// Writes the 8 wire bytes of h to out.
// Header + payload as one wire frame.
std::string SerializeFrame(const FrameHeader& h, std::string_view payload);

void EncodeHeader(const FrameHeader& h, char out[kHeaderSize]);

// Parses the first 8 bytes of `bytes`: first byte not 'P' -> kMalformed (checked first), fewer than
// 8 bytes -> kTruncated.
Expected<FrameHeader> DecodeHeader(std::string_view bytes);

}  // namespace xr
