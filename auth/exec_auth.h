#pragma once
// "exec": an external command decides (xpra server/auth/exec_auth.py): it runs as
// `COMMAND "Connection request from PEER" TIMEOUT` (xpra's arguments), exit status 0 allows,
// anything else refuses, and it is killed (its process group, by pid) at the timeout.
//
// The command never sees a password on its command line. By default, as xpra 3.1.3, no password
// is asked at all (no challenge: the command decides from what it is told). With password=stdin
// the client must send its password (an "xor" challenge, only over TLS or AES) and the command
// reads it as the first line of its standard input. Its environment: the relay's, plus
// XPRA_AUTH_USERNAME (the name the client gave), XPRA_AUTH_PEER and XPRA_AUTH_TIMEOUT.
// Standard output and error go to /dev/null.

#include <memory>

#include "auth/auth_module.h"
#include "auth/auth_util.h"

namespace xr::auth {

// Options: command= (required: an executable path, run without a shell), timeout= (seconds,
// default 20, at most 600; xpra's default is 600, longer than any login may wait),
// password= (no, the default, or stdin), uid=/gid= (the session entry's uid/gid; default: the
// NSS account of the user name when it exists, else the relay's own), prompt=. Otherwise kMalformed.
Expected<std::unique_ptr<AuthModule>> CreateExecAuth(const ModuleOptions& options);

}  // namespace xr::auth
