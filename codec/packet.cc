#include "codec/packet.h"

#include <limits>
#include <utility>

#include "codec/bencode.h"
#include "codec/cipher.h"
#include "codec/compression.h"
#include "codec/rencode.h"
#include "codec/rencodeplus.h"

namespace xr {

const char* EncodingName(Encoding e) {
  switch (e) {
    case Encoding::kRencode: return "rencode";
    case Encoding::kBencode: return "bencode";
    case Encoding::kRencodePlus: return "rencodeplus";
  }
  return "unknown";
}

Expected<Encoding> EncodingForFlags(uint8_t f) {
  if (f & flags::kRencodePlus) return Encoding::kRencodePlus;
  if (f & flags::kRencode) return Encoding::kRencode;
  if (f & flags::kYaml) {
    return MakeError(ErrorCode::kUnsupported,
                     "yaml packet encoding is not supported (the relay speaks rencodeplus, rencode and bencode)");
  }
  return Encoding::kBencode;
}

uint8_t EncodingFlag(Encoding e) {
  switch (e) {
    case Encoding::kRencode: return flags::kRencode;
    case Encoding::kBencode: return 0;
    case Encoding::kRencodePlus: return flags::kRencodePlus;
  }
  return 0;
}

Expected<Value> DecodePayload(Encoding e, std::string_view data, const DecodeLimits& limits) {
  switch (e) {
    case Encoding::kRencode: return rencode::Decode(data, limits);
    case Encoding::kBencode: return bencode::Decode(data, limits);
    case Encoding::kRencodePlus: return rencodeplus::Decode(data, limits);
  }
  return MakeError(ErrorCode::kInternal, "unknown packet encoding");
}

namespace {

Status EncodeWith(Encoding e, const Value& v, std::string* out) {
  switch (e) {
    case Encoding::kRencode: return rencode::Encode(v, out);
    case Encoding::kBencode: return bencode::Encode(v, out);
    case Encoding::kRencodePlus: return rencodeplus::Encode(v, out);
  }
  return MakeError(ErrorCode::kInternal, "unknown packet encoding");
}

}  // namespace

PacketDecoder::PacketDecoder(FrameLimits limits, DecodeLimits dlimits)
    : limits_(limits), frames_(limits), dlimits_(dlimits) {
  limits_.max_payload = frames_.max_payload();
}

void PacketDecoder::set_decryptor(crypto::Decryptor* d) { decryptor_ = d; }

void PacketDecoder::set_max_payload(size_t max_payload) {
  frames_.set_max_payload(max_payload);
  limits_.max_payload = frames_.max_payload();
}

Expected<std::string> PacketDecoder::Unwrap(RawFrame& frame) {
  const FrameHeader& h = frame.header;
  if (frame.payload.size() != h.wire_payload_size()) {
    return MakeError(ErrorCode::kMalformed, "frame payload of " + std::to_string(frame.payload.size()) +
                                                " bytes, header says " + std::to_string(h.wire_payload_size()));
  }
  std::string data;
  if (h.encrypted()) {
    if (decryptor_ == nullptr) {
      return MakeError(ErrorCode::kMalformed, "encrypted frame but no cipher is configured");
    }
    Status s = decryptor_->Decrypt(frame.payload, h.payload_size, &data);
    if (!s.ok()) return s.error();
  } else {
    if (decryptor_ != nullptr) {
      return MakeError(ErrorCode::kMalformed, "unencrypted packet dropped: the link is encrypted");
    }
    data = std::move(frame.payload);
  }
  if (h.level == 0) return data;
  auto out = Decompress(h.level, data, limits_.max_payload);
  if (!out.ok()) {
    Error e = out.take_error();
    e.message = std::string(CompressorName(h.compressor())) + " packet: " + e.message;
    return e;
  }
  return out;
}

Expected<std::optional<Value>> PacketDecoder::Push(RawFrame frame) {
  const FrameHeader h = frame.header;
  if (Status s = frames_.AcceptFrame(h); !s.ok()) return s.error();
  if (h.index > 0) {
    auto data = Unwrap(frame);
    if (!data.ok()) return data.take_error();
    pending_bytes_ += data->size();
    pending_.emplace(h.index, std::move(*data));
    return std::optional<Value>();
  }

  auto enc = EncodingForFlags(h.flags);
  if (!enc.ok()) return enc.take_error();
  const Encoding encoding = *enc;
  auto data = Unwrap(frame);
  if (!data.ok()) return data.take_error();
  auto decoded = DecodePayload(encoding, *data, dlimits_);
  if (!decoded.ok()) {
    Error e = decoded.take_error();
    e.message = std::string(EncodingName(encoding)) + " packet: " + e.message;
    return e;
  }
  Value packet = std::move(*decoded);
  if (!packet.is_list()) {
    return MakeError(ErrorCode::kMalformed, "packet is not a list");
  }
  List& items = packet.as_list();
  if (items.empty() || !items[0].is_string()) {
    return MakeError(ErrorCode::kMalformed, "packet type is not a string");
  }
  for (auto& [index, raw] : pending_) {
    if (index >= items.size()) {
      return MakeError(ErrorCode::kMalformed, "chunk index " + std::to_string(index) + " beyond packet length " +
                                                  std::to_string(items.size()));
    }
    items[index] = Value::bytes(std::move(raw));
  }
  pending_.clear();
  pending_bytes_ = 0;
  last_encoding_ = encoding;
  return std::optional<Value>(std::move(packet));
}

Status EncodePacket(const Value& packet, const EncodeOptions& opts, crypto::Encryptor* enc, std::string* out) {
  if (!packet.is_list() || packet.as_list().empty()) {
    return MakeError(ErrorCode::kMalformed, "a packet must be a non-empty list");
  }
  std::string encoded;
  Status s = EncodeWith(opts.encoding, packet, &encoded);
  if (!s.ok()) return s;

  FrameHeader h;
  h.flags = EncodingFlag(opts.encoding);
  if (opts.flush) h.flags |= flags::kFlush;
  std::string payload;
  if (opts.compressor != Compressor::kNone && opts.level > 0 && encoded.size() > kMinCompressSize) {
    auto level = Compress(opts.compressor, opts.level, encoded, &payload);
    if (!level.ok()) return level.take_error();
    h.level = *level;
  } else {
    payload = std::move(encoded);
  }
  if (payload.size() > kHardMaxPayload) {
    return MakeError(ErrorCode::kTooLarge, "packet of " + std::to_string(payload.size()) + " bytes exceeds the " +
                                               std::to_string(kHardMaxPayload) + " byte limit");
  }
  h.payload_size = static_cast<uint32_t>(payload.size());
  if (enc != nullptr) h.flags |= flags::kCipher;

  std::string frame(kHeaderSize, '\0');
  EncodeHeader(h, frame.data());
  if (enc != nullptr) {
    frame.reserve(kHeaderSize + h.wire_payload_size());
    Status es = enc->Encrypt(payload, &frame);
    if (!es.ok()) return es;
  } else {
    frame += payload;
  }
  out->append(frame);
  return Status::Ok();
}

}  // namespace xr
