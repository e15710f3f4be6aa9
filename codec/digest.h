#pragma once
// Challenge/response digests exactly as xpra 3.1.3 computes them (net/digest.py gendigest(),
// client/client_base.py send_challenge_reply(), server/auth/sys_auth_base.py). All inputs are
// raw bytes: xpra turns text into bytes with latin-1 (os_util.strtobytes), so a caller holding
// UTF-8 text must convert it to latin-1 first. See docs/protocol-notes.md,
// "Challenge/response in xpra 3.1".

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace xr::digest {

// True for the digests we implement: "hmac" (legacy name of hmac+md5),
// "hmac+md5|sha1|sha224|sha256|sha384|sha512" and "xor". xpra's "des" and the sha3/blake2
// variants its clients also list are never chosen by xpra's choose_digest() and are not here.
bool IsSupported(std::string_view digest);

// Strongest hmac digest the client offers (sha512 > sha384 > sha256 > sha224 > sha1 > md5;
// "hmac" == md5, used only when no "hmac+..." matches), "xor" only if allow_xor and the client
// offers it; "" when nothing acceptable. (xpra's server assumes ["hmac"] for a missing
// `digest` key and ["xor"] for a missing `salt-digest` key.)
std::string ChooseDigest(const std::vector<std::string>& client_digests, bool allow_xor);

// As the client combines them: "xor" -> client XOR server (server NUL-padded or cut to the
// client salt's length); else HMAC(key=client_salt, msg=server_salt).hexdigest() (lower-case
// hex text). Unsupported digest -> kUnsupported; an empty salt -> kMalformed.
Expected<std::string> CombineSalts(std::string_view salt_digest, std::string_view client_salt,
                                   std::string_view server_salt);

// The response a client holding `password` sends for `digest` over `salt` (the combined salt):
// hmac digests -> HMAC(key=password, msg=salt).hexdigest(); "xor" -> password XOR salt
// (salt NUL-padded or cut to the password's length: binary, len(password) bytes).
// Unsupported digest -> kUnsupported; empty password or salt -> kMalformed.
Expected<std::string> ComputeResponse(std::string_view digest, std::string_view password,
                                      std::string_view salt);

// Constant-time check of a client's response (false for an unsupported digest or an empty
// password, salt or response, like xpra's verify_digest()).
bool VerifyResponse(std::string_view digest, std::string_view password, std::string_view salt,
                    std::string_view response);

// Equality whose running time depends only on the sizes, never on the contents (CRYPTO_memcmp;
// a size mismatch still runs a full-length comparison and then returns false).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// For "xor" challenges (pam/sys/ldap style, sys_auth_base.authenticate_check()): the password
// the client sent, = response XOR salt (salt NUL-padded or cut to the response's length).
// Empty response or salt -> kMalformed.
Expected<std::string> RecoverXorPassword(std::string_view response, std::string_view salt);

}  // namespace xr::digest
