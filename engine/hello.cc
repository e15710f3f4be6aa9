#include "engine/hello.h"

#include <algorithm>
#include <charconv>
#include <cctype>
#include <optional>
#include <string_view>

namespace xr::engine {
namespace {

bool StartsWithAny(std::string_view key, std::initializer_list<std::string_view> prefixes) {
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](std::string_view p) { return key.starts_with(p); });
}

void AddProxyKeys(Value& caps, const ProxyIdentity& proxy) {
  caps.set("proxy", true);
  caps.set("proxy.hostname", std::string_view(proxy.hostname));
  caps.set("proxy.version", std::string_view(proxy.version));
  caps.set("proxy.platform", "linux");
  caps.set("proxy.implementation", "xpra-relay");
}

std::optional<bool> ParseBool(std::string_view v) {
  std::string s(v);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "1" || s == "true" || s == "yes" || s == "on") return true;
  if (s == "0" || s == "false" || s == "no" || s == "off" || s.empty()) return false;
  return std::nullopt;
}

// xpra 6.x: a client listing "ssl-upgrade" in its packet-types lets a server with a certificate
// switch the tcp socket to TLS in place; the relay's server leg is plain, so the server must not.
void DropSslUpgrade(Value& caps) {
  Value* types = caps.find("packet-types");
  if (types == nullptr || !types->is_list()) return;
  std::erase_if(types->as_list(), [](const Value& t) { return t.to_string() == std::string_view("ssl-upgrade"); });
}

}  // namespace

const std::vector<std::string>& RelayDigests() {
  static const std::vector<std::string> digests = {"hmac+sha512", "hmac+sha384", "hmac+sha256",
                                                   "hmac+sha224", "hmac+sha1",   "hmac+md5",
                                                   "hmac"};
  return digests;
}

Expected<std::string> HelloRequest(const Value& caps_value) {
  static constexpr std::string_view kPassed[] = {"info", "id", "screenshot", "connect_test", "detach"};
  Caps caps(caps_value);
  std::vector<std::string> asked;
  if (std::string r = caps.get_string("request"); !r.empty()) asked.push_back(std::move(r));
  if (caps_value.is_dict()) {
    for (const auto& [k, v] : caps_value.as_dict()) {
      auto key = k.to_string();
      if (!key || !key->ends_with("_request") || *key == "connect_test_request") continue;
      if (*key == "command_request") {
        if (!caps.get_strings("command_request").empty() || v.to_bool().value_or(false)) asked.push_back("command");
        continue;
      }
      if (v.to_bool().value_or(false)) asked.emplace_back(key->substr(0, key->size() - 8));
    }
  }
  std::string request;
  for (const std::string& r : asked) {
    bool passed = std::find(std::begin(kPassed), std::end(kPassed), r) != std::end(kPassed);
    if (!passed) {
      std::string shown = r.size() > 32 ? r.substr(0, 32) + "..." : r;
      for (char& c : shown) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
      }
      return MakeError(ErrorCode::kUnsupported,
                       "the relay does not pass '" + shown + "' requests on to sessions (use xpra " + shown +
                           " where the session runs)");
    }
    if (!request.empty() && request != r) return MakeError(ErrorCode::kUnsupported, "more than one request in the hello");
    request = r;
  }
  return request;
}

std::string RequestedDisplay(const Value& caps_value) {
  Caps caps(caps_value);
  if (const Value* d = caps_value.is_dict() ? caps_value.find("display") : nullptr; d != nullptr && d->is_string()) {
    return d->as_string();
  }
  std::string display = caps.get_string("session.display");
  if (!display.empty() && std::isdigit(static_cast<unsigned char>(display[0]))) display.insert(0, 1, ':');
  return display;
}

std::vector<std::pair<std::string, Value>> SanitizeSessionOptions(
    const std::vector<std::pair<std::string, std::string>>& options) {
  std::vector<std::pair<std::string, Value>> out;
  for (const auto& [k, v] : options) {
    if (k == "compression_level") {
      int n = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec == std::errc() && p == v.data() + v.size()) out.emplace_back(k, n);
    } else if (k == "lz4" || k == "lzo" || k == "zlib" || k == "rencode" || k == "bencode" ||
               k == "yaml" || k == "rencodeplus") {
      if (auto b = ParseBool(v)) out.emplace_back(k, *b);
    }
  }
  return out;
}

std::string SessionPassword(const std::vector<std::pair<std::string, std::string>>& options) {
  for (const auto& [k, v] : options) {
    if (k == "password") return v;
  }
  return {};
}

Value MakeServerHello(const Value& client_caps,
                      const std::vector<std::pair<std::string, std::string>>& session_options,
                      const ProxyIdentity& proxy) {
  Value caps = client_caps.is_dict() ? client_caps : Value(Dict{});
  auto request = HelloRequest(caps);
  caps.erase_if([](std::string_view k) {
    return StartsWithAny(k, {"cipher", "challenge", "digest", "salt-digest", "aliases", "encryption"}) ||
           k == "request" || (k.ends_with("_request") && k != "connect_test_request");
  });
  DropSslUpgrade(caps);
  if (request.ok() && !request->empty()) caps.set("request", std::string_view(*request));
  AddProxyKeys(caps, proxy);
  List digests;
  for (const auto& d : RelayDigests()) digests.emplace_back(std::string_view(d));
  caps.set("digest", digests);
  caps.set("salt-digest", digests);
  for (auto& [k, v] : SanitizeSessionOptions(session_options)) caps.set(k, std::move(v));
  return caps;
}

Value MakeClientHello(const Value& server_caps, const ProxyIdentity& proxy, const Value* cipher_caps) {
  Value caps = server_caps.is_dict() ? server_caps : Value(Dict{});
  caps.erase_if([](std::string_view k) { return k.starts_with("aliases"); });
  AddProxyKeys(caps, proxy);
  if (cipher_caps != nullptr && cipher_caps->is_dict()) {
    for (const auto& [k, v] : cipher_caps->as_dict()) {
      if (auto ks = k.to_string()) caps.set(*ks, v);
    }
  }
  return caps;
}

}  // namespace xr::engine
