#pragma once
// Logging: one line per event to stderr (or a file re-opened on SIGHUP), with level and
// category filters. Thread-safe. Never pass secrets to these functions.

#include <fmt/format.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace xr::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// kText: "2026-11-21 05:00:00.123 INFO  [cat] message" (local time).
// kJson: one JSON object per line, for container stdout (--log-format=json):
//   {"time":"2026-11-21T05:00:00.123Z","level":"info","category":"conn","conn":12,"message":"..."}
//   time in UTC; "conn" present when the line belongs to a connection (its message starts with
//   "conn=ID", the relay's convention for every connection's lines); strings escaped per RFC
//   8259, bytes that are not UTF-8 replaced by U+FFFD.
enum class Format { kText, kJson };

// Sets the minimum level; categories listed in `debug_categories` ("auth,net", "all") log
// at debug level too.
void Configure(Level min_level, std::string_view debug_categories);
// Redirects output to `path` ("" = stderr); returns false (and keeps stderr) on failure.
bool OpenFile(const std::string& path);
// Re-opens the current log file (after log rotation).
void Reopen();
// Chooses the line format (default kText).
void SetFormat(Format format);
// "text" / "json" -> Format; nullopt otherwise.
std::optional<Format> ParseFormat(std::string_view name);
// Whether a message of this level and category would be written.
bool Enabled(Level level, std::string_view category);
// Writes one line: "2026-11-21 05:00:00.123 INFO  [cat] message". Control characters in
// `message` are escaped (never a second line), whatever the caller passed.
void Write(Level level, std::string_view category, std::string_view message);

// The line Write() would emit at this wall-clock time (tv_sec, tv_usec), newline included.
std::string FormatLine(Format format, int64_t sec, int64_t usec, Level level, std::string_view category,
                       std::string_view message);

// Longest peer-supplied string a log line or `xpra info` shows (bytes of input).
inline constexpr size_t kMaxPeerString = 64;

// A peer-supplied string (user name, display, client type, a peer's disconnect reason) made
// safe for a log line or `xpra info`: control characters escaped (\n, \r, \t, \xNN; a
// backslash doubled, so an escape cannot be forged) and cut to `max` bytes of input, "..."
// appended when cut. Every peer string goes through it before it is logged or shown.
std::string Sanitize(std::string_view s, size_t max = kMaxPeerString);

// strerror() for any thread (strerror itself is not thread-safe).
std::string ErrnoText(int err);

}  // namespace xr::log

#define XR_LOG(level, category, ...)                                              \
  do {                                                                            \
    if (::xr::log::Enabled(::xr::log::Level::level, category))                    \
      ::xr::log::Write(::xr::log::Level::level, category, fmt::format(__VA_ARGS__)); \
  } while (0)
#define XR_DEBUG(category, ...) XR_LOG(kDebug, category, __VA_ARGS__)
#define XR_INFO(category, ...) XR_LOG(kInfo, category, __VA_ARGS__)
#define XR_WARN(category, ...) XR_LOG(kWarn, category, __VA_ARGS__)
#define XR_ERROR(category, ...) XR_LOG(kError, category, __VA_ARGS__)
