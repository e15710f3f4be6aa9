#pragma once
// StaticSite: serves xpra's HTML5 client (static files under a web root) for the relay's HTTP
// legs. No I/O on the connection: Serve() turns a parsed request into a response head and, for
// a GET with a body to send, an open file and its size for the caller to send (sendfile/splice).
//
// Path safety: the target is split on '/' before percent-decoding, so "%2f" never separates
// components; ".", "..", "%2e%2e", dot-files, NUL and backslashes are refused; every component
// is opened with openat(O_NOFOLLOW) from the root's fd, so no path leaves the root. A symlink
// is followed only when its real path lies inside the root or one of symlink_roots (Debian's
// xpra links www/js/lib/jquery.js to /usr/share/javascript). Refusals all answer 404.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include "codec/http_request.h"
#include "base/status.h"
#include "base/fd.h"

namespace xr::http {

// xpra's HTML5 client on Debian (xpra's default web root, server/server_core.py _www_dir).
constexpr char kDefaultWebRoot[] = "/usr/share/xpra/www";

struct StaticOptions {
  std::string root = kDefaultWebRoot;
  // Real directories outside the root that symlinks inside it may point into.
  std::vector<std::string> symlink_roots = {"/usr/share/javascript"};
  size_t max_target_bytes = 2048;  // longer request-targets -> 414
  size_t max_components = 32;      // deeper paths -> 404
  // The HTML5 client changes with xpra upgrades: revalidate every time (ETag makes it a 304).
  std::string cache_control = "no-cache";
  bool precompressed = true;  // serve NAME.br / NAME.gz when the client accepts br / gzip
  std::string index_file = "index.html";
  // Sent with every response (also errors); each line ends in CRLF.
  std::string security_headers =
      "X-Content-Type-Options: nosniff\r\n"
      "X-Frame-Options: SAMEORIGIN\r\n"
      "Referrer-Policy: no-referrer\r\n"
      "Content-Security-Policy: script-src 'self' 'unsafe-inline'; font-src 'self'; object-src 'none'; "
      "child-src 'self'; worker-src 'self'; frame-ancestors 'self'; form-action 'self'\r\n";
};

struct StaticResponse {
  int status = 0;
  std::string head;    // the complete response head, CRLF CRLF included
  UniqueFd file;       // GET 200: the file to send after the head (valid() only then)
  uint64_t size = 0;   // bytes of `file` to send from offset 0
  bool keep_alive = false;  // the connection may carry another request
  std::string path;    // the file served, relative to its root ("" if none): for the access log
};

class StaticSite {
 public:
  // Opens the web root (an error naming it when missing or not a directory).
  static Expected<StaticSite> Open(StaticOptions options);

  // Answers one request (GET/HEAD; others 405). `now` is the Date header's time.
  StaticResponse Serve(const Request& request, time_t now) const;

  const StaticOptions& options() const { return options_; }

 private:
  StaticSite() = default;
  StaticOptions options_;
  UniqueFd root_;
  std::string root_real_;                // realpath of the root
  std::vector<std::string> links_real_;  // realpaths of symlink_roots that exist
};

// "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 5.6.7 IMF-fixdate).
std::string HttpDate(time_t t);
// Parses an IMF-fixdate; false if it is not one.
bool ParseHttpDate(const std::string& s, time_t* t);
// Content-Type for a file name, by extension ("application/octet-stream" when unknown).
const char* ContentTypeFor(const std::string& name);

}  // namespace xr::http
