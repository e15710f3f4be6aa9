#include "codec/websocket.h"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "codec/http_request.h"
#include "tests/codec/testdata/crypto/vectors.h"

namespace xr::ws {
namespace {

using namespace std::string_literals;

const uint8_t kMask[4] = {0x37, 0xfa, 0x21, 0x3d};

std::string Masked(Opcode op, std::string_view payload, bool fin = true) {
  std::string out;
  AppendMaskedFrame(op, payload, kMask, &out, fin);
  return out;
}

// --- handshake ---

http::Request ParseRequest(const std::string& head) {
  http::RequestParser p;
  size_t used = 0;
  REQUIRE(p.Feed(head, &used) == http::ParseStatus::kDone);
  return p.request();
}

std::string UpgradeHead(const std::string& extra, const std::string& protocol = "binary",
                        const std::string& version = "13", const std::string& key = "dGhlIHNhbXBsZSBub25jZQ==") {
  std::string h = "GET / HTTP/1.1\r\nHost: relay:443\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  if (!key.empty()) h += "Sec-WebSocket-Key: " + key + "\r\n";
  if (!version.empty()) h += "Sec-WebSocket-Version: " + version + "\r\n";
  if (!protocol.empty()) h += "Sec-WebSocket-Protocol: " + protocol + "\r\n";
  return h + extra + "\r\n";
}

TEST_CASE("websocket: accept key of RFC 6455 section 1.3") {
  CHECK(AcceptKey("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("websocket: 101 response exactly as xpra writes it, binary echoed") {
  HandshakeResult r = AcceptHandshake(ParseRequest(UpgradeHead("")));
  CHECK(r.status == 101);
  CHECK(r.binary_protocol);
  CHECK(r.reason.empty());
  CHECK(r.response ==
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: binary\r\n\r\n");
}

TEST_CASE("websocket: binary found in a list with spaces and case-insensitive header values") {
  std::string head = "GET /x HTTP/1.1\r\nHost: a\r\nUPGRADE: WebSocket\r\nconnection: keep-alive, upgrade\r\n"
                     "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: base64\r\nSec-WebSocket-Protocol:  chat , binary\r\n\r\n";
  HandshakeResult r = AcceptHandshake(ParseRequest(head));
  CHECK(r.status == 101);
  CHECK(r.binary_protocol);
}

TEST_CASE("websocket: no binary subprotocol is refused like xpra (403) unless allowed") {
  HandshakeResult r = AcceptHandshake(ParseRequest(UpgradeHead("", "")));
  CHECK(r.status == 403);
  CHECK(r.response.rfind("HTTP/1.1 403 Forbidden\r\n", 0) == 0);
  HandshakeOptions lax;
  lax.require_binary_protocol = false;
  r = AcceptHandshake(ParseRequest(UpgradeHead("", "chat")), lax);
  CHECK(r.status == 101);
  CHECK_FALSE(r.binary_protocol);
  CHECK(r.response.find("Sec-WebSocket-Protocol") == std::string::npos);
}

TEST_CASE("websocket: 'binaryx' or 'Binary' is not 'binary'") {
  CHECK(AcceptHandshake(ParseRequest(UpgradeHead("", "binaryx"))).status == 403);
  CHECK(AcceptHandshake(ParseRequest(UpgradeHead("", "Binary"))).status == 403);
}

TEST_CASE("websocket: version 8 gets 426 naming version 13") {
  HandshakeResult r = AcceptHandshake(ParseRequest(UpgradeHead("", "binary", "8")));
  CHECK(r.status == 426);
  CHECK(r.response.find("Sec-WebSocket-Version: 13\r\n") != std::string::npos);
}

TEST_CASE("websocket: missing version is 400") {
  CHECK(AcceptHandshake(ParseRequest(UpgradeHead("", "binary", ""))).status == 400);
}

TEST_CASE("websocket: missing key is 400") {
  CHECK(AcceptHandshake(ParseRequest(UpgradeHead("", "binary", "13", ""))).status == 400);
}

TEST_CASE("websocket: key that is not 16 bytes of base64 is 400") {
  for (const char* key : {"dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===", "dGhlIHNhbXBsZSBub25jZB==",
                          "dGhlIHNhbXBsZSBub25j*Q==", "dGhlIHNhbXBsZSBub25jZQZZ", "c2hvcnQ="}) {
    CAPTURE(key);
    CHECK(AcceptHandshake(ParseRequest(UpgradeHead("", "binary", "13", key))).status == 400);
  }
}

TEST_CASE("websocket: two keys are 400") {
  CHECK(AcceptHandshake(ParseRequest(UpgradeHead("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"))).status == 400);
}

TEST_CASE("websocket: upgrade over POST is 405") {
  std::string head = UpgradeHead("");
  head.replace(0, 3, "POST");
  HandshakeResult r = AcceptHandshake(ParseRequest(head));
  CHECK(r.status == 405);
  CHECK(r.response.find("Allow: GET\r\n") != std::string::npos);
}

TEST_CASE("websocket: upgrade over HTTP/1.0 is 400") {
  std::string head = UpgradeHead("");
  head.replace(head.find("HTTP/1.1"), 8, "HTTP/1.0");
  CHECK(AcceptHandshake(ParseRequest(head)).status == 400);
}

TEST_CASE("websocket: missing Connection: upgrade is 400") {
  std::string head = UpgradeHead("");
  head.replace(head.find("Connection: Upgrade"), 19, "Connection: keep-alive");
  CHECK(AcceptHandshake(ParseRequest(head)).status == 400);
}

TEST_CASE("websocket: Origin checks are off by default (as in xpra)") {
  CHECK(AcceptHandshake(ParseRequest(UpgradeHead("Origin: https://evil.example\r\n"))).status == 101);
}

TEST_CASE("websocket: same_origin: the Origin must name the Host") {
  HandshakeOptions o;
  o.same_origin = true;
  CHECK(AcceptHandshake(ParseRequest(UpgradeHead("Origin: https://relay:443\r\n")), o).status == 101);
  CHECK(AcceptHandshake(ParseRequest(UpgradeHead("Origin: https://RELAY:443\r\n")), o).status == 101);
  HandshakeResult r = AcceptHandshake(ParseRequest(UpgradeHead("Origin: https://evil.example\r\n")), o);
  CHECK(r.status == 403);
  CHECK(r.reason == "websocket Origin not allowed");
  CHECK(AcceptHandshake(ParseRequest(UpgradeHead("Origin: null\r\n")), o).status == 403);
  CHECK(AcceptHandshake(ParseRequest(UpgradeHead("Origin: https://relay\r\n")), o).status == 403);  // port differs
  CHECK(AcceptHandshake(ParseRequest(UpgradeHead("Origin: https://relay:443\r\nOrigin: https://relay:443\r\n")), o)
            .status == 403);
  // No Origin: not a browser (xpra's own client sends none).
  CHECK(AcceptHandshake(ParseRequest(UpgradeHead("")), o).status == 101);
}

TEST_CASE("websocket: allowed_origins lists the pages that may connect") {
  HandshakeOptions o;
  o.allowed_origins = {"https://portal.example"};
  CHECK(AcceptHandshake(ParseRequest(UpgradeHead("Origin: https://portal.example\r\n")), o).status == 101);
  CHECK(AcceptHandshake(ParseRequest(UpgradeHead("Origin: https://relay:443\r\n")), o).status == 403);
  CHECK(AcceptHandshake(ParseRequest(UpgradeHead("Origin: https://portal.example.evil\r\n")), o).status == 403);
}

TEST_CASE("websocket: error responses say nothing of the request") {
  HandshakeResult r = AcceptHandshake(ParseRequest(UpgradeHead("", "secret-proto")));
  CHECK(r.response.find("secret") == std::string::npos);
  CHECK(r.reason.find("secret") == std::string::npos);
}

// --- decoder ---

struct Decoded {
  DecodeStatus status = DecodeStatus::kOk;
  std::string data;
  std::vector<ControlFrame> control;
  size_t consumed = 0;
  uint16_t error_code = 0;
  std::string reason;
};

Decoded Decode(std::string_view in, size_t step, DecoderLimits limits = {}) {
  Decoder d(limits);
  Decoded out;
  size_t pos = 0;
  do {
    size_t n = step == 0 ? in.size() : std::min(step, in.size() - pos);
    size_t used = 0;
    out.status = d.Feed(in.substr(pos, n), &out.data, &out.control, &used);
    out.consumed += used;
    pos += n;
  } while (out.status == DecodeStatus::kOk && pos < in.size());
  out.error_code = d.error_code();
  out.reason = d.error_reason();
  return out;
}

// Decodes whole and byte by byte; both agree; returns the whole outcome.
Decoded DecodeBoth(std::string_view in, DecoderLimits limits = {}) {
  Decoded whole = Decode(in, 0, limits);
  Decoded bytes = Decode(in, 1, limits);
  CHECK(whole.status == bytes.status);
  CHECK(whole.error_code == bytes.error_code);
  if (whole.status != DecodeStatus::kError) {
    CHECK(whole.data == bytes.data);
    CHECK(whole.consumed == bytes.consumed);
    CHECK(whole.control.size() == bytes.control.size());
  }
  return whole;
}

void ExpectFail(std::string_view in, uint16_t code, DecoderLimits limits = {}) {
  Decoded d = DecodeBoth(in, limits);
  CHECK(d.status == DecodeStatus::kError);
  CHECK(d.error_code == code);
  CHECK(!d.reason.empty());
}

TEST_CASE("websocket decoder: one masked binary frame") {
  Decoded d = DecodeBoth(Masked(Opcode::kBinary, "P\x01\x00\x00\x00\x00\x00\x05hello"s));
  CHECK(d.status == DecodeStatus::kOk);
  CHECK(d.data == "P\x01\x00\x00\x00\x00\x00\x05hello"s);
  CHECK(d.control.empty());
}

TEST_CASE("websocket decoder: text frames are data, as xpra treats them") {
  CHECK(DecodeBoth(Masked(Opcode::kText, "abc")).data == "abc");
}

TEST_CASE("websocket decoder: 16-bit and 64-bit lengths") {
  const std::string mid(300, 'm'), big(70000, 'b');
  Decoded d = DecodeBoth(Masked(Opcode::kBinary, mid) + Masked(Opcode::kBinary, big));
  CHECK(d.status == DecodeStatus::kOk);
  CHECK(d.data == mid + big);
}

TEST_CASE("websocket decoder: fragmented message with a ping between fragments") {
  std::string in = Masked(Opcode::kBinary, "frag", false) + Masked(Opcode::kPing, "p1") +
                   Masked(Opcode::kContinuation, "ment", false) + Masked(Opcode::kContinuation, "ed") +
                   Masked(Opcode::kBinary, "!");
  Decoded d = DecodeBoth(in);
  CHECK(d.status == DecodeStatus::kOk);
  CHECK(d.data == "fragmented!");
  REQUIRE(d.control.size() == 1);
  CHECK(d.control[0].opcode == Opcode::kPing);
  CHECK(d.control[0].payload == "p1");
}

TEST_CASE("websocket decoder: data is handed out before the frame ends") {
  Decoder dec;
  std::string frame = Masked(Opcode::kBinary, std::string(1000, 'x'));
  std::string data;
  std::vector<ControlFrame> control;
  size_t used = 0;
  CHECK(dec.Feed(std::string_view(frame).substr(0, 500), &data, &control, &used) == DecodeStatus::kOk);
  CHECK(data == std::string(500 - 8, 'x'));  // 2 + 2 length + 4 mask bytes of header
}

TEST_CASE("websocket decoder: empty frames and a pong") {
  Decoded d = DecodeBoth(Masked(Opcode::kBinary, "") + Masked(Opcode::kPong, "") + Masked(Opcode::kBinary, "z"));
  CHECK(d.status == DecodeStatus::kOk);
  CHECK(d.data == "z");
  REQUIRE(d.control.size() == 1);
  CHECK(d.control[0].opcode == Opcode::kPong);
}

TEST_CASE("websocket decoder: close with code and reason stops before the next bytes") {
  std::string close = Masked(Opcode::kClose, "\x03\xe8" "bye");
  Decoded d = DecodeBoth(Masked(Opcode::kBinary, "a") + close + Masked(Opcode::kBinary, "after"));
  CHECK(d.status == DecodeStatus::kClosed);
  CHECK(d.data == "a");
  CHECK(d.consumed == 7 + close.size());
  REQUIRE(d.control.size() == 1);
  CHECK(d.control[0].close_code == 1000);
  CHECK(d.control[0].close_reason == "bye");
}

TEST_CASE("websocket decoder: close without payload is code 1005") {
  Decoded d = DecodeBoth(Masked(Opcode::kClose, ""));
  CHECK(d.status == DecodeStatus::kClosed);
  REQUIRE(d.control.size() == 1);
  CHECK(d.control[0].close_code == kCloseNoStatus);
}

TEST_CASE("websocket decoder: unmasked frames (xpra's own client) accepted by default and by kAny") {
  CHECK(DecodeBoth("\x82\x03" "abc" "\x82\x01" "d"s).data == "abcd");
  DecoderLimits any;
  any.mask = MaskPolicy::kAny;
  CHECK(DecodeBoth("\x82\x03" "abc"s + Masked(Opcode::kBinary, "d") + "\x82\x01" "e"s, any).data == "abcde");
}

// --- malformed frames: one test each, whole and byte by byte ---
TEST_CASE("websocket decoder: unmasked client frame with MaskPolicy::kRequired -> 1002") {
  DecoderLimits strict;
  strict.mask = MaskPolicy::kRequired;
  ExpectFail("\x82\x03" "abc"s, kCloseProtocolError, strict);
  CHECK(DecodeBoth(Masked(Opcode::kBinary, "abc"), strict).data == "abc");
}
TEST_CASE("websocket decoder: masked then unmasked -> 1002") {
  ExpectFail(Masked(Opcode::kBinary, "a") + "\x82\x01" "b"s, kCloseProtocolError);
}
TEST_CASE("websocket decoder: unmasked then masked -> 1002") {
  ExpectFail("\x82\x01" "b"s + Masked(Opcode::kPing, "p"), kCloseProtocolError);
}
TEST_CASE("websocket decoder: RSV1 set -> 1002") { ExpectFail("\xc2\x80" "abcd"s, kCloseProtocolError); }
TEST_CASE("websocket decoder: RSV2 set -> 1002") { ExpectFail("\xa2\x80" "abcd"s, kCloseProtocolError); }
TEST_CASE("websocket decoder: RSV3 set -> 1002") { ExpectFail("\x92\x80" "abcd"s, kCloseProtocolError); }
TEST_CASE("websocket decoder: reserved data opcode 3 -> 1002") { ExpectFail("\x83\x80" "abcd"s, kCloseProtocolError); }
TEST_CASE("websocket decoder: reserved control opcode 0xB -> 1002") { ExpectFail("\x8b\x80" "abcd"s, kCloseProtocolError); }
TEST_CASE("websocket decoder: fragmented ping -> 1002") {
  ExpectFail(Masked(Opcode::kPing, "x", false), kCloseProtocolError);
}
TEST_CASE("websocket decoder: ping over 125 bytes -> 1002") {
  ExpectFail(Masked(Opcode::kPing, std::string(126, 'p')), kCloseProtocolError);
}
TEST_CASE("websocket decoder: continuation without a message -> 1002") {
  ExpectFail(Masked(Opcode::kContinuation, "x"), kCloseProtocolError);
}
TEST_CASE("websocket decoder: new data frame inside a fragmented message -> 1002") {
  ExpectFail(Masked(Opcode::kBinary, "a", false) + Masked(Opcode::kBinary, "b"), kCloseProtocolError);
}
TEST_CASE("websocket decoder: 16-bit length under 126 -> 1002") { ExpectFail("\x82\xfe\x00\x05" "abcd"s, kCloseProtocolError); }
TEST_CASE("websocket decoder: 64-bit length under 65536 -> 1002") {
  ExpectFail("\x82\xff\x00\x00\x00\x00\x00\x00\x01\x00" "abcd"s, kCloseProtocolError);
}
TEST_CASE("websocket decoder: 64-bit length with the top bit set -> 1002") {
  ExpectFail("\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00" "abcd"s, kCloseProtocolError);
}
TEST_CASE("websocket decoder: frame over the size bound -> 1009 from its header alone") {
  DecoderLimits limits;
  limits.max_frame_payload = 1000;
  // Only the header: the decoder refuses before any payload arrives.
  ExpectFail("\x82\xfe\x03\xe9" "abcd"s, kCloseTooBig, limits);
  CHECK(DecodeBoth(Masked(Opcode::kBinary, std::string(1000, 'a')), limits).status == DecodeStatus::kOk);
}
TEST_CASE("websocket decoder: fragmented message over the size bound -> 1009") {
  DecoderLimits limits;
  limits.max_frame_payload = 100;
  limits.max_message_payload = 150;
  const std::string f(80, 'f');
  ExpectFail(Masked(Opcode::kBinary, f, false) + Masked(Opcode::kContinuation, f), kCloseTooBig, limits);
  // Each message counts afresh.
  CHECK(DecodeBoth(Masked(Opcode::kBinary, f) + Masked(Opcode::kBinary, f), limits).status == DecodeStatus::kOk);
}
TEST_CASE("websocket decoder: close with a 1-byte payload -> 1002") {
  ExpectFail(Masked(Opcode::kClose, "\x03"), kCloseProtocolError);
}
TEST_CASE("websocket decoder: close with an invalid code -> 1002") {
  for (uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 2999, 5000}) {
    CAPTURE(code);
    std::string payload = {static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
    ExpectFail(Masked(Opcode::kClose, payload), kCloseProtocolError);
  }
}
TEST_CASE("websocket decoder: close reason that is not UTF-8 -> 1007") {
  ExpectFail(Masked(Opcode::kClose, "\x03\xe8\xc3\x28"s), kCloseInvalidPayload);
}
TEST_CASE("websocket decoder: errors are sticky") {
  Decoder d;
  std::string data;
  std::vector<ControlFrame> control;
  size_t used = 0;
  REQUIRE(d.Feed("\xc2\x81" "abcdx"s, &data, &control, &used) == DecodeStatus::kError);
  CHECK(d.Feed(Masked(Opcode::kBinary, "ok"), &data, &control, &used) == DecodeStatus::kError);
  CHECK(data.empty());
}

// --- encoder ---

TEST_CASE("websocket encoder: server frames are unmasked, FIN set, minimal length") {
  std::string out;
  AppendFrameHeader(Opcode::kBinary, 125, &out);
  CHECK(out == "\x82\x7d"s);
  out.clear();
  AppendFrameHeader(Opcode::kBinary, 126, &out);
  CHECK(out == "\x82\x7e\x00\x7e"s);
  out.clear();
  AppendFrameHeader(Opcode::kBinary, 65535, &out);
  CHECK(out == "\x82\x7e\xff\xff"s);
  out.clear();
  AppendFrameHeader(Opcode::kBinary, 65536, &out);
  CHECK(out == "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"s);
  out.clear();
  AppendFrameHeader(Opcode::kBinary, 3, &out, /*fin=*/false);
  CHECK(out == "\x02\x03"s);
}

TEST_CASE("websocket encoder: frames read back by a decoder that accepts unmasked frames") {
  std::string out;
  AppendBinaryFrame(std::string(70000, 'q'), &out);
  AppendPong("pp", &out);
  AppendClose(kCloseTooBig, "too big", &out);
  DecoderLimits lax;
  lax.mask = MaskPolicy::kAny;
  Decoded d = DecodeBoth(out, lax);
  CHECK(d.status == DecodeStatus::kClosed);
  CHECK(d.data == std::string(70000, 'q'));
  REQUIRE(d.control.size() == 2);
  CHECK(d.control[0].payload == "pp");
  CHECK(d.control[1].close_code == kCloseTooBig);
  CHECK(d.control[1].close_reason == "too big");
}

TEST_CASE("websocket encoder: close reason cut to 123 bytes on a UTF-8 boundary") {
  std::string reason(122, 'r');
  reason += "\xc3\xa9\xc3\xa9";  // 2-byte characters straddling the cut
  std::string out;
  AppendClose(kCloseNormal, reason, &out);
  REQUIRE(static_cast<uint8_t>(out[1]) <= 125);
  CHECK(out.size() == 2 + 2 + 122);
  CHECK(IsValidUtf8(out.substr(4)));
  out.clear();
  AppendPong(std::string(200, 'p'), &out);
  CHECK(out.size() == 2 + 125);
}

TEST_CASE("websocket: UTF-8 validation") {
  CHECK(IsValidUtf8("plain"));
  CHECK(IsValidUtf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
  CHECK_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong
  CHECK_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  CHECK_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // over U+10FFFF
  CHECK_FALSE(IsValidUtf8("\xe2\x82"));          // truncated
  CHECK_FALSE(IsValidUtf8("\x80"));
}

// --- server stream ---

std::string ServerCloseFrame(uint16_t code, std::string_view reason = {}) {
  std::string out;
  AppendClose(code, reason, &out);
  return out;
}

TEST_CASE("websocket stream: data out, pings answered, pongs ignored, whole and byte by byte") {
  const std::string in = Masked(Opcode::kBinary, "P\x01" "abc") + Masked(Opcode::kPing, "p1") +
                         Masked(Opcode::kPong, "ignored") + Masked(Opcode::kBinary, "def", false) +
                         Masked(Opcode::kPing, "p2") + Masked(Opcode::kContinuation, "ghi");
  for (size_t step : {in.size(), size_t{1}, size_t{5}}) {
    CAPTURE(step);
    ServerStream stream;
    std::string app, own;
    for (size_t pos = 0; pos < in.size(); pos += step) {
      REQUIRE(stream.Decode(std::string_view(in).substr(pos, step), &app).ok());
      own += stream.TakeOwnOutput();
    }
    CHECK(app == "P\x01" "abcdefghi");
    std::string pongs;
    AppendPong("p1", &pongs);
    AppendPong("p2", &pongs);
    CHECK(own == pongs);
  }
}

TEST_CASE("websocket stream: Encode makes one binary frame") {
  ServerStream stream;
  std::string wire = "x";
  stream.Encode("hello", &wire);
  CHECK(wire == "x\x82\x05hello");
}

TEST_CASE("websocket stream: a close from the client is echoed and ends the stream") {
  ServerStream stream;
  std::string app;
  Status st = stream.Decode(Masked(Opcode::kClose, "\x03\xe9" "bye") + Masked(Opcode::kBinary, "late"), &app);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message == "the client closed the WebSocket (code 1001: bye)");
  CHECK(stream.TakeOwnOutput() == ServerCloseFrame(1001));
  CHECK(stream.close_sent());
  CHECK(app.empty());
  // Sticky, and nothing more is sent.
  CHECK_FALSE(stream.Decode(Masked(Opcode::kPing, "x"), &app).ok());
  CHECK(stream.TakeOwnOutput().empty());
  std::string wire;
  stream.Encode("data", &wire);
  CHECK(wire.empty());
}

TEST_CASE("websocket stream: a close without a code is answered with 1000") {
  ServerStream stream;
  std::string app;
  CHECK_FALSE(stream.Decode(Masked(Opcode::kClose, ""), &app).ok());
  CHECK(stream.TakeOwnOutput() == ServerCloseFrame(kCloseNormal));
}

TEST_CASE("websocket stream: a protocol violation sends close 1002 and fails") {
  ServerStream stream;
  std::string app;
  Status st = stream.Decode("\xc2\x83" "abcdxyz", &app);  // RSV1 without an extension
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kMalformed);
  CHECK(st.error().message == "websocket: reserved bits set");
  CHECK(stream.TakeOwnOutput() == ServerCloseFrame(kCloseProtocolError, "websocket: reserved bits set"));
}

TEST_CASE("websocket stream: an oversized frame sends close 1009") {
  StreamLimits limits;
  limits.decoder.max_frame_payload = 100;
  ServerStream stream(limits);
  std::string app;
  Status st = stream.Decode(Masked(Opcode::kBinary, std::string(101, 'x')), &app);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kTooLarge);
  const std::string own = stream.TakeOwnOutput();
  REQUIRE(own.size() >= 4);
  CHECK(static_cast<uint8_t>(own[0]) == 0x88);  // FIN + close
  CHECK(own.substr(2, 2) == "\x03\xf1");          // 1009
}

TEST_CASE("websocket stream: pings faster than pongs are taken -> close 1008") {
  StreamLimits limits;
  limits.max_pending_control = 200;
  std::string pings;
  for (int i = 0; i < 10; ++i) pings += Masked(Opcode::kPing, std::string(50, 'p'));
  {
    ServerStream stream(limits);  // taken after every ping: fine
    std::string app;
    for (int i = 0; i < 10; ++i) {
      REQUIRE(stream.Decode(Masked(Opcode::kPing, std::string(50, 'p')), &app).ok());
      CHECK(stream.TakeOwnOutput().size() == 52);
    }
  }
  ServerStream stream(limits);  // all in one read: over the bound
  std::string app;
  Status st = stream.Decode(pings, &app);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kTooLarge);
  CHECK(stream.close_sent());
}

int64_t g_fake_ms = 0;
int64_t FakeClock() { return g_fake_ms; }

TEST_CASE("websocket stream: pings over the rate (a burst, then per second) -> close 1008") {
  StreamLimits limits;
  limits.max_pings_per_second = 2;
  limits.ping_burst = 3;
  limits.clock_ms = FakeClock;
  g_fake_ms = 10000;
  ServerStream stream(limits);
  std::string app;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(stream.Decode(Masked(Opcode::kPing, "p"), &app).ok());  // the burst
    CHECK(stream.TakeOwnOutput().size() == 3);                      // each answered
  }
  g_fake_ms += 500;  // one more ping at 2 per second
  REQUIRE(stream.Decode(Masked(Opcode::kPing, "p"), &app).ok());
  stream.TakeOwnOutput();
  Status st = stream.Decode(Masked(Opcode::kPing, "p"), &app);  // none left
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kTooLarge);
  CHECK(st.error().message.find("pings per second") != std::string::npos);
  CHECK(stream.close_sent());
  CHECK(stream.TakeOwnOutput() == ServerCloseFrame(kClosePolicyViolation, "websocket: more than 2 pings per second"));
}

TEST_CASE("websocket stream: pings at the rate go on for ever; data frames do not count") {
  StreamLimits limits;
  limits.max_pings_per_second = 10;
  limits.ping_burst = 1;
  limits.clock_ms = FakeClock;
  g_fake_ms = 0;
  ServerStream stream(limits);
  std::string app;
  for (int i = 0; i < 100; ++i) {
    g_fake_ms += 100;
    REQUIRE(stream.Decode(Masked(Opcode::kPing, "") + Masked(Opcode::kBinary, "data"), &app).ok());
  }
  CHECK(app.size() == 400);
}

TEST_CASE("websocket stream: Close from the relay is sent once and stops Encode") {
  ServerStream stream;
  stream.Close(kCloseGoingAway, "relay shutting down");
  stream.Close(kCloseNormal, "again");
  CHECK(stream.TakeOwnOutput() == ServerCloseFrame(kCloseGoingAway, "relay shutting down"));
  std::string wire;
  stream.Encode("x", &wire);
  CHECK(wire.empty());
}

// --- golden vectors from xpra 3.1.3's own code (tools/golden/websocket.py) ---

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + (i >> 8)) & 0xff);
  return s;
}

TEST_CASE("websocket golden: the 101 response is byte for byte what xpra writes; refusals match xpra's") {
  auto records = testing::LoadGoldenVectors("tests/codec/testdata/websocket/handshake.txt");
  REQUIRE(records.size() == 7);
  for (const auto& rec : records) {
    CAPTURE(rec.raw("name_str"));
    std::string head = "GET / HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    if (rec.has("sec_websocket_key_str")) head += "Sec-WebSocket-Key: " + rec.raw("sec_websocket_key_str") + "\r\n";
    if (rec.has("sec_websocket_version_str")) {
      head += "Sec-WebSocket-Version: " + rec.raw("sec_websocket_version_str") + "\r\n";
    }
    if (rec.has("sec_websocket_protocol_str")) {
      head += "Sec-WebSocket-Protocol: " + rec.raw("sec_websocket_protocol_str") + "\r\n";
    }
    HandshakeResult r = AcceptHandshake(ParseRequest(head + "\r\n"));
    if (rec.num("accept_int") == 1) {
      CHECK(r.status == 101);
      CHECK(r.response == rec.bytes("response"));
    } else {
      CHECK(r.status >= 400);
      CHECK(r.status < 500);
    }
  }
}

TEST_CASE("websocket golden: server frames equal xpra's; xpra's client frames decode, masked or (its default) not") {
  auto records = testing::LoadGoldenVectors("tests/codec/testdata/websocket/frames.txt");
  REQUIRE(records.size() == 20);
  const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  std::string client_stream, want_data;
  std::string default_stream, want_default;
  std::vector<std::string> want_pings;
  for (const auto& rec : records) {
    const auto op = static_cast<Opcode>(rec.num("opcode_int"));
    const size_t n = static_cast<size_t>(rec.num("payload_len_int"));
    const bool fin = rec.num("fin_int") == 1;
    const std::string payload = Pattern(n);
    CAPTURE(rec.raw("kind_str"));
    CAPTURE(n);
    if (rec.raw("kind_str") == "server") {
      std::string ours;
      AppendFrameHeader(op, n, &ours, fin);
      CHECK(ours == rec.bytes("header"));
      if (rec.has("body")) CHECK(rec.bytes("body") == payload);
      continue;
    }
    if (rec.raw("kind_str") == "client_default") {
      // What xpra 3.1.3's own client sends by default: unmasked (XPRA_WEBSOCKET_MASK=False).
      CHECK(rec.num("masked_int") == 0);
      default_stream += rec.bytes("header") + (rec.has("body") ? rec.bytes("body") : payload);
      want_default += payload;
      continue;
    }
    std::string ours;
    AppendMaskedFrame(op, payload, mask, &ours, fin);
    const std::string header = rec.bytes("header");
    CHECK(ours.substr(0, header.size()) == header);
    if (rec.has("body")) CHECK(ours.substr(header.size()) == rec.bytes("body"));
    client_stream += rec.has("body") ? header + rec.bytes("body") : ours;
    if (op == Opcode::kPing) {
      want_pings.push_back(payload);
    } else {
      want_data += payload;
    }
  }
  Decoded d = DecodeBoth(client_stream);
  CHECK(d.status == DecodeStatus::kOk);
  CHECK(d.data == want_data);
  REQUIRE(d.control.size() == want_pings.size());
  for (size_t i = 0; i < want_pings.size(); ++i) CHECK(d.control[i].payload == want_pings[i]);
  // The default policy lets xpra's own client in; the RFC's strict one would not.
  Decoded xpra_client = DecodeBoth(default_stream);
  CHECK(xpra_client.status == DecodeStatus::kOk);
  CHECK(xpra_client.data == want_default);
  DecoderLimits strict;
  strict.mask = MaskPolicy::kRequired;
  CHECK(Decode(default_stream, 0, strict).status == DecodeStatus::kError);
}

}  // namespace
}  // namespace xr::ws
