#pragma once
// Hello rewriting between the two legs, as xpra 3.1's proxy does it (proxy_instance.py).

#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "codec/value.h"

namespace xr::engine {

// What the relay says about itself in the hellos it forwards.
struct ProxyIdentity {
  std::string version;   // xpra-relay version
  std::string hostname;  // this machine
};

// Digests the relay can answer a server's challenge with (sent as "digest" to the server): hmac
// only, never "xor" (it would send the entry's password over the plain server leg).
const std::vector<std::string>& RelayDigests();

// The request a client's hello makes, as xpra 3.1's server reads it (`request`, or a
// `<mode>_request` flag; `command_request`): "" for an ordinary session. The relay passes on,
// after login and to the user's own session only, the requests that change nothing: info, id,
// screenshot, connect_test, and detach (the user's own other clients). Any other (stop, exit,
// print, event, command, or unknown) -> kUnsupported, with a message for the client.
Expected<std::string> HelloRequest(const Value& caps);

// The display the client asks for ("" when none): xpra 3.1's string `display` (":100"), or
// xpra 6.x's `session.display` ("100", made ":100"; 6.x's `display` is a dict of the client's
// own display capabilities).
std::string RequestedDisplay(const Value& caps);

// The hello sent to the server: the client's caps minus the keys starting with "cipher",
// "challenge", "digest", "salt-digest", "aliases" and "encryption" (xpra 6.x's AES dict), and
// minus "ssl-upgrade" from a 6.x client's "packet-types" (the server leg stays plain), plus the
// proxy keys, the relay's own digest lists, and the entry's whitelisted session options
// (compression_level, lz4, lzo, zlib, rencode, bencode, yaml, rencodeplus). Request keys are dropped, but for the one HelloRequest() lets
// through, sent as `request`. Compression caps stay: frames pass through without recompression,
// so the server must pick a compressor the client itself supports.
Value MakeServerHello(const Value& client_caps,
                      const std::vector<std::pair<std::string, std::string>>& session_options,
                      const ProxyIdentity& proxy);

// The hello sent to the client: the server's caps minus "aliases*", plus the proxy keys and,
// when the client leg is encrypted, `cipher_caps` (the relay's new receive parameters).
Value MakeClientHello(const Value& server_caps, const ProxyIdentity& proxy, const Value* cipher_caps);

// The whitelisted, typed session options (xpra's sanitize_session_options); others dropped.
std::vector<std::pair<std::string, Value>> SanitizeSessionOptions(
    const std::vector<std::pair<std::string, std::string>>& options);

// "password" from the session options, or "" when there is none.
std::string SessionPassword(const std::vector<std::pair<std::string, std::string>>& options);

}  // namespace xr::engine
