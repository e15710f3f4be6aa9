#pragma once
// "ldap" (alias "ldap3"): the password checked by a simple bind to an LDAP directory with
// OpenLDAP's libldap (xpra server/auth/ldap_auth.py and ldap3_auth.py). The bind needs the
// password itself: the client answers an "xor" challenge, sent only over TLS or AES.

#include <memory>
#include <string>
#include <string_view>

#include "auth/auth_module.h"
#include "auth/auth_util.h"

namespace xr::auth {

// Options (xpra's first):
//   host=localhost, port= (389, or 636 with tls=1), tls= (0: ldap://, 1: ldaps://, as xpra;
//   starttls: ldap:// then StartTLS), cacert= (CA file for the server's certificate; with TLS
//   the certificate is always verified), username_format= (the DN to bind as: %username and
//   %domain replaced, the user name escaped as a DN value; default "cn=%username, o=%domain"),
//   encoding= (utf-8 only: xpra's default),
//   uid=, gid= (the user's uid/gid; default: the entry's uidNumber/gidNumber, else NSS's),
//   search_base= (search-then-bind: find the user's entry under this DN with search_filter=,
//   default "(uid=%username)", the name escaped as a filter value; exactly one entry must match),
//   bind_dn=, bind_password= (who searches; default anonymous),
//   timeout= (seconds, default 5, at most 60: a directory that does not answer within it fails
//   as "authentication service unavailable"), prompt=.
// Otherwise kMalformed.
Expected<std::unique_ptr<AuthModule>> CreateLdapAuth(const ModuleOptions& options);

// `value` escaped as an RFC 4514 DN attribute value (",+\"\\<>;=" and NUL escaped, a leading
// '#' or space and a trailing space escaped).
std::string EscapeDnValue(std::string_view value);

// `value` escaped as an RFC 4515 filter value ("*()\\" and NUL as \XX).
std::string EscapeFilterValue(std::string_view value);

}  // namespace xr::auth
