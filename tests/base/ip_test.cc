#include "base/ip.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <cstring>

namespace xr {
namespace {

IpAddress Ip(const char* text) {
  auto a = IpAddress::Parse(text);
  REQUIRE(a.has_value());
  return *a;
}

TEST_CASE("ip: IPv4 and IPv6 text round-trips") {
  CHECK(Ip("192.0.2.1").ToString() == "192.0.2.1");
  CHECK(Ip("192.0.2.1").is_v4());
  CHECK(Ip("2001:db8:0:0:0:0:0:1").ToString() == "2001:db8::1");
  CHECK(!Ip("2001:db8::1").is_v4());
  CHECK(Ip("::ffff:192.0.2.1") == Ip("192.0.2.1"));
}

TEST_CASE("ip: anything else is refused") {
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "[::1]", "::1%eth0", "1.2.3.4:80", "host", " 1.2.3.4",
                          "1:2:3:4:5:6:7:8:9"}) {
    CAPTURE(bad);
    CHECK(!IpAddress::Parse(bad).has_value());
  }
}

TEST_CASE("ip: from socket addresses; other families give nothing") {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
  auto a = IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&in), sizeof in);
  REQUIRE(a.has_value());
  CHECK(a->ToString() == "10.1.2.3");
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "fe80::2", &in6.sin6_addr);
  CHECK(IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof in6)->ToString() == "fe80::2");
  CHECK(!IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof in).has_value());  // short
  sockaddr un{};
  un.sa_family = AF_UNIX;
  CHECK(!IpAddress::FromSockaddr(&un, sizeof un).has_value());
}

TEST_CASE("cidr: IPv4 ranges match IPv4 and IPv4-mapped peers only inside the prefix") {
  auto c = Cidr::Parse("10.0.0.0/8");
  REQUIRE(c.ok());
  CHECK(c->Contains(Ip("10.255.1.2")));
  CHECK(c->Contains(Ip("::ffff:10.0.0.1")));
  CHECK(!c->Contains(Ip("11.0.0.0")));
  CHECK(!c->Contains(Ip("::a00:1")));  // IPv4-compatible, not mapped: a different address
  CHECK(c->ToString() == "10.0.0.0/8");
  auto odd = Cidr::Parse("192.168.1.128/25");
  REQUIRE(odd.ok());
  CHECK(odd->Contains(Ip("192.168.1.200")));
  CHECK(!odd->Contains(Ip("192.168.1.127")));
}

TEST_CASE("cidr: a bare address is a single host; /0 is everything of the family form") {
  CHECK(Cidr::Parse("192.0.2.7")->Contains(Ip("192.0.2.7")));
  CHECK(!Cidr::Parse("192.0.2.7")->Contains(Ip("192.0.2.8")));
  CHECK(Cidr::Parse("192.0.2.7")->ToString() == "192.0.2.7/32");
  CHECK(Cidr::Parse("::1")->Contains(Ip("::1")));
  CHECK(Cidr::Parse("::1")->ToString() == "::1/128");
  CHECK(Cidr::Parse("0.0.0.0/0")->Contains(Ip("203.0.113.9")));
  CHECK(!Cidr::Parse("0.0.0.0/0")->Contains(Ip("2001:db8::1")));
  CHECK(Cidr::Parse("2001:db8::/32")->Contains(Ip("2001:db8:ffff::1")));
  CHECK(!Cidr::Parse("2001:db8::/32")->Contains(Ip("2001:db9::1")));
}

TEST_CASE("cidr: malformed ranges name the entry") {
  for (const char* bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/-1", "host/8", "10.0.0.0/8/8",
                          "10.1.2.3/8", "2001:db8::1/32"}) {
    CAPTURE(bad);
    auto c = Cidr::Parse(bad);
    REQUIRE(!c.ok());
    CHECK(c.error().message.find(bad) != std::string::npos);
  }
  CHECK(Cidr::Parse("10.1.2.3/8").error().message.find("10.0.0.0/8") != std::string::npos);  // the suggestion
}

TEST_CASE("cidr list: comma-separated, spaces allowed, any entry matches") {
  auto l = CidrList::Parse("10.0.0.0/8, 192.168.1.7 ,::1");
  REQUIRE(l.ok());
  CHECK(l->ranges().size() == 3);
  CHECK(l->Contains(Ip("10.2.3.4")));
  CHECK(l->Contains(Ip("192.168.1.7")));
  CHECK(l->Contains(Ip("::1")));
  CHECK(!l->Contains(Ip("192.168.1.8")));
  CHECK(l->ToString() == "10.0.0.0/8,192.168.1.7/32,::1/128");
  auto none = CidrList::Parse("");
  REQUIRE(none.ok());
  CHECK(none->empty());
  CHECK(!none->Contains(Ip("127.0.0.1")));
  CHECK(!CidrList::Parse("10.0.0.0/8,,::1").ok());
  CHECK(!CidrList::Parse("10.0.0.0/8,").ok());
  CHECK(CidrList::Parse("10.0.0.0/8,bogus").error().message.find("bogus") != std::string::npos);
}

}  // namespace
}  // namespace xr
