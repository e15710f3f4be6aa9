#pragma once
// The packet layer: frames <-> xpra packets (xpra 3.1 net/protocol.py).
//
// Receiving: each frame is decrypted (kCipher), then decompressed (level byte). A frame with
// index N > 0 is a chunk: its payload, raw bytes and not encoded, becomes element N of the next
// index-0 packet (which holds '' there). An index-0 frame is decoded with rencode (flag 0x1),
// rencodeplus (0x10, xpra 6.x), yaml (0x4, refused) or bencode (none), then the pending chunks
// are put in place.
// Sending: one frame per packet (large values are not split into chunks), compressed when the
// encoded packet is over kMinCompressSize bytes, like xpra.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "base/status.h"
#include "codec/decode_limits.h"
#include "codec/frame_reader.h"
#include "codec/frame_tracker.h"
#include "codec/header.h"
#include "codec/value.h"

namespace xr {
namespace crypto {
class Decryptor;
class Encryptor;
}  // namespace crypto

enum class Encoding { kRencode, kBencode, kRencodePlus };

// "rencode", "bencode", "rencodeplus".
const char* EncodingName(Encoding e);

// The encoding a main frame's flags name (CheckFlags first: at most one encoder bit). yaml ->
// kUnsupported with a reason a user can read (xpra offers it, the relay does not speak it).
Expected<Encoding> EncodingForFlags(uint8_t flags);

// The header flag bit of an encoding (0 for bencode).
uint8_t EncodingFlag(Encoding e);

// Decodes one encoded packet payload (decrypted, decompressed) with `e`; errors as the codec's.
Expected<Value> DecodePayload(Encoding e, std::string_view data, const DecodeLimits& limits);

// xpra does not compress an encoded packet of this many bytes or fewer (MIN_COMPRESS_SIZE).
constexpr size_t kMinCompressSize = 378;

class PacketDecoder {  // frames -> packets: decrypt, decompress, decode, chunk reassembly
 public:
  // limits.max_payload (capped at kHardMaxPayload) also bounds each frame's decompressed size;
  // limits.max_pending_chunks bounds the chunks held for the next main packet.
  explicit PacketDecoder(FrameLimits limits = {}, DecodeLimits dlimits = {});

  // Sets the decryptor for incoming frames (not owned; nullptr turns decryption off). While one
  // is set every frame must carry kCipher, as xpra drops unencrypted packets once AES is on;
  // without one, a frame with kCipher is an error.
  void set_decryptor(crypto::Decryptor* d);

  // Consumes one frame; returns the packet (a List whose first element is a string) when an
  // index-0 frame completes one, nullopt after storing a chunk. The framing rules
  // (codec/frame_tracker.h) apply to each frame's header first. Errors: kMalformed (empty
  // payload, duplicate chunk, cipher mismatch, bad padding, corrupt data, not a list / no
  // string type, chunk index beyond the packet), kTooLarge (size or pending-chunk limits),
  // kTooDeep, kUnsupported (yaml, lzo, brotli). After an error the decoder should be discarded
  // with the connection (a framing error is sticky).
  Expected<std::optional<Value>> Push(RawFrame frame);

  // Encoding of the last main packet (kRencode before any).
  Encoding last_encoding() const { return last_encoding_; }

  // Changes the decompressed-size limit (capped at kHardMaxPayload), alongside
  // FrameReader::set_max_payload.
  void set_max_payload(size_t max_payload);

  // Number of chunks waiting for their main packet, and their decoded bytes.
  size_t pending_chunks() const { return pending_.size(); }
  size_t pending_bytes() const { return pending_bytes_; }

 private:
  // Decrypts (when flagged) and decompresses one frame's payload.
  Expected<std::string> Unwrap(RawFrame& frame);

  FrameLimits limits_;    // max_payload also bounds decompression
  FrameTracker frames_;   // the framing rules, frame by frame
  DecodeLimits dlimits_;
  crypto::Decryptor* decryptor_ = nullptr;
  std::map<uint8_t, std::string> pending_;  // chunk index -> raw value (frames_ decides which may wait)
  size_t pending_bytes_ = 0;
  Encoding last_encoding_ = Encoding::kRencode;
};

struct EncodeOptions {
  Encoding encoding = Encoding::kRencode;
  Compressor compressor = Compressor::kNone;
  int level = 0;  // 0 = no compression, else 1..9
  bool flush = false;  // sets flags::kFlush (xpra 6.x: nothing more queued after this packet)
};

// Appends the wire bytes (header + payload, encrypted when enc != nullptr) of one packet, a
// non-empty List. The payload is compressed when opts asks for it and the encoded packet is over
// kMinCompressSize bytes. Encrypted frames set kCipher and keep the unpadded size in the header.
// On error *out is left as it was.
Status EncodePacket(const Value& packet, const EncodeOptions& opts, crypto::Encryptor* enc, std::string* out);

}  // namespace xr
