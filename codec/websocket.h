#pragma once
// WebSocket (RFC 6455) as xpra 3.1.3's server speaks it (docs/protocol-notes.md "WebSocket as
// xpra 3.1.3's server speaks it"): the opening handshake (version 13, subprotocol "binary"),
// an incremental decoder for client frames and an encoder for server frames. No I/O: bytes in,
// bytes out. Data frames carry the xpra byte stream; message boundaries carry no meaning for
// it, so data payload is handed out as it arrives (never buffered whole).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "codec/http_request.h"

namespace xr::ws {

enum class Opcode : uint8_t { kContinuation = 0x0, kText = 0x1, kBinary = 0x2, kClose = 0x8, kPing = 0x9, kPong = 0xA };

// Close codes the relay sends (RFC 6455 7.4.1).
enum CloseCode : uint16_t {
  kCloseNormal = 1000,
  kCloseGoingAway = 1001,
  kCloseProtocolError = 1002,
  kCloseUnsupportedData = 1003,
  kCloseNoStatus = 1005,  // never sent: stands for "close frame without a code"
  kCloseInvalidPayload = 1007,
  kClosePolicyViolation = 1008,
  kCloseTooBig = 1009,
  kCloseInternalError = 1011,
};

// --- opening handshake ---

struct HandshakeOptions {
  // xpra refuses a client that does not offer "binary" (net/websockets/handler.py:43-45);
  // false: accept it and answer without Sec-WebSocket-Protocol.
  bool require_binary_protocol = true;
  // Cross-site WebSocket hijacking: a page on another site can make a visitor's browser open a
  // WebSocket to the relay, carrying that browser's ambient credentials (a client
  // certificate, an address-based `allow`). Browsers always send Origin; other clients (xpra's
  // own) send none, and a request without one is never refused here. With either check on,
  // an Origin must be listed in allowed_origins (exact "scheme://host[:port]", any case) or,
  // with same_origin, name the request's Host; otherwise 403. xpra 3.1.3 checks neither.
  bool same_origin = false;
  std::vector<std::string> allowed_origins;
};

struct HandshakeResult {
  int status = 0;        // 101 on success, else 400 / 403 / 405 / 426
  std::string response;  // the complete response head to send (101 or a bodyless error)
  std::string reason;    // why it failed, for the log (never peer bytes); empty on success
  bool binary_protocol = false;  // "binary" was offered and echoed
};

// Sec-WebSocket-Accept for a client key: base64(SHA-1(key + 258EAFA5-E914-47DA-95CA-C5AB0DC85B11)).
std::string AcceptKey(std::string_view key);

// Validates a request the caller routed here (request.WantsWebSocket() or Upgrade: websocket)
// against RFC 6455 4.2.1 and builds the answer: GET, HTTP/1.1, Upgrade websocket + Connection
// upgrade, Sec-WebSocket-Key = base64 of 16 bytes, Sec-WebSocket-Version 13 (else 426 with
// "Sec-WebSocket-Version: 13"), subprotocol "binary" per options.
HandshakeResult AcceptHandshake(const http::Request& request, const HandshakeOptions& options = {});

// --- frames ---

// Which client frames may be unmasked. RFC 6455 5.1 wants every client frame masked, and
// browsers always mask; but xpra 3.1.3's own client sends unmasked frames
// (net/websockets/protocol.py:35, :101: XPRA_WEBSOCKET_MASK defaults to False) and xpra's
// server accepts both.
enum class MaskPolicy : uint8_t {
  kRequired,    // RFC 6455: an unmasked client frame -> close 1002 (refuses stock xpra clients)
  kConsistent,  // the first frame decides: all masked (browsers) or all unmasked (xpra's client)
  kAny,         // as xpra's server: masked or not, frame by frame
};

struct DecoderLimits {
  // Largest payload of one frame and of one (fragmented) message; over it -> close 1009.
  // xpra's own packet bound is 16 MiB + its 8-byte header (codec/frame_reader.h FrameLimits).
  uint64_t max_frame_payload = (16u << 20) + 4096;
  uint64_t max_message_payload = (16u << 20) + 4096;
  MaskPolicy mask = MaskPolicy::kConsistent;
};

// A control frame received, complete (payload <= 125 bytes).
struct ControlFrame {
  Opcode opcode = Opcode::kPing;  // kPing, kPong or kClose
  std::string payload;            // ping/pong: the payload; close: the raw payload
  uint16_t close_code = kCloseNoStatus;  // kClose: the code sent, or 1005 when none
  std::string close_reason;              // kClose: the UTF-8 reason (validated)
};

enum class DecodeStatus : uint8_t {
  kOk,      // every byte consumed; outputs appended
  kClosed,  // a close frame arrived (the last ControlFrame); bytes after it are not consumed
  kError,   // protocol violation: close with error_code(); sticky
};

class Decoder {
 public:
  explicit Decoder(DecoderLimits limits = {});

  // Decodes the next bytes from the client. Unmasked data payload (binary and text frames, as
  // xpra treats text as binary) is appended to *data as it arrives, even mid-frame; complete
  // control frames are appended to *control in order. *consumed = bytes used.
  DecodeStatus Feed(std::string_view bytes, std::string* data, std::vector<ControlFrame>* control,
                    size_t* consumed);

  // After kError: the close code to send (1002, 1007 or 1009) and a reason without peer bytes.
  uint16_t error_code() const { return error_code_; }
  const std::string& error_reason() const { return error_reason_; }

  // True between the first and the final frame of a fragmented message.
  bool in_message() const { return in_message_; }

 private:
  enum class Stage : uint8_t { kHeader, kPayload, kClosed, kError };
  DecodeStatus Fail(uint16_t code, const char* reason);
  // Header bytes complete in header_: validates and sets up the payload stage.
  bool StartFrame();
  bool FinishControl(std::vector<ControlFrame>* control);

  DecoderLimits limits_;
  Stage stage_ = Stage::kHeader;
  uint8_t header_[14];
  size_t header_len_ = 0;
  bool fin_ = false;
  Opcode opcode_ = Opcode::kBinary;
  bool masked_ = false;
  uint8_t mask_[4] = {0, 0, 0, 0};
  uint64_t remaining_ = 0;  // payload bytes of the current frame still to come
  uint64_t mask_pos_ = 0;   // payload bytes of the current frame already unmasked
  bool in_message_ = false;
  enum class StreamMask : uint8_t { kUnknown, kMasked, kUnmasked } stream_mask_ = StreamMask::kUnknown;
  uint64_t message_bytes_ = 0;
  std::string control_payload_;
  uint16_t error_code_ = 0;
  std::string error_reason_;
};

// Server frames: FIN set, unmasked (xpra: net/websockets/header.py encode_hybi_header).
// Appends a frame header for `payload_len` bytes of `opcode`; the payload follows.
void AppendFrameHeader(Opcode opcode, uint64_t payload_len, std::string* out, bool fin = true);
// Appends one complete binary frame carrying `payload`.
void AppendBinaryFrame(std::string_view payload, std::string* out);
// Appends a pong echoing `payload` (at most 125 bytes: longer is cut).
void AppendPong(std::string_view payload, std::string* out);
// Appends a close frame with `code` and `reason` (cut to 123 bytes at a UTF-8 boundary).
void AppendClose(uint16_t code, std::string_view reason, std::string* out);

// A client frame (masked with `mask`), for tests and the bench client.
void AppendMaskedFrame(Opcode opcode, std::string_view payload, const uint8_t mask[4], std::string* out,
                       bool fin = true);

// --- a server-side stream: the decoder and encoder with xpra's control-frame behaviour ---

struct StreamLimits {
  DecoderLimits decoder;
  // Control output (pongs) waiting for TakeOwnOutput(); over it the client is pinging faster
  // than it reads: close 1008 (policy violation).
  size_t max_pending_control = 16 * 1024;
  // Pings a client may send over time: a token bucket refilled at max_pings_per_second,
  // holding at most ping_burst; a ping over it -> close 1008. Browsers cannot send pings and
  // xpra's clients ping with xpra packets, so a client over this is flooding. 0: no limit.
  uint32_t max_pings_per_second = 10;
  uint32_t ping_burst = 20;
  // Milliseconds on a monotonic clock (tests set their own); null: std::chrono::steady_clock.
  int64_t (*clock_ms)() = nullptr;
};

// What a relay leg needs from WebSocket, shaped like a transport: wire bytes in, application
// bytes out; application bytes in, one binary frame out; control frames the stream answers on
// its own collected for TakeOwnOutput(). Pings are answered with pongs carrying the same
// payload, pongs ignored, text frames taken as binary (as xpra's protocol.py does).
class ServerStream {
 public:
  explicit ServerStream(StreamLimits limits = {});

  // Decodes bytes received from the client, appending data payload to *app. When the client
  // sends a close frame: the close reply (same code) is queued and an error says
  // "the client closed the WebSocket (code N: reason)". A protocol violation queues a close
  // with its code (1002, 1007, 1008 or 1009) and returns the error. After either, every call
  // returns the same error and nothing more is queued.
  Status Decode(std::string_view wire, std::string* app);

  // Appends one unmasked binary frame carrying `app` to *wire (nothing after a close).
  void Encode(std::string_view app, std::string* wire);

  // The control frames to send now (pongs, a close), moved out.
  std::string TakeOwnOutput();

  // Queues a close frame (relay shutdown, a server error) unless one was sent.
  void Close(uint16_t code, std::string_view reason);

  bool close_sent() const { return close_sent_; }

 private:
  Status Fail(ErrorCode code, uint16_t close_code, std::string message);

  // A ping arrives: false when it is over the ping rate (StreamLimits::max_pings_per_second).
  bool TakePing();

  StreamLimits limits_;
  Decoder decoder_;
  double ping_tokens_ = 0;
  int64_t ping_last_ms_ = -1;
  std::string own_;
  std::vector<ControlFrame> control_;
  bool close_sent_ = false;
  std::optional<Error> error_;
};

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or code points over U+10FFFF).
bool IsValidUtf8(std::string_view s);

}  // namespace xr::ws
