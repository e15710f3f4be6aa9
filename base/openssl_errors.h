#pragma once
// OpenSSL's per-thread error queue as text, for error messages and log lines.

#include <string>

namespace xr {

// The queued OpenSSL errors of this thread, oldest first, as one line joined by "; "; the queue
// is emptied. Empty when nothing was queued (callers say what failed instead).
std::string TakeOpenSslErrors();

}  // namespace xr
