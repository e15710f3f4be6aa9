#pragma once
// "file": the whole content of `filename=` is the password, byte for byte: like xpra
// (server/auth/file_auth.py) a trailing newline is NOT stripped and is part of the password.
// The file is re-read when it changes.

#include <memory>

#include "auth/auth_module.h"
#include "auth/auth_util.h"

namespace xr::auth {

// Options: filename (required; relative to the current directory), prompt. Bad options ->
// kMalformed; the file cannot be read -> kIo.
Expected<std::unique_ptr<AuthModule>> CreateFileAuth(const ModuleOptions& options);

}  // namespace xr::auth
