#include "engine/sniff.h"

#include <cstdio>

namespace xr {
namespace {

// Longest method token accepted before the space ("OPTIONS" is 7; extension methods are
// allowed up to this length so the HTTP layer can answer 501 instead of a silent close).
constexpr size_t kMaxMethodLength = 16;

bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }

// HTTP request line start: [A-Z]{1,16} then SP. kNeedMore while it may still become one.
SniffKind SniffMethod(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && i <= kMaxMethodLength && IsUpper(s[i])) ++i;
  if (i == s.size()) return i <= kMaxMethodLength ? SniffKind::kNeedMore : SniffKind::kUnknown;
  if (i > 0 && i <= kMaxMethodLength && s[i] == ' ') return SniffKind::kHttp;
  return SniffKind::kUnknown;
}

SniffKind SniffAll(std::string_view s) {
  if (s.empty()) return SniffKind::kNeedMore;
  const auto b0 = static_cast<uint8_t>(s[0]);
  if (b0 == 'P') {
    // xpra's header is 'P' + protocol flags (0..7, net/header.py:14-17): a letter there means
    // a request line (POST, PUT, PATCH); xpra itself checks only for "POST " (server_core.py:1262).
    if (s.size() < 2) return SniffKind::kNeedMore;
    return IsUpper(s[1]) ? SniffMethod(s) : SniffKind::kXpra;
  }
  if (b0 == 0x16) {
    // TLS record: type 22 (handshake), then protocol version major 3, minor 0..4. xpra looks at
    // the first byte only (server_core.py:1091, :1278); the version bytes reject noise early.
    if (s.size() < 3) return s.size() < 2 || static_cast<uint8_t>(s[1]) == 0x03 ? SniffKind::kNeedMore : SniffKind::kUnknown;
    return static_cast<uint8_t>(s[1]) == 0x03 && static_cast<uint8_t>(s[2]) <= 0x04 ? SniffKind::kTls : SniffKind::kUnknown;
  }
  if (IsUpper(s[0])) return SniffMethod(s);
  return SniffKind::kUnknown;
}

}  // namespace

const char* SniffKindName(SniffKind kind) {
  switch (kind) {
    case SniffKind::kNeedMore: return "need-more";
    case SniffKind::kXpra: return "xpra";
    case SniffKind::kTls: return "tls";
    case SniffKind::kHttp: return "http";
    case SniffKind::kUnknown: return "unknown";
  }
  return "unknown";
}

SniffKind Sniff(std::string_view first, const SniffLimits& limits) {
  const bool capped = first.size() >= limits.max_bytes;
  if (capped) first = first.substr(0, limits.max_bytes);
  SniffKind kind = SniffAll(first);
  if (kind == SniffKind::kNeedMore && capped) return SniffKind::kUnknown;
  return kind;
}

bool ClientHelloOffersHttp11(std::string_view first) {
  static constexpr std::string_view kAlpnHttp11("\x08http/1.1", 9);
  return first.find(kAlpnHttp11) != std::string_view::npos;
}

std::string SniffDescribe(std::string_view first) {
  if (first.empty()) return "no data";
  const auto b0 = static_cast<uint8_t>(first[0]);
  if (b0 == 0x16) return "SSL packet?";
  if (first.substr(0, 4) == "SSH-") return "SSH packet";
  if (SniffMethod(first) == SniffKind::kHttp) {
    return "HTTP " + std::string(first.substr(0, first.find(' '))) + " request";
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "character %#x, not an xpra client?", b0);
  return buf;
}

}  // namespace xr
