// Fuzzes StaticSite::Serve's path handling: whatever the request target (the fuzz input, put
// into a GET request line), a file handed out is one of the servable files (inside the web
// root or the symlink root, not hidden; never the secret or the file outside), and the
// response head is well-formed: known headers only, no header injection. The web root is made
// once in a temporary directory: files, a directory, symlinks inside, out of the root
// (relative, absolute, directory) and into the symlink root.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <set>
#include <utility>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "codec/http_request.h"
#include "engine/http_static.h"

namespace {

struct Fixture {
  std::string base, root, shared, secret;
  xr::http::StaticSite* site = nullptr;
  std::set<std::pair<dev_t, ino_t>> servable;  // the only files Serve may hand out

  static void Write(const std::string& path, const std::string& content) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) std::abort();
    std::fputs(content.c_str(), f);
    std::fclose(f);
  }

  Fixture() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string tmpl = std::string(tmp ? tmp : "/tmp") + "/http_static_fuzz.XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    char real[PATH_MAX];
    if (::realpath(tmpl.c_str(), real) == nullptr) std::abort();
    base = real;
    root = base + "/www";
    shared = base + "/shared";
    secret = base + "/secret.txt";
    ::mkdir(root.c_str(), 0700);
    ::mkdir(shared.c_str(), 0700);
    ::mkdir((root + "/js").c_str(), 0700);
    ::mkdir((base + "/outside").c_str(), 0700);
    Write(secret, "SECRET");
    Write(base + "/outside/x.html", "OUTSIDE");
    Write(shared + "/lib.js", "lib");
    Write(root + "/index.html", "index");
    Write(root + "/js/a.js", "a");
    Write(root + "/js/a.js.gz", "gz");
    Write(root + "/.hidden", "hidden");
    if (::symlink("../secret.txt", (root + "/rel").c_str()) != 0 ||
        ::symlink(secret.c_str(), (root + "/abs").c_str()) != 0 ||
        ::symlink("../outside", (root + "/dir").c_str()) != 0 ||
        ::symlink("index.html", (root + "/in.html").c_str()) != 0 ||
        ::symlink("../../shared/lib.js", (root + "/js/lib.js").c_str()) != 0) {
      std::abort();
    }
    for (const std::string& f : {root + "/index.html", root + "/js/a.js", root + "/js/a.js.gz", shared + "/lib.js"}) {
      struct stat st;
      if (::stat(f.c_str(), &st) != 0) std::abort();
      servable.insert({st.st_dev, st.st_ino});
    }
    xr::http::StaticOptions o;
    o.root = root;
    o.symlink_roots = {shared};
    auto s = xr::http::StaticSite::Open(o);
    if (!s.ok()) std::abort();
    site = new xr::http::StaticSite(std::move(*s));
  }
  ~Fixture() {  // at exit: the temporary tree goes (a crash leaves it, to look at)
    delete site;
    std::error_code ec;
    std::filesystem::remove_all(base, ec);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture fx;
  std::string_view target(reinterpret_cast<const char*>(data), size);
  std::string head = "GET " + std::string(target) + " HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip, br\r\n\r\n";
  xr::http::RequestParser parser;
  size_t used = 0;
  if (parser.Feed(head, &used) != xr::http::ParseStatus::kDone) return 0;  // not a request line
  xr::http::StaticResponse r = fx.site->Serve(parser.request(), 0);
  if (r.head.rfind("HTTP/1.1 ", 0) != 0 || r.head.size() < 4 || r.head.compare(r.head.size() - 4, 4, "\r\n\r\n") != 0) {
    std::abort();
  }
  if (r.file.valid()) {
    // By identity, not by name (/proc paths differ inside sandboxes): one of the servable files.
    struct stat st;
    if (r.status != 200 || ::fstat(r.file.get(), &st) != 0) std::abort();
    if (fx.servable.count({st.st_dev, st.st_ino}) == 0) std::abort();
    if (static_cast<uint64_t>(st.st_size) != r.size) std::abort();
  }
  // No header injection: every line is a header the site writes, with no stray CR or LF,
  // and the only place a name from the target may appear is a 301's Location.
  static const char* kNames[] = {"Date", "ETag", "Last-Modified", "Cache-Control", "Vary", "Content-Type",
                                 "Content-Encoding", "Content-Length", "Connection", "Location", "Allow",
                                 "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy",
                                 "Content-Security-Policy"};
  std::string_view rest(r.head);
  rest.remove_prefix(rest.find("\r\n") + 2);  // the status line
  while (rest.size() > 2) {
    const size_t end = rest.find("\r\n");
    std::string_view line = rest.substr(0, end);
    if (line.find_first_of("\r\n") != std::string_view::npos) std::abort();
    const size_t colon = line.find(": ");
    if (colon == std::string_view::npos) std::abort();
    bool known = false;
    for (const char* n : kNames) known = known || line.substr(0, colon) == n;
    if (!known || (line.substr(0, colon) == "Location" && r.status != 301)) std::abort();
    rest.remove_prefix(end + 2);
  }
  if (rest != "\r\n") std::abort();
  return 0;
}
