#pragma once
// Error, Status and Expected<T>: the project's exception-free result types (C++20 has no
// std::expected). The bottom layer: every package may use it; it depends on nothing of ours.

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace xr {

// What went wrong, grouped so callers can choose an xpra disconnect reason.
enum class ErrorCode {
  kOk = 0,
  kTruncated,        // input ended before a complete value (streaming: wait for more)
  kMalformed,        // bytes that can never be valid (bad tag, bad header, bad padding)
  kTooLarge,         // a size or count over a configured limit
  kTooDeep,          // nesting over the depth limit
  kUnsupported,      // valid but not supported here (e.g. yaml, lzo, brotli)
  kAuthFailed,       // credentials rejected
  kNotFound,         // user, display or session unknown
  kIo,               // system call failure
  kTimeout,          // a wait ran out
  kInternal,         // a bug or an unexpected library failure
  kLimited,          // refused for now by a policy limit (back-off, session cap); the message is for the user
};

// Short stable name for an ErrorCode (for logs and tests).
const char* ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;  // readable detail; never contains secrets
};

inline Error MakeError(ErrorCode code, std::string message) { return Error{code, std::move(message)}; }

// Either a T or an Error. Check ok() before value().
template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}              // NOLINT(google-explicit-constructor)
  Expected(Error error) : v_(std::move(error)) {}          // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { assert(!ok()); return std::get<1>(v_); }
  Error&& take_error() { assert(!ok()); return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

// A result with no value: ok or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)
  static Status Ok() { return Status(); }

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { assert(!ok_); return error_; }

 private:
  Error error_{ErrorCode::kOk, {}};
  bool ok_ = true;
};

}  // namespace xr
