#include "engine/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <set>

namespace xr::log {
namespace {

struct State {
  std::mutex mu;
  std::atomic<int> min_level{static_cast<int>(Level::kInfo)};
  std::atomic<bool> debug_all{false};
  std::atomic<Format> format{Format::kText};
  std::set<std::string, std::less<>> debug_categories;
  FILE* out = nullptr;  // nullptr = stderr
  std::string path;
};

State& S() {
  static State* s = new State();  // never destroyed: logging works during exit
  return *s;
}

const char* LevelName(Level l) {
  switch (l) {
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO ";
    case Level::kWarn: return "WARN ";
    case Level::kError: return "ERROR";
  }
  return "?";
}

const char* JsonLevelName(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "?";
}

// Length of the UTF-8 sequence starting at s[i], or 0 when it is not a valid one
// (overlong forms, surrogates and code points over U+10FFFF included).
size_t Utf8Length(std::string_view s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; }
  else if (c >= 0xe0 && c <= 0xef) { n = 3; cp = c & 0x0f; }
  else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; }
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"') { out += "\\\""; ++i; continue; }
    if (c == '\\') { out += "\\\\"; ++i; continue; }
    if (c == '\n') { out += "\\n"; ++i; continue; }
    if (c == '\r') { out += "\\r"; ++i; continue; }
    if (c == '\t') { out += "\\t"; ++i; continue; }
    if (c < 0x20 || c == 0x7f) { out += fmt::format("\\u{:04x}", c); ++i; continue; }
    size_t n = Utf8Length(s, i);
    if (n == 0) { out += "\\ufffd"; ++i; continue; }
    out.append(s.substr(i, n));
    i += n;
  }
  out += '"';
}

// "conn=123 ..." -> 123.
std::optional<uint64_t> ConnectionId(std::string_view message) {
  constexpr std::string_view kPrefix = "conn=";
  if (!message.starts_with(kPrefix)) return std::nullopt;
  uint64_t id = 0;
  size_t i = kPrefix.size();
  size_t digits = 0;
  for (; i < message.size() && message[i] >= '0' && message[i] <= '9' && digits < 19; ++i, ++digits) {
    id = id * 10 + static_cast<uint64_t>(message[i] - '0');
  }
  if (digits == 0 || (i < message.size() && message[i] != ' ')) return std::nullopt;
  return id;
}

}  // namespace

std::optional<Format> ParseFormat(std::string_view name) {
  if (name == "text") return Format::kText;
  if (name == "json") return Format::kJson;
  return std::nullopt;
}

void SetFormat(Format format) { S().format.store(format, std::memory_order_relaxed); }

std::string FormatLine(Format format, int64_t sec, int64_t usec, Level level, std::string_view category,
                       std::string_view message) {
  time_t t = static_cast<time_t>(sec);
  struct tm tm;
  char ts[32];
  int ms = static_cast<int>(usec / 1000);
  if (format == Format::kText) {
    localtime_r(&t, &tm);
    std::strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
    return fmt::format("{}.{:03d} {} [{}] {}\n", ts, ms, LevelName(level), category, message);
  }
  gmtime_r(&t, &tm);
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string line = fmt::format("{{\"time\":\"{}.{:03d}Z\",\"level\":\"{}\",\"category\":", ts, ms, JsonLevelName(level));
  AppendJsonString(line, category);
  if (auto id = ConnectionId(message)) line += fmt::format(",\"conn\":{}", *id);
  line += ",\"message\":";
  AppendJsonString(line, message);
  line += "}\n";
  return line;
}

void Configure(Level min_level, std::string_view debug_categories) {
  State& s = S();
  std::lock_guard lock(s.mu);
  s.min_level = static_cast<int>(min_level);
  s.debug_categories.clear();
  s.debug_all = false;
  while (!debug_categories.empty()) {
    size_t comma = debug_categories.find(',');
    std::string_view cat = debug_categories.substr(0, comma);
    if (cat == "all" || cat == "*") s.debug_all = true;
    if (!cat.empty()) s.debug_categories.emplace(cat);
    if (comma == std::string_view::npos) break;
    debug_categories.remove_prefix(comma + 1);
  }
}

bool OpenFile(const std::string& path) {
  State& s = S();
  std::lock_guard lock(s.mu);
  if (path.empty()) {
    if (s.out) std::fclose(s.out);
    s.out = nullptr;
    s.path.clear();
    return true;
  }
  FILE* f = std::fopen(path.c_str(), "a");
  if (!f) return false;
  if (s.out) std::fclose(s.out);
  s.out = f;
  s.path = path;
  return true;
}

void Reopen() {
  State& s = S();
  std::lock_guard lock(s.mu);
  if (s.path.empty()) return;
  if (FILE* f = std::fopen(s.path.c_str(), "a")) {
    if (s.out) std::fclose(s.out);
    s.out = f;
  }
}

bool Enabled(Level level, std::string_view category) {
  State& s = S();
  if (static_cast<int>(level) >= s.min_level.load(std::memory_order_relaxed)) return true;
  if (level != Level::kDebug) return false;
  if (s.debug_all.load(std::memory_order_relaxed)) return true;
  std::lock_guard lock(s.mu);
  return !s.debug_categories.empty() && s.debug_categories.count(category) > 0;
}

namespace {

// Appends c escaped when it is a control character (or DEL), as-is otherwise.
void AppendEscaped(std::string* out, char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u != 0x7f) {
    out->push_back(c);
    return;
  }
  switch (c) {
    case '\n': out->append("\\n"); return;
    case '\r': out->append("\\r"); return;
    case '\t': out->append("\\t"); return;
    default: out->append(fmt::format("\\x{:02x}", u));
  }
}

bool HasControl(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

}  // namespace

std::string Sanitize(std::string_view s, size_t max) {
  std::string out;
  const bool cut = s.size() > max;
  if (cut) s = s.substr(0, max);
  out.reserve(s.size() + 8);
  for (char c : s) {
    if (c == '\\') {
      out.append("\\\\");
    } else {
      AppendEscaped(&out, c);
    }
  }
  if (cut) out.append("...");
  return out;
}

void Write(Level level, std::string_view category, std::string_view message) {
  State& s = S();
  const Format format = s.format.load(std::memory_order_relaxed);
  // One event, one line: a control character that slipped into a text message (a peer string
  // not passed through Sanitize) cannot start a line of its own or drive the terminal (JSON
  // lines escape every control character already).
  std::string escaped;
  if (format == Format::kText && HasControl(message)) {
    for (char c : message) AppendEscaped(&escaped, c);
    message = escaped;
  }
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  std::string line = FormatLine(format, tv.tv_sec, tv.tv_usec, level, category, message);
  std::lock_guard lock(s.mu);
  FILE* f = s.out ? s.out : stderr;
  std::fwrite(line.data(), 1, line.size(), f);
  std::fflush(f);
}

std::string ErrnoText(int err) {
  char buf[128];
  return strerror_r(err, buf, sizeof buf);  // GNU strerror_r: returns the message
}

}  // namespace xr::log
