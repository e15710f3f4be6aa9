#pragma once
// The bridge between xpra generations (issue 17, section 2): xpra 3.1 speaks rencode or bencode
// with zlib or lz4 and flat dotted capability keys; xpra 6.x speaks rencodeplus with lz4 and
// nests its capabilities in dicts. When a client and its server share no encoder, the relay
// translates every packet: decode with one side's encoder and compressor, re-encode with the
// other's. Chunk frames (index > 0: raw values such as pixel data) are not decoded: they pass
// as they are, re-framed, and are only decompressed when the other side cannot read their
// compressor.
//
// Everything here is pure: no I/O, no logging (the caller logs drops, once per type).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "codec/decode_limits.h"
#include "codec/header.h"
#include "codec/packet.h"
#include "codec/value.h"

namespace xr::bridge {

// The two generations the relay knows: 3.1 (rencode/bencode, flat caps) and 6.x (rencodeplus,
// nested caps).
enum class Generation : uint8_t { k3, k6 };

// The generation a peer's encoding belongs to.
constexpr Generation GenerationOf(Encoding e) { return e == Encoding::kRencodePlus ? Generation::k6 : Generation::k3; }
// The generation a frame header was written by (the rencodeplus bit: 6.x).
constexpr Generation GenerationOfFlags(uint8_t f) {
  return (f & flags::kRencodePlus) != 0 ? Generation::k6 : Generation::k3;
}
const char* GenerationName(Generation g);  // "3.1", "6.x"

// What the relay writes to one side: its encoder and compressor (kNone, kZlib or kLz4).
struct WireFormat {
  Encoding encoding = Encoding::kRencode;
  Compressor compressor = Compressor::kNone;
  bool operator==(const WireFormat&) const = default;
};

// "rencode+zlib", "rencodeplus+lz4", "bencode+none".
std::string FormatName(const WireFormat& f);

// The format to write to a peer of generation `g` whose hello is `caps`: 6.x gets rencodeplus
// with lz4 when it offers lz4; 3.1 gets rencode when it offers it (else bencode) with zlib when
// offered, else lz4, else none.
WireFormat FormatFor(Generation g, const Value& caps);

// Capabilities a peer of generation `g` must see to pick the format the relay reads from it
// (the relay reads every encoder and compressor of that generation): set on the translated hello.
void SetFormatCaps(Generation g, Value* caps);

// Hello translation. Both return a new dict; the input is not changed.
// 3.1 -> 6.x: every valid UTF-8 byte string becomes text (6.x's typed packets and dict keys
// are str), the flat keys stay (6.x's lookups try the flat key first), and each dotted prefix
// also gets a nested dict ({"a.b": 1} adds {"a": {"b": 1}}; a prefix that is itself a scalar key
// becomes {"": scalar, ...}, as 6.x nests it).
Value HelloTo6(const Value& caps3);
// 6.x -> 3.1: nested dicts are flattened to dotted keys as well as kept ({"a": {"b": 1}} adds
// "a.b": 1), and a dict's "" entry becomes the key's own value ({"lz4": {"": True}} -> "lz4": True).
Value HelloTo3(const Value& caps6);

// Byte strings a 6.x peer reads as str (valid UTF-8, no NUL, at most kMaxTextBytes) become
// text, recursively, dict keys always when valid UTF-8; everything else (pixel data, binary
// blobs) stays bytes.
constexpr size_t kMaxTextBytes = 4096;
Value TextForSix(Value v);

// Packet types one generation sends that the other has no counterpart for; dropped, not sent.
bool DroppedToward(Generation to, std::string_view packet_type);

// One direction of a bridged connection.
class Translator {
 public:
  // Receives each output frame: header and payload (written to the wire in this order).
  using Sink = std::function<Status(const FrameHeader&, std::string_view)>;

  // `from`/`to`: the formats read and written. `max_payload`: the largest decompressed
  // payload accepted (the leg's packet limit); `limits`: the decode limits of every packet.
  Translator(Generation from_gen, WireFormat to, size_t max_payload, DecodeLimits limits);

  // Translates one plain (decrypted) frame. Chunks (index > 0) go to `sink` as they are (or
  // decompressed when `to` cannot read their compressor); a main frame is decompressed,
  // decoded, converted and re-encoded. Errors: the codec's (kMalformed, kTooLarge, kTooDeep,
  // kUnsupported) with a message naming the step. A packet dropped (DroppedToward) writes
  // nothing and sets *dropped to its type (the types dropped carry no chunks; a dropped packet
  // that had chunks is an error, since the peer would give them to the next packet).
  Status Translate(const FrameHeader& h, std::string_view payload, const Sink& sink, std::string* dropped);

  // Hello translation in this direction, with the format caps of the receiving side.
  Value TranslateHello(const Value& caps) const;

  void set_max_payload(size_t n) { max_payload_ = n; }

  Generation from() const { return from_gen_; }
  Generation to_generation() const { return GenerationOf(to_.encoding); }
  const WireFormat& to() const { return to_; }
  uint64_t packets() const { return packets_; }      // main packets translated
  uint64_t chunks() const { return chunks_; }        // chunk frames passed on
  uint64_t dropped() const { return dropped_; }      // packets dropped (no counterpart)
  uint64_t bytes_in() const { return bytes_in_; }    // payload bytes read
  uint64_t bytes_out() const { return bytes_out_; }  // payload bytes written

 private:
  Generation from_gen_;
  WireFormat to_;
  size_t max_payload_;
  DecodeLimits limits_;
  int chunks_since_main_ = 0;  // chunk frames passed on since the last main packet
  uint64_t packets_ = 0, chunks_ = 0, dropped_ = 0, bytes_in_ = 0, bytes_out_ = 0;
};

}  // namespace xr::bridge
