#pragma once
// "pam" (alias "sys"): the user's system password checked by a PAM stack (xpra
// server/auth/pam_auth.py). PAM needs the password itself: the client answers an "xor"
// challenge, which the engine sends only over TLS or AES (needs_password()).

#include <memory>

#include "auth/auth_module.h"
#include "auth/auth_util.h"

namespace xr::auth {

// Options:
//   service=       PAM service name, a file in /etc/pam.d (default "xpra"; the relay ships
//                  deploy/pam.d/xpra-relay: install it as /etc/pam.d/xpra-relay and set
//                  service=xpra-relay, or as /etc/pam.d/xpra)
//   check-account= also run the account stack (expired or locked accounts refused); default yes
//   timeout=       seconds one check may take (default 10, at most 300); a check past it fails
//                  as "authentication service unavailable" and its thread is left to finish
//   confdir=       a directory of PAM service files instead of /etc/pam.d (pam_start_confdir)
//   prompt=
// Otherwise kMalformed.
Expected<std::unique_ptr<AuthModule>> CreatePamAuth(const ModuleOptions& options);

// Calls PAM checks may leave hanging past their timeout before new ones are refused.
inline constexpr int kPamMaxStuck = 4;

}  // namespace xr::auth
