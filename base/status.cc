#include "base/status.h"

namespace xr {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kTruncated: return "truncated";
    case ErrorCode::kMalformed: return "malformed";
    case ErrorCode::kTooLarge: return "too large";
    case ErrorCode::kTooDeep: return "too deep";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kAuthFailed: return "authentication failed";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kIo: return "i/o error";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kInternal: return "internal error";
    case ErrorCode::kLimited: return "limited";
  }
  return "unknown";
}

}  // namespace xr
