#pragma once
// CachedFile<T>: a file read and parsed once, re-read whenever it changes on disk (xpra's
// file_auth_base.py checks the mtime before each authentication). Thread-safe.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "base/status.h"

namespace xr::auth {

// What identifies one version of a file.
struct FileStamp {
  int64_t mtime_ns = -1;
  int64_t ctime_ns = -1;
  int64_t size = -1;
  uint64_t inode = 0;
  uint64_t device = 0;
  bool operator==(const FileStamp&) const = default;
};

// stat(path): kIo with the reason when it fails.
Expected<FileStamp> StatFile(const std::string& path);

// The whole file (at most 16 MiB, else kTooLarge), and its stamp before reading in *stamp.
Expected<std::string> ReadWholeFile(const std::string& path, FileStamp* stamp);

template <typename T>
class CachedFile {
 public:
  using Parser = std::function<T(std::string data)>;

  CachedFile(std::string path, Parser parse) : path_(std::move(path)), parse_(std::move(parse)) {}

  // Reads the file now; on failure keeps the previous contents and returns kIo.
  Status Load() {
    std::lock_guard<std::mutex> lock(mu_);
    return LoadLocked();
  }

  // The current contents, re-read first when the file changed since the last read. kIo when the
  // file is missing (authentication must then fail, as in xpra); when the changed file cannot be
  // read (not a regular file, too large, unreadable) the previous contents are kept.
  Expected<std::shared_ptr<const T>> Get() {
    std::lock_guard<std::mutex> lock(mu_);
    Expected<FileStamp> stamp = StatFile(path_);
    if (!stamp.ok()) return stamp.error();
    if (data_ == nullptr || !(*stamp == stamp_)) {
      Status s = LoadLocked();
      if (!s.ok() && data_ == nullptr) return s.error();
    }
    return data_;
  }

  // The file's absolute path.
  const std::string& path() const { return path_; }

 private:
  Status LoadLocked() {
    FileStamp stamp;
    Expected<std::string> content = ReadWholeFile(path_, &stamp);
    if (!content.ok()) return content.error();
    data_ = std::make_shared<const T>(parse_(std::move(content).value()));
    stamp_ = stamp;
    return Status::Ok();
  }

  const std::string path_;
  const Parser parse_;
  std::mutex mu_;
  std::shared_ptr<const T> data_;
  FileStamp stamp_;
};

}  // namespace xr::auth
