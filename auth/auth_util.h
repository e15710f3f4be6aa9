#pragma once
// Helpers shared by the authentication modules: module spec parsing, xpra's option
// dictionaries, uid/gid lookup and user names.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/auth_module.h"
#include "base/status.h"

namespace xr::auth {

using OptionList = std::vector<std::pair<std::string, std::string>>;

// A parsed "--tcp-auth" value: module name and its options in order.
struct ModuleSpec {
  std::string name;     // lower case, '-' kept ("multifile")
  OptionList options;   // later duplicates override earlier ones in ModuleOptions
};

// Splits "name", "name,k=v,k2=v2" or "name:k=v,k2=v2" like xpra's get_auth_module(): the module
// name ends at the first ':' or ','. Options are separated by ','; an element that is not
// `identifier=...` continues the previous value (so SQL queries may contain commas). Empty name
// or an option with no name -> kMalformed.
Expected<ModuleSpec> ParseModuleSpec(std::string_view spec);

// The options one module accepts; every module also accepts `prompt`.
class ModuleOptions {
 public:
  ModuleOptions(std::string module, OptionList options);

  // kMalformed naming the first option not in `allowed` (or "prompt") and listing the valid ones.
  Status CheckAllowed(std::initializer_list<std::string_view> allowed) const;

  // The last value given for `key`, if any.
  std::optional<std::string> Get(std::string_view key) const;

  // Like Get(), but an empty value is kMalformed and an absent one yields `fallback`
  // (kMalformed "<module> authentication needs <key>=" when fallback is nullopt).
  Expected<std::string> GetNonEmpty(std::string_view key, std::optional<std::string> fallback) const;

  // The module name as configured.
  const std::string& module() const { return module_; }

  // `prompt=` or "password".
  std::string prompt() const;

 private:
  std::string module_;
  OptionList options_;
};

// xpra's util.parse_simple_dict(): elements split on `sep`, empty ones skipped, each split on the
// first '='; elements with no '=' are dropped. Order kept; a repeated key keeps its last value
// at the position of its first occurrence.
OptionList ParseSimpleDict(std::string_view s, char sep);

// ParseSimpleDict(s, ';') as "KEY=VALUE" strings (env_options).
std::vector<std::string> ParseEnvOptions(std::string_view s);

// Splits a displays field on ',', trims spaces around each entry and drops empty entries.
std::vector<std::string> SplitDisplays(std::string_view s);

// xpra's parse_uid(): an integer (spaces and sign allowed), else the uid of that user name, else
// of $XPRA_AUTHENTICATION_DEFAULT_UID (default "nobody") when `v` is empty, else getuid().
int64_t ParseUid(std::string_view v);

// xpra's parse_gid(): as ParseUid with group names, $XPRA_AUTHENTICATION_DEFAULT_GID and getgid().
int64_t ParseGid(std::string_view v);

// The relay's own user name (getpass.getuser(): $LOGNAME, $USER, $LNAME, $USERNAME, then passwd).
std::string ProcessUsername();

// `requested`, or ProcessUsername() when it is empty (xpra's verify_auth does the same).
std::string EffectiveUsername(std::string_view requested);

// One session entry with the process's uid/gid and no displays (the registry scans socket dirs).
SessionEntry ProcessSessionEntry();

// `path` made absolute against the current directory (xpra resolves against exec_cwd).
std::string AbsolutePath(std::string_view path);

// The bytes xpra hashes for a text password (os_util.strtobytes: str.encode("latin1")): UTF-8
// text with every character <= U+00FF becomes latin-1; text that is not valid UTF-8 is taken as
// raw bytes; nullopt when a character is above U+00FF (xpra cannot encode it, so no client
// can ever match it).
std::optional<std::string> TextPasswordBytes(std::string_view utf8);

// Trims ASCII spaces, tabs, CR and LF at both ends.
std::string_view TrimSpace(std::string_view s);

}  // namespace xr::auth

namespace xr::auth {

// The system account `username` from NSS (getpwnam_r, not cached: accounts come and go):
// uid and primary gid, no displays (the registry scans that user's socket dirs); nullopt when
// NSS does not know the name.
std::optional<SessionEntry> SystemUserEntry(const std::string& username);

// The user name of `uid` from NSS (getpwuid_r, not cached); nullopt when unknown.
std::optional<std::string> UserNameOfUid(int64_t uid);

// Parses xpra's peercred-style id lists ("1000:alice:$UID"-like, ':'-separated; numbers or
// names): `users` true resolves user names to uids, false group names to gids. An unknown name
// is kMalformed naming it (xpra only warns; a typo in an allow-list should not pass silently).
Expected<std::vector<int64_t>> ParseIdList(std::string_view list, bool users);

}  // namespace xr::auth

namespace xr::auth {

// Option `key` as xpra's parse_bool: 1/yes/true/on or 0/no/false/off (any case); absent:
// `fallback`; anything else kMalformed naming the option.
Expected<bool> GetBoolOption(const ModuleOptions& options, std::string_view key, bool fallback);

// Option `key` in seconds (decimals allowed) as milliseconds, within (0, max_seconds]; absent:
// `fallback_seconds`; anything else kMalformed naming the option and the range.
Expected<int64_t> GetSecondsOption(const ModuleOptions& options, std::string_view key, double fallback_seconds,
                                   double max_seconds);

// The address part of an engine peer name ("1.2.3.4:5678" -> "1.2.3.4", "[::1]:5" -> "::1",
// "unix:/path" -> "localhost"), for PAM_RHOST and the like.
std::string PeerHost(std::string_view peer);
// One row of xpra's sessions query as text columns (a missing or NULL column is empty): uid/gid
// through ParseUid/ParseGid, displays through SplitDisplays, env_options through
// ParseEnvOptions, session_options through ParseSimpleDict(';'). Shared by the SQL modules.
SessionEntry MakeSessionEntry(std::string_view uid, std::string_view gid, std::string_view displays,
                              std::string_view env_options, std::string_view session_options);

}  // namespace xr::auth
