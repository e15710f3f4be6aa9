#include "auth/cached_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace xr::auth {
namespace {

constexpr size_t kMaxFileSize = 16u << 20;

FileStamp StampOf(const struct stat& st) {
  FileStamp s;
  s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  s.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  s.size = static_cast<int64_t>(st.st_size);
  s.inode = static_cast<uint64_t>(st.st_ino);
  s.device = static_cast<uint64_t>(st.st_dev);
  return s;
}

Error IoError(const std::string& what, const std::string& path, int err) {
  return MakeError(ErrorCode::kIo, what + " '" + path + "': " + std::strerror(err));
}

}  // namespace

Expected<FileStamp> StatFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return IoError("cannot access", path, errno);
  return StampOf(st);
}

Expected<std::string> ReadWholeFile(const std::string& path, FileStamp* stamp) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open", path, errno);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return IoError("cannot access", path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return MakeError(ErrorCode::kIo, "'" + path + "' is not a regular file");
  }
  if (static_cast<size_t>(st.st_size) > kMaxFileSize) {
    close(fd);
    return MakeError(ErrorCode::kTooLarge, "'" + path + "' is larger than 16 MiB");
  }
  if (stamp != nullptr) *stamp = StampOf(st);
  std::string out;
  char buf[8192];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd);
      return IoError("cannot read", path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxFileSize) {
      close(fd);
      return MakeError(ErrorCode::kTooLarge, "'" + path + "' is larger than 16 MiB");
    }
  }
  close(fd);
  return out;
}

}  // namespace xr::auth
