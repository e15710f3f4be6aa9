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

}  // namespace

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

void Write(Level level, std::string_view category, std::string_view message) {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  localtime_r(&tv.tv_sec, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
  std::string line = fmt::format("{}.{:03d} {} [{}] {}\n", ts, static_cast<int>(tv.tv_usec / 1000),
                                 LevelName(level), category, message);
  State& s = S();
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
