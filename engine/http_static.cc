#include "engine/http_static.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "codec/http_response.h"

namespace xr::http {
namespace {

constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes one path component; false on a malformed escape.
bool PercentDecode(std::string_view raw, std::string* out) {
  out->clear();
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '%') {
      out->push_back(raw[i]);
      continue;
    }
    if (i + 2 >= raw.size()) return false;
    const int hi = HexValue(raw[i + 1]), lo = HexValue(raw[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

// A decoded component that may name a file under the root.
bool SafeComponent(const std::string& c) {
  if (c.empty() || c[0] == '.') return false;  // ".", "..", dot-files
  return c.find_first_of(std::string_view("/\\\0", 3)) == std::string::npos;
}

bool IsUnreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

std::string PercentEncode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    if (IsUnreserved(c)) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[(static_cast<unsigned char>(c) >> 4) & 0xf]);
      out.push_back(kHex[static_cast<unsigned char>(c) & 0xf]);
    }
  }
  return out;
}

// True when Accept-Encoding lists `coding` with a non-zero q.
bool Accepts(const Request& req, std::string_view coding) {
  bool accepted = false;
  for (const Header& h : req.headers) {
    if (h.name != "accept-encoding") continue;
    const bool listed = AnyListItem(h.value, [&](std::string_view item) {
      const size_t semi = item.find(';');
      if (!EqualsIgnoreCase(TrimOws(item.substr(0, semi)), coding)) return false;
      accepted = true;
      if (semi == std::string_view::npos) return true;
      std::string_view param = TrimOws(item.substr(semi + 1));
      if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
        // q=0, q=0.0, q=0.000 refuse; anything else accepts.
        std::string_view q = TrimOws(param.substr(2));
        bool zero = !q.empty() && q[0] == '0';
        for (size_t i = 1; zero && i < q.size(); ++i) zero = q[i] == '.' || q[i] == '0';
        accepted = !zero;
      }
      return true;
    });
    if (listed) return accepted;
  }
  return false;
}

bool HasPrefixDir(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}

std::string EntityTag(const struct stat& st, const char* variant) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "\"%llx-%llx%09lx%s%s\"", static_cast<unsigned long long>(st.st_size),
                static_cast<unsigned long long>(st.st_mtim.tv_sec), static_cast<unsigned long>(st.st_mtim.tv_nsec),
                variant[0] ? "-" : "", variant);
  return buf;
}

// If-None-Match (weak comparison, RFC 9110 13.1.2) lists `etag` or "*".
bool NoneMatchHit(const std::string& header, const std::string& etag) {
  return AnyListItem(header, [&](std::string_view tag) {
    if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
    return tag == "*" || tag == etag;
  });
}

}  // namespace

std::string HttpDate(time_t t) {
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday], tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

bool ParseHttpDate(const std::string& s, time_t* t) {
  // "Sun, 06 Nov 1994 08:49:37 GMT"
  if (s.size() != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[19] != ':' ||
      s[22] != ':' || s.compare(25, 4, " GMT") != 0) {
    return false;
  }
  auto num = [&](size_t pos, size_t n, int* v) {
    *v = 0;
    for (size_t i = 0; i < n; ++i) {
      if (s[pos + i] < '0' || s[pos + i] > '9') return false;
      *v = *v * 10 + (s[pos + i] - '0');
    }
    return true;
  };
  struct tm tm = {};
  int mon = -1;
  for (int i = 0; i < 12; ++i) {
    if (s.compare(8, 3, kMonths[i]) == 0) mon = i;
  }
  int day, year, h, m, sec;
  if (mon < 0 || !num(5, 2, &day) || !num(12, 4, &year) || !num(17, 2, &h) || !num(20, 2, &m) || !num(23, 2, &sec)) {
    return false;
  }
  if (day < 1 || day > 31 || h > 23 || m > 59 || sec > 60) return false;
  tm.tm_mday = day;
  tm.tm_mon = mon;
  tm.tm_year = year - 1900;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec;
  *t = timegm(&tm);
  return true;
}

const char* ContentTypeFor(const std::string& name) {
  static constexpr std::pair<std::string_view, const char*> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".xml", "application/xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".svg", "image/svg+xml"},
      {".ico", "image/x-icon"},
      {".webp", "image/webp"},
      {".wasm", "application/wasm"},
      {".woff", "font/woff"},
      {".woff2", "font/woff2"},
      {".ttf", "font/ttf"},
      {".otf", "font/otf"},
      {".ogg", "audio/ogg"},
      {".mp3", "audio/mpeg"},
      {".wav", "audio/wav"},
  };
  const size_t dot = name.rfind('.');
  if (dot != std::string::npos) {
    std::string ext = name.substr(dot);
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const auto& [e, type] : kTypes) {
      if (ext == e) return type;
    }
  }
  return "application/octet-stream";
}

Expected<StaticSite> StaticSite::Open(StaticOptions options) {
  StaticSite site;
  site.root_.reset(::open(options.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!site.root_.valid()) {
    return MakeError(ErrorCode::kIo, "web root " + options.root + ": " + std::strerror(errno));
  }
  char real[PATH_MAX];
  if (::realpath(options.root.c_str(), real) == nullptr) {
    return MakeError(ErrorCode::kIo, "web root " + options.root + ": " + std::strerror(errno));
  }
  site.root_real_ = real;
  for (const std::string& dir : options.symlink_roots) {
    if (::realpath(dir.c_str(), real) != nullptr) site.links_real_.push_back(real);
  }
  site.options_ = std::move(options);
  return site;
}

namespace {

struct Resolved {
  UniqueFd parent;  // directory holding the file (for pre-compressed variants)
  UniqueFd file;
  struct stat st;
  std::string name;  // last component ("" for the root)
};

}  // namespace

StaticResponse StaticSite::Serve(const Request& req, time_t now) const {
  StaticResponse r;
  r.keep_alive = req.KeepAlive();
  const std::string date = "Date: " + HttpDate(now) + "\r\n";
  auto fail = [&](int status, std::string_view extra = {}, bool keep = true) {
    r.status = status;
    r.keep_alive = r.keep_alive && keep;
    r.file.reset();
    r.head = SimpleResponse(status, date + options_.security_headers + std::string(extra), r.keep_alive);
    return std::move(r);
  };
  const bool head_only = req.method == "HEAD";
  // No body is ever read here: after a request with one, the connection cannot go on.
  const bool has_body = req.content_length.value_or(0) > 0;
  if (req.method != "GET" && !head_only) return fail(405, "Allow: GET, HEAD\r\n", !has_body);
  if (has_body) return fail(413, {}, false);
  if (req.target.size() > options_.max_target_bytes) return fail(414, {}, false);
  std::string_view path(req.target);
  path = path.substr(0, path.find_first_of("?#"));
  if (path.empty() || path[0] != '/') return fail(400, {}, false);

  // Components, split before decoding.
  std::vector<std::string> comps;
  std::string decoded;
  for (size_t pos = 1; pos <= path.size();) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view raw = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (raw.empty()) continue;
    if (!PercentDecode(raw, &decoded)) return fail(400, {}, false);
    if (!SafeComponent(decoded)) return fail(404);
    comps.push_back(decoded);
    if (comps.size() > options_.max_components) return fail(404);
  }
  const bool trailing_slash = path.back() == '/';

  // Opens comps one by one under the root; a symlink only into the root or symlink_roots.
  auto resolve = [&](const std::vector<std::string>& parts, Resolved* out) -> bool {
    UniqueFd dir(::openat(root_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir.valid()) return false;
    std::string real = root_real_;
    UniqueFd cur;
    for (size_t i = 0; i < parts.size(); ++i) {
      const bool last = i + 1 == parts.size();
      const int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | (last ? 0 : O_DIRECTORY);
      int fd = ::openat(dir.get(), parts[i].c_str(), flags);
      if (fd < 0) {
        struct stat lst;
        if ((errno != ELOOP && errno != ENOTDIR) || ::fstatat(dir.get(), parts[i].c_str(), &lst, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISLNK(lst.st_mode)) {
          return false;
        }
        char target[PATH_MAX];
        if (::realpath((real + "/" + parts[i]).c_str(), target) == nullptr) return false;
        bool allowed = HasPrefixDir(target, root_real_);
        for (const std::string& l : links_real_) allowed = allowed || HasPrefixDir(target, l);
        if (!allowed) return false;
        fd = ::open(target, flags);
        if (fd < 0) return false;
        real = target;
      } else {
        real += "/" + parts[i];
      }
      if (last) {
        cur.reset(fd);
      } else {
        dir.reset(fd);
      }
    }
    if (parts.empty()) {
      cur.reset(::dup(dir.get()));
      if (!cur.valid()) return false;
    }
    if (::fstat(cur.get(), &out->st) != 0) return false;
    out->parent = std::move(dir);
    out->file = std::move(cur);
    out->name = parts.empty() ? "" : parts.back();
    return true;
  };

  Resolved res;
  if (!resolve(comps, &res)) return fail(404);
  if (S_ISDIR(res.st.st_mode)) {
    if (!trailing_slash) {
      std::string location = "/";
      for (const std::string& c : comps) location += PercentEncode(c) + "/";
      return fail(301, "Location: " + location + "\r\n");
    }
    comps.push_back(options_.index_file);
    if (!resolve(comps, &res)) return fail(404);
  }
  if (!S_ISREG(res.st.st_mode)) return fail(404);

  // A pre-compressed variant beside it, br before gzip (xpra's order, server/http_handler.py).
  const char* encoding = "";
  bool has_variant = false;
  if (options_.precompressed) {
    for (auto [coding, ext] : {std::pair<const char*, const char*>{"br", ".br"}, {"gzip", ".gz"}}) {
      UniqueFd v(::openat(res.parent.get(), (res.name + ext).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
      struct stat vst;
      if (!v.valid() || ::fstat(v.get(), &vst) != 0 || !S_ISREG(vst.st_mode) || vst.st_size == 0) continue;
      has_variant = true;
      if (encoding[0] == '\0' && Accepts(req, coding)) {
        encoding = coding;
        res.file = std::move(v);
        res.st.st_size = vst.st_size;
        res.st.st_mtim = vst.st_mtim;
      }
    }
  }

  const std::string etag = EntityTag(res.st, encoding);
  std::string common = date + "ETag: " + etag + "\r\nLast-Modified: " + HttpDate(res.st.st_mtim.tv_sec) +
                       "\r\nCache-Control: " + options_.cache_control + "\r\n";
  if (has_variant) common += "Vary: Accept-Encoding\r\n";
  common += options_.security_headers;
  const std::string connection = r.keep_alive ? "" : "Connection: close\r\n";

  bool not_modified = false;
  if (const std::string* inm = req.Find("if-none-match")) {
    not_modified = NoneMatchHit(*inm, etag);
  } else if (const std::string* ims = req.Find("if-modified-since")) {
    time_t since;
    not_modified = ParseHttpDate(*ims, &since) && res.st.st_mtim.tv_sec <= since;
  }
  r.path.clear();
  for (const std::string& c : comps) r.path += "/" + c;
  if (not_modified) {
    r.status = 304;
    r.head = "HTTP/1.1 304 Not Modified\r\n" + common + connection + "\r\n";
    return r;
  }
  r.status = 200;
  r.head = "HTTP/1.1 200 OK\r\n" + common + "Content-Type: " + ContentTypeFor(res.name) + "\r\n";
  if (encoding[0] != '\0') r.head += std::string("Content-Encoding: ") + encoding + "\r\n";
  r.head += "Content-Length: " + std::to_string(res.st.st_size) + "\r\n" + connection + "\r\n";
  r.size = static_cast<uint64_t>(res.st.st_size);
  if (!head_only) r.file = std::move(res.file);
  return r;
}

}  // namespace xr::http
