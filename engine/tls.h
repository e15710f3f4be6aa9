#pragma once
// TLS with OpenSSL 3 for the relay's client legs, with no socket calls: a TlsSession takes the
// ciphertext the reactor received and hands back plaintext, takes plaintext and hands back the
// ciphertext to send (through a BIO of our own, so no OpenSSL buffer lingers on an idle
// connection besides what SSL_MODE_RELEASE_BUFFERS frees). Once a TLS 1.3 handshake is done,
// the relay's own record layer (engine/tls_record.h) takes over and the SSL object is freed:
// an established connection holds its keys and sequence numbers, not OpenSSL's ~13 KiB.
//
// A ContextSet is the server configuration: one SSL_CTX per certificate/key pair, picked by
// SNI; built once at start-up and again on reload (SIGHUP). Each TlsSession holds the set it
// started with, so a reload changes new handshakes only.

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace xr::tls {

// One --ssl-cert/--ssl-key pair. key_file empty: the key is in cert_file (as xpra's ssl-key).
struct CertKeyPair {
  std::string cert_file;  // PEM: the certificate, then its chain
  std::string key_file;
};

enum class ClientVerify : uint8_t {
  kNone,      // no certificate asked for
  kOptional,  // asked for; a certificate sent must verify against ca_certs
  kRequired,  // a verified certificate is required
};

struct TlsOptions {
  std::vector<CertKeyPair> certs;  // the first one is the default (no SNI, or no name matches)
  // A directory of pairs, added after `certs`: NAME.pem or NAME.crt with NAME.key beside it, or a
  // NAME.pem holding certificate and key; hidden files and *.key alone are skipped; name order.
  std::string cert_dir;
  // --ssl-protocols: versions separated by ',', ':' or spaces: TLSv1.2, TLSv1.3 (xpra's
  // spellings TLSv1_2, TLSv1_3 too; "TLS"/"SSLv23" mean both). Older versions are refused.
  std::string protocols = "TLSv1.2,TLSv1.3";
  // --ssl-ciphers: an OpenSSL cipher list for TLS 1.2; TLS_* names in it set the TLS 1.3
  // suites. Empty: forward-secret AEAD suites only (below) and OpenSSL's TLS 1.3 default.
  std::string ciphers;
  std::string ca_certs;  // --ssl-ca-certs: PEM file or hashed directory of client CAs
  // --ssl-client-verify-mode: none|optional|required. Default: optional when ca_certs is set,
  // else none (xpra asks every client for a certificate; browsers may then prompt).
  std::string client_verify_mode;
  std::vector<std::string> alpn = {"http/1.1"};  // protocols chosen when the client offers one
  uint32_t session_timeout_s = 7200;             // lifetime of a session ticket (no server cache)
  int tls13_tickets = 1;                         // tickets sent after a TLS 1.3 handshake
};

// The TLS 1.2 cipher list used when TlsOptions::ciphers is empty.
extern const char kDefaultTls12Ciphers[];

struct TlsLimits {
  // Ciphertext received while the handshake is unfinished (data in the same read as the
  // client's Finished does not count).
  size_t max_handshake_bytes = 32 * 1024;
  uint32_t handshake_timeout_ms = 10000;   // enforced by the caller's timer
};

// What was loaded, for the start-up / reload log and `xpra info`.
struct CertificateInfo {
  std::string cert_file;
  std::string key_file;            // the file the key came from
  std::vector<std::string> names;  // DNS names: subjectAltName, else the CN (lower case)
  time_t not_after = 0;            // expiry
};

// The immutable set of server contexts (one per certificate), shared by every session started
// with it.
class ContextSet {
 public:
  // Loads every pair and applies the options. Errors name the file or option at fault:
  // "TLS certificate /path: No such file or directory", "TLS key /k does not match certificate /c",
  // "--ssl-protocols: unknown version 'x'".
  // `previous` (optional): its session-ticket keys are kept so tickets survive a reload.
  static Expected<std::shared_ptr<const ContextSet>> Build(const TlsOptions& options,
                                                           const ContextSet* previous = nullptr);
  ~ContextSet();
  ContextSet(const ContextSet&) = delete;
  ContextSet& operator=(const ContextSet&) = delete;

  // The context for a handshake (the default one; SNI switches it during the handshake).
  SSL_CTX* default_context() const;
  // The context whose certificate covers `host` (exact or one-label wildcard, any case), or
  // the default one.
  SSL_CTX* ContextFor(std::string_view host) const;
  // DNS names (subjectAltName, else the CN) of each context's certificate, in order.
  std::vector<std::vector<std::string>> names() const;
  // Each certificate loaded, in order (the first is the default).
  std::vector<CertificateInfo> certificates() const;
  // Things to log that do not stop start-up: a key file others can read, a certificate that
  // has expired or is not yet valid.
  const std::vector<std::string>& warnings() const { return warnings_; }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry;
  ContextSet();
  std::vector<std::unique_ptr<Entry>> entries_;
  std::string alpn_wire_;  // TlsOptions::alpn in ALPN wire format (the ALPN callback reads it)
  std::vector<std::string> warnings_;
};

// The set new handshakes use, replaced as a whole by Reload(); thread-safe.
class ContextHolder {
 public:
  // Builds the first set (start-up: an error must stop the relay).
  static Expected<std::unique_ptr<ContextHolder>> Create(const TlsOptions& options);
  // Builds a new set from `options`; on success new handshakes use it, sessions already
  // started keep theirs. On error the current set stays (and the error says why).
  Status Reload(const TlsOptions& options);
  std::shared_ptr<const ContextSet> current() const;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const ContextSet> current_;
};

// One server-side TLS connection. Not thread-safe (one reactor owns it; after a TLS 1.3
// handshake its records are sealed and opened with that thread's cipher contexts).
class TlsSession {
 public:
  static Expected<TlsSession> Accept(std::shared_ptr<const ContextSet> contexts, TlsLimits limits = {});
  TlsSession(TlsSession&&) noexcept;
  TlsSession& operator=(TlsSession&&) noexcept;
  ~TlsSession();

  // Feeds ciphertext received from the peer (all of it is taken), advances the handshake and
  // appends any plaintext now readable to *plaintext. Error on a TLS failure (bad record,
  // refused version, failed client certificate, handshake over max_handshake_bytes): the
  // connection must close after sending TakeCiphertext() (it may hold an alert). Sticky.
  Status Receive(std::string_view ciphertext, std::string* plaintext);

  // Encrypts plaintext for the peer (held until the handshake completes, then sent).
  Status Send(std::string_view plaintext);

  // Queues a close_notify alert.
  void Shutdown();

  // Appends the ciphertext to send (handshake records, alerts, data) to *out and forgets it.
  void TakeCiphertext(std::string* out);
  size_t pending_ciphertext() const;

  bool handshake_done() const;
  bool peer_closed() const;  // close_notify received
  bool resumed() const;      // the handshake resumed a session (ticket or cache)
  std::string version() const;      // "TLSv1.3" ("" before the handshake)
  std::string cipher() const;       // "TLS_AES_256_GCM_SHA384"
  // version() and cipher() as OpenSSL's own static strings (nothing to keep per connection): "".
  const char* version_name() const;
  const char* cipher_name() const;
  std::string server_name() const;  // SNI host name sent by the client, "" if none
  std::string alpn() const;         // protocol chosen by ALPN, "" if none
  std::string peer_subject() const; // client certificate subject (one line), "" if none
  // TLS 1.3 after the handshake: the relay's record layer (engine/tls_record.h) took over and
  // the SSL object is gone (ssl() is null then); TLS 1.2 and other suites stay with OpenSSL.
  bool own_records() const;
  SSL* ssl() const;                 // for tests and diagnostics; null once own_records()

  struct State;  // implementation detail (the session's BIO reaches it)

 private:
  explicit TlsSession(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// Parses --ssl-protocols into OpenSSL min/max versions (TLS1_2_VERSION...).
Status ParseProtocols(std::string_view spec, int* min_version, int* max_version);

}  // namespace xr::tls
