#include "engine/http_static.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace xr::http {
namespace {

namespace fs = std::filesystem;

constexpr time_t kNow = 1700000000;

void WriteFile(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
}

std::string ReadFd(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(out.size()))) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

// base/: secret.txt and outside/ (never served), shared/jquery.js (a symlink root), www/ (the root).
struct WebRoot {
  fs::path base;
  StaticSite site;

  static fs::path MakeBase() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string tmpl = std::string(tmp ? tmp : "/tmp") + "/http_static.XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    fs::path b = tmpl;
    WriteFile(b / "secret.txt", "TOP SECRET");
    WriteFile(b / "outside/file.txt", "OUTSIDE");
    WriteFile(b / "shared/jquery.js", "jquery();");
    fs::path w = b / "www";
    WriteFile(w / "index.html", "<html>index</html>");
    WriteFile(w / "connect.html", "<html>connect</html>");
    WriteFile(w / "js/Client.js", std::string(5000, 'j'));
    WriteFile(w / "js/Client.js.gz", "GZ");
    WriteFile(w / "js/Client.js.br", "BR");
    WriteFile(w / "css/client.css", "body{}");
    WriteFile(w / "icons/x.png", "\x89PNG");
    WriteFile(w / "data.bin", "bin");
    WriteFile(w / ".htpasswd", "user:hash");
    WriteFile(w / "a b.html", "space");
    fs::create_directories(w / "empty");
    fs::create_directories(w / "js/lib");
    fs::create_symlink("../secret.txt", w / "evil.txt");
    fs::create_symlink(b / "secret.txt", w / "evil_abs.txt");
    fs::create_symlink("../outside", w / "evildir");
    fs::create_symlink("index.html", w / "alias.html");
    fs::create_symlink("js", w / "scripts");
    fs::create_symlink("../../../shared/jquery.js", w / "js/lib/jquery.js");
    REQUIRE(::mkfifo((w / "fifo").c_str(), 0600) == 0);
    return b;
  }

  static StaticSite OpenSite(const fs::path& b) {
    StaticOptions o;
    o.root = (b / "www").string();
    o.symlink_roots = {(b / "shared").string()};
    auto s = StaticSite::Open(o);
    REQUIRE(s.ok());
    return std::move(*s);
  }

  WebRoot() : base(MakeBase()), site(OpenSite(base)) {}
  ~WebRoot() {
    std::error_code ec;
    fs::remove_all(base, ec);
  }

  StaticResponse Get(const std::string& target, const std::string& extra = "", const std::string& method = "GET") {
    RequestParser p;
    std::string head = method + " " + target + " HTTP/1.1\r\nHost: relay\r\n" + extra + "\r\n";
    size_t used = 0;
    REQUIRE(p.Feed(head, &used) == ParseStatus::kDone);
    return site.Serve(p.request(), kNow);
  }
};

bool HasHeader(const StaticResponse& r, const std::string& line) { return r.head.find(line + "\r\n") != std::string::npos; }

void ExpectRefused(WebRoot& w, const std::string& target) {
  CAPTURE(target);
  StaticResponse r = w.Get(target);
  CHECK((r.status == 404 || r.status == 400));
  CHECK_FALSE(r.file.valid());
  CHECK(r.head.find("SECRET") == std::string::npos);
  CHECK(r.head.find("secret") == std::string::npos);  // no path echoed
  CHECK(r.head.find("Content-Length: 0\r\n") != std::string::npos);
}

TEST_CASE("http static: GET / serves index.html with type, length, caching and security headers") {
  WebRoot w;
  StaticResponse r = w.Get("/");
  REQUIRE(r.status == 200);
  CHECK(r.head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(HasHeader(r, "Content-Type: text/html; charset=utf-8"));
  CHECK(HasHeader(r, "Content-Length: 18"));
  CHECK(HasHeader(r, "Cache-Control: no-cache"));
  CHECK(HasHeader(r, "X-Content-Type-Options: nosniff"));
  CHECK(HasHeader(r, "Date: Tue, 14 Nov 2023 22:13:20 GMT"));
  CHECK(r.head.find("ETag: \"") != std::string::npos);
  CHECK(r.head.find("Last-Modified: ") != std::string::npos);
  CHECK(r.head.find("Server:") == std::string::npos);
  CHECK(r.head.size() > 4);
  CHECK(r.head.substr(r.head.size() - 4) == "\r\n\r\n");
  REQUIRE(r.file.valid());
  CHECK(r.size == 18);
  CHECK(ReadFd(r.file.get()) == "<html>index</html>");
  CHECK(r.keep_alive);
  CHECK(r.path == "/index.html");
}

TEST_CASE("http static: content types by extension") {
  WebRoot w;
  CHECK(HasHeader(w.Get("/css/client.css"), "Content-Type: text/css; charset=utf-8"));
  CHECK(HasHeader(w.Get("/icons/x.png"), "Content-Type: image/png"));
  CHECK(HasHeader(w.Get("/data.bin"), "Content-Type: application/octet-stream"));
  CHECK(ContentTypeFor("A.JS") == std::string("text/javascript; charset=utf-8"));
  CHECK(ContentTypeFor("x.wasm") == std::string("application/wasm"));
}

TEST_CASE("http static: percent-encoded names and queries") {
  WebRoot w;
  StaticResponse r = w.Get("/a%20b.html?x=1#frag");
  REQUIRE(r.status == 200);
  CHECK(ReadFd(r.file.get()) == "space");
  CHECK(w.Get("/connect.html?server=relay&port=443").status == 200);
}

TEST_CASE("http static: HEAD gives the head without a file") {
  WebRoot w;
  StaticResponse r = w.Get("/index.html", "", "HEAD");
  CHECK(r.status == 200);
  CHECK(HasHeader(r, "Content-Length: 18"));
  CHECK_FALSE(r.file.valid());
}

TEST_CASE("http static: other methods get 405 with Allow") {
  WebRoot w;
  for (const char* m : {"POST", "PUT", "DELETE", "OPTIONS", "BREW"}) {
    CAPTURE(m);
    StaticResponse r = w.Get("/index.html", "", m);
    CHECK(r.status == 405);
    CHECK(HasHeader(r, "Allow: GET, HEAD"));
    CHECK_FALSE(r.file.valid());
  }
}

TEST_CASE("http static: 405 for a request with a body closes the connection") {
  WebRoot w;
  StaticResponse r = w.Get("/index.html", "Content-Length: 5\r\n", "POST");
  CHECK(r.status == 405);
  CHECK_FALSE(r.keep_alive);
  CHECK(w.Get("/index.html", "", "POST").keep_alive);
}

TEST_CASE("http static: a request body is refused and closes the connection") {
  WebRoot w;
  StaticResponse r = w.Get("/index.html", "Content-Length: 5\r\n");
  CHECK(r.status == 413);
  CHECK_FALSE(r.keep_alive);
  CHECK(HasHeader(r, "Connection: close"));
}

TEST_CASE("http static: a directory without its slash redirects; without an index it is 404") {
  WebRoot w;
  StaticResponse r = w.Get("/js");
  CHECK(r.status == 301);
  CHECK(HasHeader(r, "Location: /js/"));
  CHECK(w.Get("/empty/").status == 404);  // no listings
  CHECK(w.Get("/js/").status == 404);
}

TEST_CASE("http static: the redirect is built from the resolved path, never an open redirect") {
  WebRoot w;
  StaticResponse r = w.Get("//css");
  CHECK(r.status == 301);
  CHECK(HasHeader(r, "Location: /css/"));
}

TEST_CASE("http static: Connection: close is honoured") {
  WebRoot w;
  StaticResponse r = w.Get("/", "Connection: close\r\n");
  CHECK(r.status == 200);
  CHECK_FALSE(r.keep_alive);
  CHECK(HasHeader(r, "Connection: close"));
}

// --- traversal and escapes: one test each ---
TEST_CASE("http static: ../ is refused") { WebRoot w; ExpectRefused(w, "/../secret.txt"); }
TEST_CASE("http static: ../ deeper is refused") { WebRoot w; ExpectRefused(w, "/js/../../secret.txt"); }
TEST_CASE("http static: %2e%2e is refused") { WebRoot w; ExpectRefused(w, "/%2e%2e/secret.txt"); }
TEST_CASE("http static: %2E%2E upper case is refused") { WebRoot w; ExpectRefused(w, "/js/%2E%2E/%2E%2E/secret.txt"); }
TEST_CASE("http static: ..%2f is refused") { WebRoot w; ExpectRefused(w, "/..%2fsecret.txt"); }
TEST_CASE("http static: %2e%2e%2f is refused") { WebRoot w; ExpectRefused(w, "/%2e%2e%2fsecret.txt"); }
TEST_CASE("http static: %2f inside a name never splits it") { WebRoot w; ExpectRefused(w, "/js%2fClient.js"); }
TEST_CASE("http static: %00 is refused") { WebRoot w; ExpectRefused(w, "/index.html%00.png"); }
TEST_CASE("http static: a malformed escape is refused") { WebRoot w; ExpectRefused(w, "/index%2"); }
TEST_CASE("http static: a bad hex escape is refused") { WebRoot w; ExpectRefused(w, "/index%zz.html"); }
TEST_CASE("http static: backslashes are refused") { WebRoot w; ExpectRefused(w, "/..\\secret.txt"); }
TEST_CASE("http static: %5c backslash is refused") { WebRoot w; ExpectRefused(w, "/..%5csecret.txt"); }
TEST_CASE("http static: ./ is refused") { WebRoot w; ExpectRefused(w, "/./index.html"); }
TEST_CASE("http static: dot-files are refused") { WebRoot w; ExpectRefused(w, "/.htpasswd"); }
TEST_CASE("http static: a relative symlink out of the root is refused") { WebRoot w; ExpectRefused(w, "/evil.txt"); }
TEST_CASE("http static: an absolute symlink out of the root is refused") { WebRoot w; ExpectRefused(w, "/evil_abs.txt"); }
TEST_CASE("http static: a symlinked directory out of the root is refused") { WebRoot w; ExpectRefused(w, "/evildir/file.txt"); }
TEST_CASE("http static: a FIFO is not served") { WebRoot w; ExpectRefused(w, "/fifo"); }
TEST_CASE("http static: a file used as a directory is refused") { WebRoot w; ExpectRefused(w, "/index.html/x"); }
TEST_CASE("http static: a missing file is 404") { WebRoot w; ExpectRefused(w, "/nope.html"); }
TEST_CASE("http static: an absolute-form target is refused") { WebRoot w; ExpectRefused(w, "http://relay/index.html"); }

TEST_CASE("http static: symlinks inside the root and into symlink_roots are followed") {
  WebRoot w;
  StaticResponse r = w.Get("/alias.html");
  REQUIRE(r.status == 200);
  CHECK(ReadFd(r.file.get()) == "<html>index</html>");
  r = w.Get("/scripts/Client.js");  // a symlinked directory inside the root
  REQUIRE(r.status == 200);
  CHECK(r.size == 5000);
  CHECK(w.Get("/scripts").status == 301);
  r = w.Get("/js/lib/jquery.js");
  REQUIRE(r.status == 200);
  CHECK(ReadFd(r.file.get()) == "jquery();");
  CHECK(HasHeader(r, "Content-Type: text/javascript; charset=utf-8"));
}

TEST_CASE("http static: without symlink_roots the same link is refused") {
  WebRoot w;
  StaticOptions o;
  o.root = (w.base / "www").string();
  o.symlink_roots.clear();
  auto site = StaticSite::Open(o);
  REQUIRE(site.ok());
  RequestParser p;
  size_t used = 0;
  REQUIRE(p.Feed("GET /js/lib/jquery.js HTTP/1.1\r\nHost: a\r\n\r\n", &used) == ParseStatus::kDone);
  CHECK(site->Serve(p.request(), kNow).status == 404);
}

TEST_CASE("http static: limits on target length and depth") {
  WebRoot w;
  CHECK(w.Get("/" + std::string(3000, 'a')).status == 414);
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "/d";
  CHECK(w.Get(deep).status == 404);
}

// --- pre-compressed variants ---
TEST_CASE("http static: br preferred, then gzip, else identity; Vary always") {
  WebRoot w;
  StaticResponse r = w.Get("/js/Client.js", "Accept-Encoding: gzip, deflate, br\r\n");
  REQUIRE(r.status == 200);
  CHECK(HasHeader(r, "Content-Encoding: br"));
  CHECK(HasHeader(r, "Content-Length: 2"));
  CHECK(HasHeader(r, "Vary: Accept-Encoding"));
  CHECK(HasHeader(r, "Content-Type: text/javascript; charset=utf-8"));
  CHECK(ReadFd(r.file.get()) == "BR");
  r = w.Get("/js/Client.js", "Accept-Encoding: gzip\r\n");
  CHECK(HasHeader(r, "Content-Encoding: gzip"));
  CHECK(ReadFd(r.file.get()) == "GZ");
  r = w.Get("/js/Client.js", "Accept-Encoding: br;q=0, gzip;q=0.5\r\n");
  CHECK(HasHeader(r, "Content-Encoding: gzip"));
  r = w.Get("/js/Client.js", "Accept-Encoding: gzip;q=0.000\r\n");
  CHECK(r.head.find("Content-Encoding") == std::string::npos);
  CHECK(HasHeader(r, "Vary: Accept-Encoding"));
  CHECK(r.size == 5000);
  r = w.Get("/js/Client.js");
  CHECK(r.head.find("Content-Encoding") == std::string::npos);
  CHECK(w.Get("/index.html", "Accept-Encoding: br\r\n").head.find("Vary:") == std::string::npos);
}

TEST_CASE("http static: each variant has its own ETag") {
  WebRoot w;
  auto etag = [](const StaticResponse& r) {
    size_t p = r.head.find("ETag: ");
    return r.head.substr(p, r.head.find("\r\n", p) - p);
  };
  CHECK(etag(w.Get("/js/Client.js", "Accept-Encoding: br\r\n")) != etag(w.Get("/js/Client.js")));
}

// --- conditional requests ---
TEST_CASE("http static: If-None-Match with the ETag gives 304 without a file") {
  WebRoot w;
  StaticResponse first = w.Get("/index.html");
  size_t p = first.head.find("ETag: ") + 6;
  std::string etag = first.head.substr(p, first.head.find("\r\n", p) - p);
  StaticResponse r = w.Get("/index.html", "If-None-Match: \"x\", W/" + etag + "\r\n");
  CHECK(r.status == 304);
  CHECK_FALSE(r.file.valid());
  CHECK(r.head.find("Content-Length") == std::string::npos);
  CHECK(w.Get("/index.html", "If-None-Match: \"other\"\r\n").status == 200);
}

TEST_CASE("http static: If-Modified-Since") {
  WebRoot w;
  CHECK(w.Get("/index.html", "If-Modified-Since: " + HttpDate(time(nullptr) + 3600) + "\r\n").status == 304);
  CHECK(w.Get("/index.html", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n").status == 200);
  CHECK(w.Get("/index.html", "If-Modified-Since: yesterday\r\n").status == 200);
}

TEST_CASE("http static: HTTP dates") {
  CHECK(HttpDate(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");
  time_t t = 0;
  REQUIRE(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT", &t));
  CHECK(t == 784111777);
  CHECK_FALSE(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", &t));
  CHECK_FALSE(ParseHttpDate("Sun, 06 Xyz 1994 08:49:37 GMT", &t));
}

TEST_CASE("http static: errors carry the security headers and no detail") {
  WebRoot w;
  StaticResponse r = w.Get("/nope/secret-name.html");
  CHECK(r.status == 404);
  CHECK(HasHeader(r, "X-Content-Type-Options: nosniff"));
  CHECK(r.head.find("secret-name") == std::string::npos);
}

TEST_CASE("http static: a missing web root is an error naming it") {
  StaticOptions o;
  o.root = "/nonexistent/www-root";
  auto site = StaticSite::Open(o);
  REQUIRE_FALSE(site.ok());
  CHECK(site.error().message.find("/nonexistent/www-root") != std::string::npos);
}

TEST_CASE("http static: xpra's own HTML5 client from /usr/share/xpra/www (xpra is a test package)") {
  REQUIRE(fs::is_directory(kDefaultWebRoot));
  auto site = StaticSite::Open(StaticOptions{});
  REQUIRE(site.ok());
  for (const char* target : {"/", "/connect.html", "/js/Client.js", "/js/lib/jquery.js"}) {
    CAPTURE(target);
    RequestParser p;
    size_t used = 0;
    REQUIRE(p.Feed(std::string("GET ") + target + " HTTP/1.1\r\nHost: a\r\n\r\n", &used) == ParseStatus::kDone);
    StaticResponse r = site->Serve(p.request(), kNow);
    CHECK(r.status == 200);
    CHECK(r.file.valid());
    CHECK(r.size > 0);
  }
}

}  // namespace
}  // namespace xr::http
