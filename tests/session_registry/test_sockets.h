#pragma once
// Real unix-domain listeners in a temporary directory, for the session registry tests.

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

namespace xr::registry::testing {

// A short temporary directory (unix socket paths are limited to 107 bytes), removed at the end.
class SocketDir {
 public:
  SocketDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl = std::string(base != nullptr && std::string_view(base).size() < 60 ? base : "/tmp") +
                       "/xr-reg-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~SocketDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  SocketDir(const SocketDir&) = delete;
  SocketDir& operator=(const SocketDir&) = delete;

  // The directory.
  const std::string& path() const { return path_; }

  // path()/name.
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// A listening AF_UNIX socket bound at `path`; Kill() closes it but leaves the file (a dead
// session: connect() gets ECONNREFUSED).
class UnixListener {
 public:
  explicit UnixListener(std::string path) : path_(std::move(path)) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr;
    std::memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.data(), std::min(path_.size(), sizeof(addr.sun_path) - 1));
    ok_ = fd_ >= 0 && bind(fd_, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) == 0 && listen(fd_, 16) == 0;
  }
  ~UnixListener() {
    Kill();
    unlink(path_.c_str());
  }
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;

  // True when bound and listening.
  bool ok() const { return ok_; }

  // Stops listening; the socket file stays.
  void Kill() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  // The socket path.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  bool ok_ = false;
};

}  // namespace xr::registry::testing
