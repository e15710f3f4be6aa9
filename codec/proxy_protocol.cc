#include "codec/proxy_protocol.h"

#include <arpa/inet.h>

#include <cstring>

namespace xr::proxy {
namespace {

using Result = Expected<std::optional<ProxyHeader>>;

constexpr std::string_view kV1Prefix = "PROXY ";

Error Malformed(std::string what) { return MakeError(ErrorCode::kMalformed, "PROXY protocol: " + std::move(what)); }

// A port as v1 writes it: 1-5 decimal digits, no leading zero, at most 65535.
std::optional<uint16_t> ParsePort(std::string_view s) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

std::optional<IpAddress> ParseV1Address(std::string_view s, bool v6) {
  // v1 requires the family's own form: no IPv4-mapped IPv6 text in TCP4, no dotted quad in TCP6.
  if (v6 == (s.find(':') == std::string_view::npos)) return std::nullopt;
  auto a = IpAddress::Parse(s);
  if (!a) return std::nullopt;
  if (!v6 && !a->is_v4()) return std::nullopt;
  return a;
}

Result ParseV1(std::string_view data) {
  size_t prefix = std::min(data.size(), kV1Prefix.size());
  if (data.substr(0, prefix) != kV1Prefix.substr(0, prefix)) return Malformed("not a v1 header (expected \"PROXY \")");
  // Every byte before CRLF must be printable ASCII; decide on each as it arrives.
  size_t end = std::string_view::npos;
  for (size_t i = 0; i < data.size() && i < kV1MaxLength; ++i) {
    unsigned char c = static_cast<unsigned char>(data[i]);
    if (c == '\r') {
      if (i + 2 > kV1MaxLength) return Malformed("v1 header: no CRLF within 107 bytes");
      if (i + 1 == data.size()) break;  // the '\n' may still come
      if (data[i + 1] != '\n') return Malformed("v1 header: carriage return without line feed");
      end = i;
      break;
    }
    if (c < 0x20 || c > 0x7e) return Malformed("v1 header: a byte that is not printable ASCII before CRLF");
  }
  if (end == std::string_view::npos) {
    if (data.size() >= kV1MaxLength) return Malformed("v1 header: no CRLF within 107 bytes");
    return std::optional<ProxyHeader>();
  }
  ProxyHeader h;
  h.version = 1;
  h.length = end + 2;
  std::string_view line = data.substr(kV1Prefix.size(), end - kV1Prefix.size());
  std::vector<std::string_view> fields;
  while (true) {
    size_t sp = line.find(' ');
    fields.push_back(line.substr(0, sp));
    if (sp == std::string_view::npos) break;
    line.remove_prefix(sp + 1);
  }
  if (fields[0] == "UNKNOWN") {  // the rest of the line is to be ignored
    h.kind = ProxyHeader::Kind::kUnknown;
    return std::optional<ProxyHeader>(std::move(h));
  }
  bool v6;
  if (fields[0] == "TCP4") {
    v6 = false;
  } else if (fields[0] == "TCP6") {
    v6 = true;
  } else {
    return Malformed("v1 header: protocol must be TCP4, TCP6 or UNKNOWN");
  }
  if (fields.size() != 5) return Malformed("v1 header: expected 4 fields after the protocol, single spaces apart");
  auto src = ParseV1Address(fields[1], v6);
  auto dst = ParseV1Address(fields[2], v6);
  if (!src || !dst) return Malformed(std::string("v1 header: invalid ") + (v6 ? "IPv6" : "IPv4") + " address");
  auto sport = ParsePort(fields[3]);
  auto dport = ParsePort(fields[4]);
  if (!sport || !dport) return Malformed("v1 header: invalid port");
  h.kind = v6 ? ProxyHeader::Kind::kTcp6 : ProxyHeader::Kind::kTcp4;
  h.source = {*src, *sport};
  h.destination = {*dst, *dport};
  return std::optional<ProxyHeader>(std::move(h));
}

uint16_t Be16(const char* p) {
  return static_cast<uint16_t>((static_cast<uint8_t>(p[0]) << 8) | static_cast<uint8_t>(p[1]));
}

Result ParseV2(std::string_view data, const ProxyLimits& limits) {
  size_t sig = std::min(data.size(), kV2Signature.size());
  if (data.substr(0, sig) != kV2Signature.substr(0, sig)) return Malformed("not a v2 header (bad signature)");
  if (data.size() > 12) {
    uint8_t ver_cmd = static_cast<uint8_t>(data[12]);
    if ((ver_cmd >> 4) != 2) return Malformed("v2 header: version nibble is not 2");
    if ((ver_cmd & 0x0f) > 1) return Malformed("v2 header: command is neither LOCAL nor PROXY");
  }
  if (data.size() > 13) {
    uint8_t fam = static_cast<uint8_t>(data[13]);
    if ((fam >> 4) > 3 || (fam & 0x0f) > 2) return Malformed("v2 header: unknown address family or transport");
  }
  if (data.size() < kV2HeaderLength) return std::optional<ProxyHeader>();
  uint8_t cmd = static_cast<uint8_t>(data[12]) & 0x0f;
  uint8_t family = static_cast<uint8_t>(data[13]) >> 4;
  uint8_t transport = static_cast<uint8_t>(data[13]) & 0x0f;
  size_t body = Be16(data.data() + 14);
  if (body > limits.max_v2_body) {
    return MakeError(ErrorCode::kTooLarge, "PROXY protocol: v2 header of " + std::to_string(body) +
                                               " bytes after the fixed part, over the limit of " +
                                               std::to_string(limits.max_v2_body));
  }
  static constexpr size_t kAddrSize[] = {0, 12, 36, 216};  // UNSPEC, INET, INET6, UNIX
  ProxyHeader h;
  h.version = 2;
  h.length = kV2HeaderLength + body;
  size_t addr_size = 0;
  if (cmd == 0) {
    h.kind = ProxyHeader::Kind::kLocal;  // addresses, if any, are to be ignored
  } else if (family == 0) {
    h.kind = ProxyHeader::Kind::kUnknown;
  } else if (family == 3 || transport != 1) {
    return MakeError(ErrorCode::kUnsupported,
                     "PROXY protocol: v2 header for a unix-socket or datagram client; only TCP is relayed");
  } else {
    addr_size = kAddrSize[family];
    if (body < addr_size) return Malformed("v2 header: length too short for its address family");
    h.kind = family == 1 ? ProxyHeader::Kind::kTcp4 : ProxyHeader::Kind::kTcp6;
  }
  if (data.size() < h.length) return std::optional<ProxyHeader>();
  const char* p = data.data() + kV2HeaderLength;
  if (h.kind == ProxyHeader::Kind::kTcp4) {
    uint32_t src, dst;
    std::memcpy(&src, p, 4);
    std::memcpy(&dst, p + 4, 4);
    h.source = {IpAddress::V4(src), Be16(p + 8)};
    h.destination = {IpAddress::V4(dst), Be16(p + 10)};
  } else if (h.kind == ProxyHeader::Kind::kTcp6) {
    h.source = {IpAddress::V6(reinterpret_cast<const uint8_t*>(p)), Be16(p + 32)};
    h.destination = {IpAddress::V6(reinterpret_cast<const uint8_t*>(p + 16)), Be16(p + 34)};
  }
  if (h.kind == ProxyHeader::Kind::kTcp4 || h.kind == ProxyHeader::Kind::kTcp6) {
    // TLVs fill the rest exactly: type, 16-bit length, value.
    std::string_view tlvs(p + addr_size, body - addr_size);
    while (!tlvs.empty()) {
      if (tlvs.size() < 3) return Malformed("v2 header: truncated TLV");
      size_t len = Be16(tlvs.data() + 1);
      if (tlvs.size() < 3 + len) return Malformed("v2 header: TLV longer than the header");
      h.tlvs.push_back(Tlv{static_cast<uint8_t>(tlvs[0]), std::string(tlvs.substr(3, len))});
      tlvs.remove_prefix(3 + len);
    }
  }
  return std::optional<ProxyHeader>(std::move(h));
}

}  // namespace

std::string Endpoint::ToString() const {
  if (address.is_v4()) return address.ToString() + ":" + std::to_string(port);
  return "[" + address.ToString() + "]:" + std::to_string(port);
}

Result ParseProxyHeader(std::string_view data, const ProxyLimits& limits) {
  if (data.empty()) return std::optional<ProxyHeader>();
  bool v1_ok = static_cast<int>(limits.accept) & static_cast<int>(Versions::kV1);
  bool v2_ok = static_cast<int>(limits.accept) & static_cast<int>(Versions::kV2);
  if (data[0] == 'P' && v1_ok) return ParseV1(data);
  if (data[0] == '\r' && v2_ok) return ParseV2(data, limits);
  const char* expected = v1_ok && v2_ok ? "v1 or v2" : v1_ok ? "v1" : "v2";
  return Malformed(std::string("the connection does not start with a ") + expected +
                   " header (is the proxy in front sending it?)");
}

ProxyHeaderReader::State ProxyHeaderReader::Feed(std::string_view bytes) {
  if (state_ != State::kNeedMore) return state_;
  buf_.append(bytes);
  auto r = ParseProxyHeader(buf_, limits_);
  if (!r.ok()) {
    error_ = r.error();
    buf_.clear();
    state_ = State::kFailed;
  } else if (r->has_value()) {
    header_ = std::move(**r);
    state_ = State::kDone;
  }
  return state_;
}

std::string_view ProxyHeaderReader::rest() const {
  return std::string_view(buf_).substr(std::min(header_.length, buf_.size()));
}

}  // namespace xr::proxy
