#include "base/ip.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace xr {
namespace {

constexpr std::array<uint8_t, 12> kMappedPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  uint8_t raw[16];
  if (inet_pton(AF_INET, buf, raw) == 1) {
    uint8_t v4[4] = {raw[0], raw[1], raw[2], raw[3]};
    return V4(v4);
  }
  if (inet_pton(AF_INET6, buf, raw) == 1) return V6(raw);
  return std::nullopt;
}

IpAddress IpAddress::V4(const uint8_t (&a)[4]) {
  IpAddress ip;
  std::memcpy(ip.bytes.data(), kMappedPrefix.data(), 12);
  std::memcpy(ip.bytes.data() + 12, a, 4);
  return ip;
}

IpAddress IpAddress::V4(uint32_t network_order) {
  uint8_t a[4];
  std::memcpy(a, &network_order, 4);
  return V4(a);
}

IpAddress IpAddress::V6(const uint8_t* sixteen) {
  IpAddress ip;
  std::memcpy(ip.bytes.data(), sixteen, 16);
  return ip;
}

std::optional<IpAddress> IpAddress::FromSockaddr(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr) return std::nullopt;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in in;
    std::memcpy(&in, sa, sizeof in);
    return V4(in.sin_addr.s_addr);
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 in6;
    std::memcpy(&in6, sa, sizeof in6);
    return V6(in6.sin6_addr.s6_addr);
  }
  return std::nullopt;
}

bool IpAddress::is_v4() const { return std::memcmp(bytes.data(), kMappedPrefix.data(), 12) == 0; }

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  if (is_v4()) {
    inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  }
  return buf;
}

Expected<Cidr> Cidr::Parse(std::string_view text) {
  text = Trim(text);
  std::string_view addr = text;
  std::optional<int> prefix;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    addr = text.substr(0, slash);
    std::string_view bits = text.substr(slash + 1);
    int v = -1;
    auto [p, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), v);
    if (bits.empty() || ec != std::errc() || p != bits.data() + bits.size() || v < 0) {
      return MakeError(ErrorCode::kMalformed, "'" + std::string(text) + "': the prefix length after '/' must be a number");
    }
    prefix = v;
  }
  auto ip = IpAddress::Parse(addr);
  if (!ip) return MakeError(ErrorCode::kMalformed, "'" + std::string(text) + "' is not an IPv4 or IPv6 address range");
  // An address written in IPv4 form counts its prefix over 32 bits; the mapped form over 128.
  bool v4_text = addr.find(':') == std::string_view::npos;
  int family_bits = v4_text ? 32 : 128;
  if (prefix && *prefix > family_bits) {
    return MakeError(ErrorCode::kMalformed, "'" + std::string(text) + "': prefix length over " +
                                                std::to_string(family_bits));
  }
  Cidr c;
  c.prefix_bits = (v4_text ? 96 : 0) + prefix.value_or(family_bits);
  c.base = *ip;
  for (int i = 0; i < 16; ++i) {
    int keep = std::clamp(c.prefix_bits - i * 8, 0, 8);
    c.base.bytes[i] &= keep == 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
  }
  if (c.base != *ip) {
    return MakeError(ErrorCode::kMalformed, "'" + std::string(text) + "': bits set after the prefix length (did you mean " +
                                                c.ToString() + "?)");
  }
  return c;
}

bool Cidr::Contains(const IpAddress& a) const {
  int full = prefix_bits / 8;
  if (std::memcmp(a.bytes.data(), base.bytes.data(), full) != 0) return false;
  int rest = prefix_bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a.bytes[full] & mask) == base.bytes[full];
}

std::string Cidr::ToString() const {
  bool v4 = base.is_v4() && prefix_bits >= 96;
  return base.ToString() + "/" + std::to_string(v4 ? prefix_bits - 96 : prefix_bits);
}

Expected<CidrList> CidrList::Parse(std::string_view text) {
  CidrList list;
  while (true) {
    size_t comma = text.find(',');
    std::string_view item = Trim(text.substr(0, comma));
    if (item.empty()) {
      if (comma == std::string_view::npos && list.ranges_.empty() && Trim(text).empty()) break;
      return MakeError(ErrorCode::kMalformed, "empty entry in the address list");
    }
    auto c = Cidr::Parse(item);
    if (!c.ok()) return c.error();
    list.ranges_.push_back(*c);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return list;
}

bool CidrList::Contains(const IpAddress& a) const {
  for (const auto& r : ranges_) {
    if (r.Contains(a)) return true;
  }
  return false;
}

std::string CidrList::ToString() const {
  std::string out;
  for (const auto& r : ranges_) out += (out.empty() ? "" : ",") + r.ToString();
  return out;
}

}  // namespace xr
