#include "codec/websocket.h"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "codec/http_response.h"

namespace xr::ws {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr size_t kMaxControlPayload = 125;

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// The canonical base64 of exactly 16 bytes: 21 characters, one whose low 4 bits are zero, "==".
bool IsKeyOf16Bytes(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  if (!std::all_of(key.begin(), key.begin() + 22, IsBase64Char)) return false;
  return std::string_view("AQgw").find(key[21]) != std::string_view::npos;
}

// Subprotocol names compare case-sensitively (RFC 6455 4.1), unlike HasToken.
bool OffersProtocol(const http::Request& request, std::string_view wanted) {
  for (const http::Header& h : request.headers) {
    if (h.name != "sec-websocket-protocol") continue;
    if (http::AnyListItem(h.value, [&](std::string_view item) { return item == wanted; })) return true;
  }
  return false;
}

// The Origin check of HandshakeOptions (true: allowed).
bool OriginAllowed(const http::Request& request, const HandshakeOptions& options) {
  if (!options.same_origin && options.allowed_origins.empty()) return true;
  const std::string* origin = request.Find("origin");
  if (origin == nullptr) return true;  // not a browser
  if (request.Count("origin") != 1) return false;
  for (const std::string& allowed : options.allowed_origins) {
    if (http::EqualsIgnoreCase(*origin, allowed)) return true;
  }
  if (options.same_origin) {
    const std::string* host = request.Find("host");
    const size_t sep = origin->find("://");
    if (host != nullptr && sep != std::string::npos && http::EqualsIgnoreCase(origin->substr(sep + 3), *host)) {
      return true;
    }
  }
  return false;
}

HandshakeResult Refuse(int status, const char* reason, std::string_view extra_headers = {}) {
  HandshakeResult r;
  r.status = status;
  r.reason = reason;
  r.response = http::SimpleResponse(status, extra_headers);
  return r;
}

bool IsControl(Opcode op) { return (static_cast<uint8_t>(op) & 0x8) != 0; }

bool IsValidCloseCode(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

}  // namespace

std::string AcceptKey(std::string_view key) {
  std::string input(key);
  input.append(kGuid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &digest_len, EVP_sha1(), nullptr) != 1) return {};
  unsigned char b64[64];
  int n = EVP_EncodeBlock(b64, digest, static_cast<int>(digest_len));
  return std::string(reinterpret_cast<char*>(b64), static_cast<size_t>(n));
}

HandshakeResult AcceptHandshake(const http::Request& request, const HandshakeOptions& options) {
  if (request.method != "GET") return Refuse(405, "websocket upgrade needs GET", "Allow: GET\r\n");
  if (request.version_minor != 1) return Refuse(400, "websocket upgrade needs HTTP/1.1");
  if (!request.HasToken("upgrade", "websocket")) return Refuse(400, "missing Upgrade: websocket");
  if (!request.HasToken("connection", "upgrade")) return Refuse(400, "missing Connection: upgrade");
  const std::string* version = request.Find("sec-websocket-version");
  if (version == nullptr) return Refuse(400, "missing Sec-WebSocket-Version");
  if (request.Count("sec-websocket-version") != 1 || *version != "13") {
    return Refuse(426, "unsupported Sec-WebSocket-Version", "Sec-WebSocket-Version: 13\r\n");
  }
  const std::string* key = request.Find("sec-websocket-key");
  if (key == nullptr || request.Count("sec-websocket-key") != 1 || !IsKeyOf16Bytes(*key)) {
    return Refuse(400, "missing or malformed Sec-WebSocket-Key");
  }
  if (!OriginAllowed(request, options)) return Refuse(403, "websocket Origin not allowed");
  const bool binary = OffersProtocol(request, "binary");
  if (!binary && options.require_binary_protocol) return Refuse(403, "client does not offer the 'binary' subprotocol");
  HandshakeResult r;
  r.status = 101;
  r.binary_protocol = binary;
  r.response =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " +
      AcceptKey(*key) + "\r\n";
  if (binary) r.response += "Sec-WebSocket-Protocol: binary\r\n";
  r.response += "\r\n";
  return r;
}

// --- decoder ---

Decoder::Decoder(DecoderLimits limits) : limits_(limits) {}

DecodeStatus Decoder::Fail(uint16_t code, const char* reason) {
  stage_ = Stage::kError;
  error_code_ = code;
  error_reason_ = reason;
  control_payload_.clear();
  return DecodeStatus::kError;
}

// Bytes of header needed once the first two are known.
static size_t HeaderLength(const uint8_t* h) {
  size_t n = 2;
  if (h[1] & 0x80) n += 4;
  const uint8_t len7 = h[1] & 0x7f;
  if (len7 == 126) n += 2;
  if (len7 == 127) n += 8;
  return n;
}

bool Decoder::StartFrame() {
  const uint8_t len7 = header_[1] & 0x7f;
  size_t pos = 2;
  uint64_t len = len7;
  if (len7 == 126) {
    len = (uint64_t{header_[2]} << 8) | header_[3];
    pos = 4;
    if (len < 126) return Fail(kCloseProtocolError, "non-minimal frame length"), false;
  } else if (len7 == 127) {
    len = 0;
    for (size_t i = 0; i < 8; ++i) len = (len << 8) | header_[2 + i];
    pos = 10;
    if (len >> 63) return Fail(kCloseProtocolError, "frame length with the top bit set"), false;
    if (len < 65536) return Fail(kCloseProtocolError, "non-minimal frame length"), false;
  }
  if (masked_) std::memcpy(mask_, header_ + pos, 4);
  if (!IsControl(opcode_)) {
    if (len > limits_.max_frame_payload) return Fail(kCloseTooBig, "frame over the size limit"), false;
    if (opcode_ != Opcode::kContinuation) message_bytes_ = 0;
    if (len > limits_.max_message_payload - message_bytes_) {
      return Fail(kCloseTooBig, "message over the size limit"), false;
    }
    message_bytes_ += len;
    if (opcode_ != Opcode::kContinuation) in_message_ = !fin_;
  }
  remaining_ = len;
  mask_pos_ = 0;
  control_payload_.clear();
  stage_ = Stage::kPayload;
  return true;
}

bool Decoder::FinishControl(std::vector<ControlFrame>* control) {
  ControlFrame f;
  f.opcode = opcode_;
  f.payload = std::move(control_payload_);
  control_payload_.clear();
  if (opcode_ == Opcode::kClose) {
    if (f.payload.size() == 1) return Fail(kCloseProtocolError, "close frame with a 1-byte payload"), false;
    if (f.payload.size() >= 2) {
      f.close_code = static_cast<uint16_t>((static_cast<uint8_t>(f.payload[0]) << 8) | static_cast<uint8_t>(f.payload[1]));
      if (!IsValidCloseCode(f.close_code)) return Fail(kCloseProtocolError, "invalid close code"), false;
      f.close_reason = f.payload.substr(2);
      if (!IsValidUtf8(f.close_reason)) return Fail(kCloseInvalidPayload, "close reason is not UTF-8"), false;
    }
  }
  control->push_back(std::move(f));
  return true;
}

DecodeStatus Decoder::Feed(std::string_view bytes, std::string* data, std::vector<ControlFrame>* control,
                           size_t* consumed) {
  *consumed = 0;
  if (stage_ == Stage::kError) return DecodeStatus::kError;
  if (stage_ == Stage::kClosed) return DecodeStatus::kClosed;
  const auto* in = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t pos = 0;
  while (pos < bytes.size() || (stage_ == Stage::kPayload && remaining_ == 0)) {
    if (stage_ == Stage::kHeader) {
      const size_t need = header_len_ < 2 ? 2 : HeaderLength(header_);
      const size_t n = std::min(need - header_len_, bytes.size() - pos);
      std::memcpy(header_ + header_len_, in + pos, n);
      header_len_ += n;
      pos += n;
      *consumed = pos;
      if (header_len_ < 2) break;
      if (header_len_ == 2 && need == 2) {
        // First two bytes: every check that needs no length, at once.
        const uint8_t b0 = header_[0], b1 = header_[1];
        fin_ = (b0 & 0x80) != 0;
        opcode_ = static_cast<Opcode>(b0 & 0x0f);
        masked_ = (b1 & 0x80) != 0;
        const uint8_t len7 = b1 & 0x7f;
        if (b0 & 0x70) return Fail(kCloseProtocolError, "reserved bits set");
        switch (opcode_) {
          case Opcode::kContinuation:
          case Opcode::kText:
          case Opcode::kBinary:
          case Opcode::kClose:
          case Opcode::kPing:
          case Opcode::kPong:
            break;
          default:
            return Fail(kCloseProtocolError, "reserved opcode");
        }
        if (limits_.mask == MaskPolicy::kRequired && !masked_) return Fail(kCloseProtocolError, "unmasked client frame");
        if (limits_.mask == MaskPolicy::kConsistent) {
          const StreamMask m = masked_ ? StreamMask::kMasked : StreamMask::kUnmasked;
          if (stream_mask_ == StreamMask::kUnknown) stream_mask_ = m;
          if (stream_mask_ != m) return Fail(kCloseProtocolError, "client frames switch between masked and unmasked");
        }
        if (IsControl(opcode_)) {
          if (!fin_) return Fail(kCloseProtocolError, "fragmented control frame");
          if (len7 > kMaxControlPayload) return Fail(kCloseProtocolError, "control frame over 125 bytes");
        } else if (opcode_ == Opcode::kContinuation) {
          if (!in_message_) return Fail(kCloseProtocolError, "continuation frame without a message");
        } else if (in_message_) {
          return Fail(kCloseProtocolError, "new message inside a fragmented one");
        }
        if (HeaderLength(header_) > 2) continue;
      }
      if (header_len_ < HeaderLength(header_)) break;
      if (!StartFrame()) return DecodeStatus::kError;
      continue;
    }
    // Payload.
    const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, bytes.size() - pos));
    std::string* sink = IsControl(opcode_) ? &control_payload_ : data;
    const size_t start = sink->size();
    sink->append(bytes.substr(pos, n));
    if (masked_) {
      char* p = sink->data() + start;
      for (size_t i = 0; i < n; ++i) p[i] = static_cast<char>(p[i] ^ mask_[(mask_pos_ + i) & 3]);
    }
    mask_pos_ += n;
    remaining_ -= n;
    pos += n;
    *consumed = pos;
    if (remaining_ > 0) break;
    // Frame complete.
    stage_ = Stage::kHeader;
    header_len_ = 0;
    if (IsControl(opcode_)) {
      if (!FinishControl(control)) return DecodeStatus::kError;
      if (opcode_ == Opcode::kClose) {
        stage_ = Stage::kClosed;
        return DecodeStatus::kClosed;
      }
    } else if (fin_) {
      in_message_ = false;
    }
  }
  return DecodeStatus::kOk;
}

// --- encoder ---

void AppendFrameHeader(Opcode opcode, uint64_t payload_len, std::string* out, bool fin) {
  out->push_back(static_cast<char>((fin ? 0x80 : 0) | static_cast<uint8_t>(opcode)));
  if (payload_len <= 125) {
    out->push_back(static_cast<char>(payload_len));
  } else if (payload_len < 65536) {
    out->push_back(static_cast<char>(126));
    out->push_back(static_cast<char>(payload_len >> 8));
    out->push_back(static_cast<char>(payload_len & 0xff));
  } else {
    out->push_back(static_cast<char>(127));
    for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>((payload_len >> shift) & 0xff));
  }
}

void AppendBinaryFrame(std::string_view payload, std::string* out) {
  AppendFrameHeader(Opcode::kBinary, payload.size(), out);
  out->append(payload);
}

void AppendPong(std::string_view payload, std::string* out) {
  payload = payload.substr(0, kMaxControlPayload);
  AppendFrameHeader(Opcode::kPong, payload.size(), out);
  out->append(payload);
}

void AppendClose(uint16_t code, std::string_view reason, std::string* out) {
  size_t n = std::min<size_t>(reason.size(), kMaxControlPayload - 2);
  while (n > 0 && n < reason.size() && (static_cast<uint8_t>(reason[n]) & 0xc0) == 0x80) --n;  // UTF-8 boundary
  AppendFrameHeader(Opcode::kClose, 2 + n, out);
  out->push_back(static_cast<char>(code >> 8));
  out->push_back(static_cast<char>(code & 0xff));
  out->append(reason.substr(0, n));
}

void AppendMaskedFrame(Opcode opcode, std::string_view payload, const uint8_t mask[4], std::string* out, bool fin) {
  const size_t start = out->size();
  AppendFrameHeader(opcode, payload.size(), out, fin);
  (*out)[start + 1] = static_cast<char>((*out)[start + 1] | 0x80);
  out->append(reinterpret_cast<const char*>(mask), 4);
  for (size_t i = 0; i < payload.size(); ++i) out->push_back(static_cast<char>(payload[i] ^ mask[i & 3]));
}

// --- server stream ---

ServerStream::ServerStream(StreamLimits limits) : limits_(limits), decoder_(limits.decoder) {}

Status ServerStream::Fail(ErrorCode code, uint16_t close_code, std::string message) {
  if (!close_sent_) Close(close_code, close_code == kCloseNormal ? "" : message);
  error_ = MakeError(code, std::move(message));
  return *error_;
}

Status ServerStream::Decode(std::string_view wire, std::string* app) {
  if (error_) return *error_;
  size_t used = 0;
  control_.clear();
  const DecodeStatus st = decoder_.Feed(wire, app, &control_, &used);
  for (const ControlFrame& f : control_) {
    if (f.opcode == Opcode::kPing && !close_sent_) {
      if (!TakePing()) {
        return Fail(ErrorCode::kTooLarge, kClosePolicyViolation,
                    "websocket: more than " + std::to_string(limits_.max_pings_per_second) + " pings per second");
      }
      AppendPong(f.payload, &own_);
      if (own_.size() > limits_.max_pending_control) {
        return Fail(ErrorCode::kTooLarge, kClosePolicyViolation, "websocket: pings faster than pongs are sent");
      }
    } else if (f.opcode == Opcode::kClose) {
      std::string msg = "the client closed the WebSocket (code " + std::to_string(f.close_code);
      if (!f.close_reason.empty()) msg += ": " + f.close_reason;
      msg += ")";
      // Echo the code (RFC 6455 5.5.1); "no status" is answered with a normal close.
      const uint16_t reply = f.close_code == kCloseNoStatus ? uint16_t{kCloseNormal} : f.close_code;
      if (!close_sent_) Close(reply, "");
      error_ = MakeError(ErrorCode::kIo, std::move(msg));
      return *error_;
    }
  }
  if (st == DecodeStatus::kError) {
    const uint16_t code = decoder_.error_code();
    return Fail(code == kCloseTooBig ? ErrorCode::kTooLarge : ErrorCode::kMalformed, code,
                "websocket: " + decoder_.error_reason());
  }
  return Status::Ok();
}

bool ServerStream::TakePing() {
  if (limits_.max_pings_per_second == 0) return true;
  const int64_t now = limits_.clock_ms != nullptr
                          ? limits_.clock_ms()
                          : std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now().time_since_epoch())
                                .count();
  const double burst = std::max<uint32_t>(limits_.ping_burst, 1);
  if (ping_last_ms_ < 0) {
    ping_tokens_ = burst;
  } else if (now > ping_last_ms_) {
    ping_tokens_ = std::min(burst, ping_tokens_ + static_cast<double>(now - ping_last_ms_) *
                                                      limits_.max_pings_per_second / 1000);
  }
  ping_last_ms_ = std::max(ping_last_ms_, now);
  if (ping_tokens_ < 1) return false;
  ping_tokens_ -= 1;
  return true;
}

void ServerStream::Encode(std::string_view app, std::string* wire) {
  if (close_sent_) return;
  AppendBinaryFrame(app, wire);
}

std::string ServerStream::TakeOwnOutput() {
  std::string out;
  out.swap(own_);
  return out;
}

void ServerStream::Close(uint16_t code, std::string_view reason) {
  if (close_sent_) return;
  AppendClose(code, reason, &own_);
  close_sent_ = true;
}

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t i = 0, n = s.size();
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

}  // namespace xr::ws
