#include "auth/auth_util.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace xr::auth {
namespace {

bool IsOptionName(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Python's int(): optional surrounding whitespace, optional sign, decimal digits.
std::optional<int64_t> ParseInt(std::string_view v) {
  v = TrimSpace(v);
  bool negative = false;
  if (!v.empty() && (v[0] == '+' || v[0] == '-')) {
    negative = v[0] == '-';
    v.remove_prefix(1);
  }
  if (v.empty() || v[0] < '0' || v[0] > '9') return std::nullopt;
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || ptr != v.data() + v.size()) return std::nullopt;
  return negative ? -n : n;
}

std::string EnvOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? std::string(v) : std::string(fallback);
}

// Name -> id lookups read /etc/passwd or /etc/group (and nsswitch.conf) on every call: about a
// fifth of the relay's CPU per login with the sqlite module. Answers are kept for a minute, so
// an account change is seen within that; at most 1,024 names are kept.
class IdCache {
 public:
  template <typename Lookup>
  std::optional<int64_t> Get(const std::string& name, Lookup lookup) {
    const auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(mu_);
      auto it = map_.find(name);
      if (it != map_.end() && now < it->second.expires) return it->second.id;
    }
    std::optional<int64_t> id = lookup(name);
    std::lock_guard lock(mu_);
    if (map_.size() >= 1024) map_.clear();
    map_[name] = Entry{id, now + std::chrono::seconds(60)};
    return id;
  }

 private:
  struct Entry {
    std::optional<int64_t> id;
    std::chrono::steady_clock::time_point expires;
  };
  std::mutex mu_;
  std::unordered_map<std::string, Entry> map_;
};

std::optional<int64_t> UidOfUserUncached(const std::string& name) {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
  struct passwd pw;
  struct passwd* result = nullptr;
  while (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &result) == ERANGE) {
    buf.resize(buf.size() * 2);
  }
  if (result == nullptr) return std::nullopt;
  return static_cast<int64_t>(result->pw_uid);
}

std::optional<int64_t> GidOfGroupUncached(const std::string& name) {
  long size = sysconf(_SC_GETGR_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
  struct group gr;
  struct group* result = nullptr;
  while (getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &result) == ERANGE) {
    buf.resize(buf.size() * 2);
  }
  if (result == nullptr) return std::nullopt;
  return static_cast<int64_t>(result->gr_gid);
}

std::optional<int64_t> UidOfUser(const std::string& name) {
  static IdCache cache;
  return cache.Get(name, UidOfUserUncached);
}

std::optional<int64_t> GidOfGroup(const std::string& name) {
  static IdCache cache;
  return cache.Get(name, GidOfGroupUncached);
}

std::string LookupProcessUsername() {
  for (const char* var : {"LOGNAME", "USER", "LNAME", "USERNAME"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') return v;
  }
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
  struct passwd pw;
  struct passwd* result = nullptr;
  while (getpwuid_r(getuid(), &pw, buf.data(), buf.size(), &result) == ERANGE) {
    buf.resize(buf.size() * 2);
  }
  if (result != nullptr) return result->pw_name;
  return std::to_string(getuid());
}

}  // namespace

std::optional<std::string> TextPasswordBytes(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  for (size_t i = 0; i < utf8.size();) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return std::string(utf8);  // not UTF-8: raw bytes
    }
    if (i + len > utf8.size()) return std::string(utf8);
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(utf8[i + k]);
      if ((cc & 0xC0) != 0x80) return std::string(utf8);
      cp = (cp << 6) | (cc & 0x3F);
    }
    const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len]) return std::string(utf8);  // overlong encoding: not UTF-8
    if (cp > 0xFF) return std::nullopt;
    out += static_cast<char>(cp);
    i += len;
  }
  return out;
}

std::string_view TrimSpace(std::string_view s) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

Expected<ModuleSpec> ParseModuleSpec(std::string_view spec) {
  const size_t colon = spec.find(':');
  const size_t comma = spec.find(',');
  const size_t cut = std::min(colon, comma);  // npos when neither is present
  ModuleSpec out;
  out.name = ToLower(TrimSpace(spec.substr(0, cut)));
  if (out.name.empty()) {
    return MakeError(ErrorCode::kMalformed, "authentication module name missing in '" + std::string(spec) + "'");
  }
  if (cut == std::string_view::npos) return out;
  std::string_view rest = spec.substr(cut + 1);
  while (true) {
    const size_t end = rest.find(',');
    std::string_view element = rest.substr(0, end);
    const size_t eq = element.find('=');
    if (TrimSpace(element).empty()) {
      // xpra skips empty elements ("a=1,,b=2", a trailing comma).
    } else if (eq != std::string_view::npos && IsOptionName(element.substr(0, eq))) {
      out.options.emplace_back(std::string(element.substr(0, eq)), std::string(element.substr(eq + 1)));
    } else if (!out.options.empty()) {
      // Not "name=...": a comma inside the previous value (e.g. "SELECT uid, gid FROM ...").
      out.options.back().second += ",";
      out.options.back().second += element;
    } else {
      return MakeError(ErrorCode::kMalformed, "invalid option '" + std::string(element) + "' for " + out.name +
                                                  " authentication: expected name=value");
    }
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  return out;
}

ModuleOptions::ModuleOptions(std::string module, OptionList options)
    : module_(std::move(module)), options_(std::move(options)) {}

Status ModuleOptions::CheckAllowed(std::initializer_list<std::string_view> allowed) const {
  for (const auto& [key, value] : options_) {
    bool ok = key == "prompt";
    for (std::string_view a : allowed) ok = ok || key == a;
    if (ok) continue;
    std::string valid;
    for (std::string_view a : allowed) {
      valid += std::string(a) + ", ";
    }
    valid += "prompt";
    return MakeError(ErrorCode::kMalformed,
                     "unknown option '" + key + "' for " + module_ + " authentication, valid options: " + valid);
  }
  return Status::Ok();
}

std::optional<std::string> ModuleOptions::Get(std::string_view key) const {
  std::optional<std::string> out;
  for (const auto& [k, v] : options_) {
    if (k == key) out = v;
  }
  return out;
}

Expected<std::string> ModuleOptions::GetNonEmpty(std::string_view key, std::optional<std::string> fallback) const {
  std::optional<std::string> v = Get(key);
  if (!v) {
    if (fallback) return *fallback;
    return MakeError(ErrorCode::kMalformed, module_ + " authentication needs " + std::string(key) + "=");
  }
  if (v->empty()) {
    return MakeError(ErrorCode::kMalformed, "empty value for option " + std::string(key) + "= of " + module_ +
                                                " authentication");
  }
  return *v;
}

std::string ModuleOptions::prompt() const {
  std::optional<std::string> p = Get("prompt");
  return (p && !p->empty()) ? *p : std::string("password");
}

OptionList ParseSimpleDict(std::string_view s, char sep) {
  OptionList out;
  while (true) {
    const size_t end = s.find(sep);
    std::string_view element = s.substr(0, end);
    const size_t eq = element.find('=');
    if (!element.empty() && eq != std::string_view::npos) {
      std::string key(element.substr(0, eq));
      std::string value(element.substr(eq + 1));
      bool replaced = false;
      for (auto& kv : out) {
        if (kv.first == key) {
          kv.second = value;
          replaced = true;
          break;
        }
      }
      if (!replaced) out.emplace_back(std::move(key), std::move(value));
    }
    if (end == std::string_view::npos) break;
    s.remove_prefix(end + 1);
  }
  return out;
}

std::vector<std::string> ParseEnvOptions(std::string_view s) {
  std::vector<std::string> out;
  for (auto& [k, v] : ParseSimpleDict(s, ';')) out.push_back(k + "=" + v);
  return out;
}

std::vector<std::string> SplitDisplays(std::string_view s) {
  std::vector<std::string> out;
  while (true) {
    const size_t end = s.find(',');
    std::string_view d = TrimSpace(s.substr(0, end));
    if (!d.empty()) out.emplace_back(d);
    if (end == std::string_view::npos) break;
    s.remove_prefix(end + 1);
  }
  return out;
}

int64_t ParseUid(std::string_view v) {
  if (!v.empty()) {
    if (auto n = ParseInt(v)) return *n;
  }
  const std::string name = v.empty() ? EnvOr("XPRA_AUTHENTICATION_DEFAULT_UID", "nobody") : std::string(v);
  if (auto uid = UidOfUser(name)) return *uid;
  return static_cast<int64_t>(getuid());
}

int64_t ParseGid(std::string_view v) {
  if (!v.empty()) {
    if (auto n = ParseInt(v)) return *n;
  }
  const std::string name = v.empty() ? EnvOr("XPRA_AUTHENTICATION_DEFAULT_GID", "nobody") : std::string(v);
  if (auto gid = GidOfGroup(name)) return *gid;
  return static_cast<int64_t>(getgid());
}

std::string ProcessUsername() {
  static const std::string name = LookupProcessUsername();
  return name;
}

std::string EffectiveUsername(std::string_view requested) {
  return requested.empty() ? ProcessUsername() : std::string(requested);
}

SessionEntry ProcessSessionEntry() {
  SessionEntry e;
  e.uid = static_cast<int64_t>(getuid());
  e.gid = static_cast<int64_t>(getgid());
  return e;
}

std::string AbsolutePath(std::string_view path) {
  if (!path.empty() && path.front() == '/') return std::string(path);
  std::vector<char> buf(PATH_MAX);
  if (getcwd(buf.data(), buf.size()) == nullptr) return std::string(path);
  std::string out(buf.data());
  if (out.empty() || out.back() != '/') out += '/';
  out += path;
  return out;
}

}  // namespace xr::auth

namespace xr::auth {
namespace {

// getpwnam_r / getpwuid_r into a growing buffer; `lookup` is one of them bound to its key.
template <typename Lookup>
std::optional<std::pair<SessionEntry, std::string>> LookupPasswd(Lookup lookup) {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
  struct passwd pw;
  struct passwd* result = nullptr;
  while (lookup(&pw, buf, &result) == ERANGE && buf.size() < (size_t{1} << 20)) buf.resize(buf.size() * 2);
  if (result == nullptr) return std::nullopt;
  SessionEntry e;
  e.uid = static_cast<int64_t>(result->pw_uid);
  e.gid = static_cast<int64_t>(result->pw_gid);
  return std::make_pair(std::move(e), std::string(result->pw_name));
}

}  // namespace

std::optional<SessionEntry> SystemUserEntry(const std::string& username) {
  if (username.empty()) return std::nullopt;
  auto found = LookupPasswd([&](struct passwd* pw, std::vector<char>& buf, struct passwd** out) {
    return getpwnam_r(username.c_str(), pw, buf.data(), buf.size(), out);
  });
  if (!found) return std::nullopt;
  return std::move(found->first);
}

std::optional<std::string> UserNameOfUid(int64_t uid) {
  if (uid < 0) return std::nullopt;
  auto found = LookupPasswd([&](struct passwd* pw, std::vector<char>& buf, struct passwd** out) {
    return getpwuid_r(static_cast<uid_t>(uid), pw, buf.data(), buf.size(), out);
  });
  if (!found) return std::nullopt;
  return std::move(found->second);
}

Expected<std::vector<int64_t>> ParseIdList(std::string_view list, bool users) {
  std::vector<int64_t> ids;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(':', start);
    if (end == std::string_view::npos) end = list.size();
    std::string_view item = TrimSpace(list.substr(start, end - start));
    start = end + 1;
    if (item.empty()) continue;
    if (auto n = ParseInt(item)) {
      ids.push_back(*n);
      continue;
    }
    const std::string name(item);
    std::optional<int64_t> id = users ? UidOfUserUncached(name) : GidOfGroupUncached(name);
    if (!id) {
      return MakeError(ErrorCode::kMalformed, std::string(users ? "unknown user '" : "unknown group '") + name + "'");
    }
    ids.push_back(*id);
  }
  return ids;
}

}  // namespace xr::auth

namespace xr::auth {

Expected<bool> GetBoolOption(const ModuleOptions& options, std::string_view key, bool fallback) {
  std::optional<std::string> v = options.Get(key);
  if (!v) return fallback;
  const std::string s = ToLower(TrimSpace(*v));
  if (s == "1" || s == "yes" || s == "true" || s == "on") return true;
  if (s == "0" || s == "no" || s == "false" || s == "off") return false;
  return MakeError(ErrorCode::kMalformed, options.module() + " authentication: " + std::string(key) +
                                              "= must be yes or no, not '" + *v + "'");
}

Expected<int64_t> GetSecondsOption(const ModuleOptions& options, std::string_view key, double fallback_seconds,
                                   double max_seconds) {
  std::optional<std::string> v = options.Get(key);
  double seconds = fallback_seconds;
  if (v) {
    const std::string s(TrimSpace(*v));
    char* end = nullptr;
    seconds = s.empty() ? -1 : std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !(seconds > 0) || seconds > max_seconds) {
      return MakeError(ErrorCode::kMalformed, options.module() + " authentication: " + std::string(key) +
                                                  "= must be a number of seconds in (0, " +
                                                  std::to_string(static_cast<int64_t>(max_seconds)) + "], not '" +
                                                  *v + "'");
    }
  }
  return static_cast<int64_t>(seconds * 1000 + 0.5);
}

std::string PeerHost(std::string_view peer) {
  if (peer.empty() || peer.substr(0, 5) == "unix:" || peer == "unix") return "localhost";
  if (peer.front() == '[') {
    size_t close = peer.find(']');
    if (close != std::string_view::npos) return std::string(peer.substr(1, close - 1));
  }
  size_t colon = peer.rfind(':');
  if (colon != std::string_view::npos && peer.find(':') == colon) return std::string(peer.substr(0, colon));
  return std::string(peer);
}


SessionEntry MakeSessionEntry(std::string_view uid, std::string_view gid, std::string_view displays,
                              std::string_view env_options, std::string_view session_options) {
  SessionEntry e;
  e.uid = ParseUid(uid);
  e.gid = ParseGid(gid);
  e.displays = SplitDisplays(displays);
  e.env_options = ParseEnvOptions(env_options);
  e.session_options = ParseSimpleDict(session_options, ';');
  return e;
}

}  // namespace xr::auth
