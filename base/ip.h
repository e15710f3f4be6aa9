#pragma once
// IpAddress and CidrList: client addresses as 16 bytes (IPv4 held as an IPv4-mapped IPv6
// address, so a dual-stack listener's ::ffff:a.b.c.d peers match IPv4 ranges), and the
// address ranges a trusted option names (--proxy-protocol-from=CIDR,...).

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace xr {

struct IpAddress {
  std::array<uint8_t, 16> bytes{};  // network order; IPv4 as ::ffff:a.b.c.d

  // "192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"; nullopt for anything else (no ports,
  // no brackets, no zone ids, no names).
  static std::optional<IpAddress> Parse(std::string_view text);
  static IpAddress V4(const uint8_t (&a)[4]);
  static IpAddress V4(uint32_t network_order);
  static IpAddress V6(const uint8_t* sixteen);
  // AF_INET / AF_INET6 socket addresses; nullopt for any other family.
  static std::optional<IpAddress> FromSockaddr(const sockaddr* sa, socklen_t len);

  bool is_v4() const;  // an IPv4-mapped address
  // "192.0.2.1" for IPv4 (mapped or not), RFC 5952 text for IPv6.
  std::string ToString() const;
  bool operator==(const IpAddress&) const = default;
};

// One range: an address and a prefix length over its own family (0-32 for IPv4, 0-128 for IPv6).
struct Cidr {
  IpAddress base;       // masked: host bits zero
  int prefix_bits = 0;  // over the 128-bit form (IPv4 /n is stored as /96+n)

  // "10.0.0.0/8", "192.0.2.7" (/32), "2001:db8::/32", "::1" (/128). Host bits set in the
  // address ("10.1.2.3/8") are refused: they usually mean a typo.
  static Expected<Cidr> Parse(std::string_view text);
  bool Contains(const IpAddress& a) const;
  std::string ToString() const;
};

// A comma-separated list of ranges; empty matches nothing.
class CidrList {
 public:
  // "10.0.0.0/8, 192.168.1.7,::1"; the error names the entry at fault.
  static Expected<CidrList> Parse(std::string_view text);
  bool Contains(const IpAddress& a) const;
  bool empty() const { return ranges_.empty(); }
  const std::vector<Cidr>& ranges() const { return ranges_; }
  std::string ToString() const;  // "10.0.0.0/8,192.168.1.7/32"

 private:
  std::vector<Cidr> ranges_;
};

}  // namespace xr
