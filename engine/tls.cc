#include "engine/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "base/openssl_errors.h"
#include "engine/tls_record.h"

namespace xr::tls {

// Mozilla's "intermediate" TLS 1.2 list: forward secrecy and AEAD only.
const char kDefaultTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384";

namespace {

constexpr unsigned char kSessionIdContext[] = "xpra-relay";
constexpr size_t kTicketKeysSize = 80;  // OpenSSL 3: 16-byte name + 32-byte HMAC + 32-byte AES keys

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// The OpenSSL error queue as one line, then cleared.
std::string OpenSslErrors() {
  std::string out = TakeOpenSslErrors();
  return out.empty() ? "unknown OpenSSL error" : out;
}

Error Fail(std::string message) { return MakeError(ErrorCode::kMalformed, std::move(message)); }

// "PATH: No such file or directory" when the file cannot be read, else ok.
Status CheckReadable(const char* what, const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || ::access(path.c_str(), R_OK) != 0) {
    return MakeError(ErrorCode::kIo, std::string("TLS ") + what + " " + path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return MakeError(ErrorCode::kIo, std::string("TLS ") + what + " " + path + ": not a file");
  return Status::Ok();
}

// Never prompt for a pass phrase on the terminal.
int NoPassword(char*, int, int, void*) { return 0; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string> CertificateNames(X509* cert) {
  std::vector<std::string> names;
  if (cert == nullptr) return names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type != GEN_DNS) continue;
      const ASN1_STRING* s = gn->d.dNSName;
      names.push_back(Lower(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                             static_cast<size_t>(ASN1_STRING_length(s)))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    X509_NAME* subject = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (idx >= 0) {
      const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
      names.push_back(Lower(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                             static_cast<size_t>(ASN1_STRING_length(s)))));
    }
  }
  return names;
}

time_t AsnTime(const ASN1_TIME* t) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return timegm(&tm);
}

bool NameMatches(std::string_view pattern, std::string_view host) {
  if (pattern == host) return true;
  if (pattern.size() < 3 || pattern.substr(0, 2) != "*.") return false;
  const size_t dot = host.find('.');
  return dot != std::string_view::npos && dot > 0 && host.substr(dot) == pattern.substr(1);
}

// Pairs found in a certificate directory, in name order.
Expected<std::vector<CertKeyPair>> ScanCertDir(const std::string& dir) {
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    const std::string ext = it->path().extension().string();
    if (ext == ".pem" || ext == ".crt") files.push_back(it->path());
  }
  if (ec) return MakeError(ErrorCode::kIo, "TLS certificate directory " + dir + ": " + ec.message());
  std::sort(files.begin(), files.end());
  std::vector<CertKeyPair> pairs;
  for (const auto& f : files) {
    std::filesystem::path key = f;
    key.replace_extension(".key");
    CertKeyPair p{f.string(), std::filesystem::exists(key) ? key.string() : std::string()};
    pairs.push_back(std::move(p));
  }
  if (pairs.empty()) return MakeError(ErrorCode::kNotFound, "TLS certificate directory " + dir + ": no *.pem or *.crt file");
  return pairs;
}

// Splits --ssl-ciphers into the TLS 1.2 list and the TLS 1.3 suites (TLS_* names).
void SplitCiphers(std::string_view spec, std::string* tls12, std::string* tls13) {
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t end = spec.find_first_of(": ,", pos);
    if (end == std::string_view::npos) end = spec.size();
    std::string_view tok = spec.substr(pos, end - pos);
    if (!tok.empty()) {
      std::string* dst = tok.substr(0, 4) == "TLS_" ? tls13 : tls12;
      if (!dst->empty()) *dst += ':';
      dst->append(tok);
    }
    pos = end + 1;
  }
}

}  // namespace

Status ParseProtocols(std::string_view spec, int* min_version, int* max_version) {
  int lo = 0, hi = 0;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t end = spec.find_first_of(",: \t", pos);
    if (end == std::string_view::npos) end = spec.size();
    const std::string tok = Lower(spec.substr(pos, end - pos));
    pos = end + 1;
    if (tok.empty()) continue;
    int a, b;
    if (tok == "tlsv1.2" || tok == "tlsv1_2" || tok == "tls1.2") {
      a = b = TLS1_2_VERSION;
    } else if (tok == "tlsv1.3" || tok == "tlsv1_3" || tok == "tls1.3") {
      a = b = TLS1_3_VERSION;
    } else if (tok == "tls" || tok == "sslv23" || tok == "tls_server") {
      a = TLS1_2_VERSION;
      b = TLS1_3_VERSION;
    } else if (tok == "tlsv1" || tok == "tlsv1.0" || tok == "tlsv1_0" || tok == "tlsv1.1" || tok == "tlsv1_1" ||
               tok == "sslv3" || tok == "sslv2") {
      return Fail("--ssl-protocols: '" + tok + "' is refused (TLS 1.2 and 1.3 only)");
    } else {
      return Fail("--ssl-protocols: unknown version '" + tok + "' (use TLSv1.2, TLSv1.3)");
    }
    lo = lo == 0 ? a : std::min(lo, a);
    hi = std::max(hi, b);
  }
  if (lo == 0) return Fail("--ssl-protocols: no version given");
  *min_version = lo;
  *max_version = hi;
  return Status::Ok();
}

// --- ContextSet ---

struct ContextSet::Entry {
  CtxPtr ctx;
  CertificateInfo info;
};

ContextSet::ContextSet() = default;
ContextSet::~ContextSet() = default;

SSL_CTX* ContextSet::default_context() const { return entries_.front()->ctx.get(); }

SSL_CTX* ContextSet::ContextFor(std::string_view host) const {
  std::string h = Lower(host);
  while (!h.empty() && h.back() == '.') h.pop_back();
  for (const auto& e : entries_) {
    for (const std::string& n : e->info.names) {
      if (NameMatches(n, h)) return e->ctx.get();
    }
  }
  return default_context();
}

std::vector<std::vector<std::string>> ContextSet::names() const {
  std::vector<std::vector<std::string>> out;
  for (const auto& e : entries_) out.push_back(e->info.names);
  return out;
}

std::vector<CertificateInfo> ContextSet::certificates() const {
  std::vector<CertificateInfo> out;
  for (const auto& e : entries_) out.push_back(e->info);
  return out;
}

namespace {

// Takes the TLS 1.3 application traffic secrets as OpenSSL derives them (defined below).
void KeylogCallback(const SSL* ssl, const char* line);

int ServerNameCallback(SSL* ssl, int*, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;
  SSL_CTX* ctx = static_cast<const ContextSet*>(arg)->ContextFor(name);
  if (ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, ctx);
  return SSL_TLSEXT_ERR_OK;
}

int AlpnCallback(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                 void* arg) {
  const auto* ours = static_cast<const std::string*>(arg);
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, reinterpret_cast<const unsigned char*>(ours->data()),
                            static_cast<unsigned int>(ours->size()), in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // no common protocol: go on without ALPN (xpra clients send none)
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

// Settings shared by every context of a set.
struct CommonSettings {
  int min_version = TLS1_2_VERSION;
  int max_version = TLS1_3_VERSION;
  std::string tls12_ciphers;
  std::string tls13_suites;
  ClientVerify verify = ClientVerify::kNone;
  std::string ca_file, ca_dir;
};

Expected<CtxPtr> MakeContext(const CertKeyPair& pair, const CommonSettings& s, const TlsOptions& options,
                             const std::string* alpn_wire, const ContextSet* set) {
  ERR_clear_error();
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return MakeError(ErrorCode::kInternal, "SSL_CTX_new: " + OpenSslErrors());
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, s.min_version);
  SSL_CTX_set_max_proto_version(c, s.max_version);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_default_passwd_cb(c, NoPassword);
  if (SSL_CTX_set_cipher_list(c, s.tls12_ciphers.c_str()) != 1) {
    return Fail("--ssl-ciphers: no usable TLS 1.2 cipher in '" + s.tls12_ciphers + "'");
  }
  if (!s.tls13_suites.empty() && SSL_CTX_set_ciphersuites(c, s.tls13_suites.c_str()) != 1) {
    return Fail("--ssl-ciphers: unknown TLS 1.3 suite in '" + s.tls13_suites + "'");
  }
  // Certificate, chain and key, each error naming its file.
  const std::string& key_file = pair.key_file.empty() ? pair.cert_file : pair.key_file;
  if (Status st = CheckReadable("certificate", pair.cert_file); !st.ok()) return st.error();
  if (Status st = CheckReadable("key", key_file); !st.ok()) return st.error();
  if (SSL_CTX_use_certificate_chain_file(c, pair.cert_file.c_str()) != 1) {
    return Fail("TLS certificate " + pair.cert_file + ": no PEM certificate (" + OpenSslErrors() + ")");
  }
  std::unique_ptr<BIO, BioFree> kb(BIO_new_file(key_file.c_str(), "r"));
  std::unique_ptr<EVP_PKEY, PkeyFree> key(kb ? PEM_read_bio_PrivateKey(kb.get(), nullptr, NoPassword, nullptr) : nullptr);
  if (!key) {
    return Fail("TLS key " + key_file + ": no usable PEM private key (encrypted keys are not supported; " +
                OpenSslErrors() + ")");
  }
  if (X509_check_private_key(SSL_CTX_get0_certificate(c), key.get()) != 1) {
    ERR_clear_error();
    return Fail("TLS key " + key_file + " does not match certificate " + pair.cert_file);
  }
  if (SSL_CTX_use_PrivateKey(c, key.get()) != 1) return Fail("TLS key " + key_file + ": " + OpenSslErrors());
  // Sessions: tickets (and the server cache for TLS 1.2 session ids), one id context for all.
  SSL_CTX_set_session_id_context(c, kSessionIdContext, sizeof kSessionIdContext - 1);
  SSL_CTX_set_timeout(c, static_cast<long>(options.session_timeout_s));
  SSL_CTX_set_num_tickets(c, static_cast<size_t>(std::max(0, options.tls13_tickets)));
  // Resumption by tickets only: no per-client state in the server (a peer cannot fill a cache).
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  // Client certificates.
  if (s.verify != ClientVerify::kNone) {
    if (SSL_CTX_load_verify_locations(c, s.ca_file.empty() ? nullptr : s.ca_file.c_str(),
                                      s.ca_dir.empty() ? nullptr : s.ca_dir.c_str()) != 1) {
      return Fail("--ssl-ca-certs " + options.ca_certs + ": " + OpenSslErrors());
    }
    if (!s.ca_file.empty()) {
      STACK_OF(X509_NAME)* cas = SSL_load_client_CA_file(s.ca_file.c_str());
      if (cas != nullptr) SSL_CTX_set_client_CA_list(c, cas);
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | (s.verify == ClientVerify::kRequired ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       nullptr);
  }
  if (!alpn_wire->empty()) SSL_CTX_set_alpn_select_cb(c, AlpnCallback, const_cast<std::string*>(alpn_wire));
  SSL_CTX_set_tlsext_servername_callback(c, ServerNameCallback);
  // The secrets the relay's TLS 1.3 record layer takes over with (engine/tls_record.h); no
  // secret is written anywhere.
  SSL_CTX_set_keylog_callback(c, KeylogCallback);
  SSL_CTX_set_tlsext_servername_arg(c, const_cast<ContextSet*>(set));
  return ctx;
}

}  // namespace

Expected<std::shared_ptr<const ContextSet>> ContextSet::Build(const TlsOptions& options, const ContextSet* previous) {
  CommonSettings s;
  if (Status st = ParseProtocols(options.protocols, &s.min_version, &s.max_version); !st.ok()) return st.error();
  SplitCiphers(options.ciphers, &s.tls12_ciphers, &s.tls13_suites);
  if (s.tls12_ciphers.empty()) s.tls12_ciphers = kDefaultTls12Ciphers;
  const std::string mode = Lower(options.client_verify_mode);
  if (mode.empty()) {
    s.verify = options.ca_certs.empty() ? ClientVerify::kNone : ClientVerify::kOptional;
  } else if (mode == "none") {
    s.verify = ClientVerify::kNone;
  } else if (mode == "optional") {
    s.verify = ClientVerify::kOptional;
  } else if (mode == "required") {
    s.verify = ClientVerify::kRequired;
  } else {
    return Fail("--ssl-client-verify-mode: '" + mode + "' is not none, optional or required");
  }
  if (s.verify != ClientVerify::kNone) {
    if (options.ca_certs.empty()) return Fail("--ssl-client-verify-mode=" + mode + " needs --ssl-ca-certs");
    struct stat st;
    if (::stat(options.ca_certs.c_str(), &st) != 0) {
      return MakeError(ErrorCode::kIo, "--ssl-ca-certs " + options.ca_certs + ": " + std::strerror(errno));
    }
    (S_ISDIR(st.st_mode) ? s.ca_dir : s.ca_file) = options.ca_certs;
  }
  std::vector<CertKeyPair> pairs = options.certs;
  if (!options.cert_dir.empty()) {
    auto more = ScanCertDir(options.cert_dir);
    if (!more.ok()) return more.error();
    pairs.insert(pairs.end(), more->begin(), more->end());
  }
  if (pairs.empty()) return Fail("TLS needs a certificate (--ssl-cert)");

  std::shared_ptr<ContextSet> set(new ContextSet());
  for (const std::string& p : options.alpn) {
    if (p.empty() || p.size() > 255) return Fail("ALPN protocol name must be 1..255 bytes");
    set->alpn_wire_.push_back(static_cast<char>(p.size()));
    set->alpn_wire_ += p;
  }
  for (const CertKeyPair& pair : pairs) {
    auto ctx = MakeContext(pair, s, options, &set->alpn_wire_, set.get());
    if (!ctx.ok()) return ctx.error();
    auto e = std::make_unique<Entry>();
    X509* cert = SSL_CTX_get0_certificate(ctx->get());
    e->info.cert_file = pair.cert_file;
    e->info.key_file = pair.key_file.empty() ? pair.cert_file : pair.key_file;
    e->info.names = CertificateNames(cert);
    e->info.not_after = AsnTime(X509_get0_notAfter(cert));
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
      set->warnings_.push_back("TLS certificate " + pair.cert_file + " has expired");
    } else if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
      set->warnings_.push_back("TLS certificate " + pair.cert_file + " is not valid yet");
    }
    struct stat st;
    if (::stat(e->info.key_file.c_str(), &st) == 0 && (st.st_mode & S_IRWXO) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      set->warnings_.push_back("TLS key " + e->info.key_file + " is readable by other users (mode " + mode + ")");
    }
    e->ctx = std::move(*ctx);
    set->entries_.push_back(std::move(e));
  }
  // One set of ticket keys for the whole set; kept from the previous set across a reload.
  unsigned char keys[kTicketKeysSize];
  SSL_CTX* source = previous != nullptr ? previous->default_context() : set->default_context();
  if (SSL_CTX_get_tlsext_ticket_keys(source, keys, sizeof keys) == 1) {
    for (const auto& e : set->entries_) SSL_CTX_set_tlsext_ticket_keys(e->ctx.get(), keys, sizeof keys);
  }
  OPENSSL_cleanse(keys, sizeof keys);
  ERR_clear_error();
  return std::shared_ptr<const ContextSet>(std::move(set));
}

// --- ContextHolder ---

Expected<std::unique_ptr<ContextHolder>> ContextHolder::Create(const TlsOptions& options) {
  auto set = ContextSet::Build(options);
  if (!set.ok()) return set.error();
  auto holder = std::make_unique<ContextHolder>();
  holder->current_ = std::move(*set);
  return holder;
}

Status ContextHolder::Reload(const TlsOptions& options) {
  std::shared_ptr<const ContextSet> old = current();
  auto set = ContextSet::Build(options, old.get());
  if (!set.ok()) return set.error();
  std::lock_guard<std::mutex> lock(mu_);
  current_ = std::move(*set);
  return Status::Ok();
}

std::shared_ptr<const ContextSet> ContextHolder::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

// --- TlsSession ---

struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

// The two TLS 1.3 application traffic secrets, from the keylog callback, held from the
// handshake's end until the record layer takes them.
struct TrafficSecrets {
  unsigned char secret[2][48];  // [0] client's, [1] server's
  size_t len[2] = {0, 0};
  ~TrafficSecrets() { OPENSSL_cleanse(secret, sizeof secret); }
};

// What `xpra info` and the logs ask of an established session, kept when the SSL object goes.
struct EstablishedInfo {
  const char* version = "";  // OpenSSL's static names
  const char* cipher = "";
  bool resumed = false;
  std::string server_name, alpn, peer_subject;
};

struct TlsSession::State {
  std::shared_ptr<const ContextSet> contexts;  // outlives ssl (declared first, destroyed last)
  TlsLimits limits;
  std::unique_ptr<SSL, SslFree> ssl;
  // TLS 1.3 after the handshake: the relay's record layer instead of OpenSSL's (the SSL object
  // and the contexts are freed then), with what the accessors report.
  std::unique_ptr<Tls13Records> records;
  std::unique_ptr<EstablishedInfo> info;
  std::unique_ptr<TrafficSecrets> secrets;  // during the handshake only
  std::string_view in;         // ciphertext being fed, during Receive only
  std::string out;             // ciphertext to send
  // Plaintext sent before the handshake completed; like `error`, allocated only when there is
  // one, so an established session holds 8 bytes for each instead of 32 and 48.
  std::unique_ptr<std::string> pending_plain;
  size_t handshake_bytes = 0;
  enum class Phase : uint8_t { kHandshaking, kEstablished, kPeerClosed } phase = Phase::kHandshaking;
  std::unique_ptr<Error> error;  // sticky, in any phase
  bool done() const { return phase != Phase::kHandshaking; }
};

namespace {

int BioWrite(BIO* b, const char* data, int len) {
  BIO_clear_retry_flags(b);
  auto* s = static_cast<TlsSession::State*>(BIO_get_data(b));
  s->out.append(data, static_cast<size_t>(len));
  return len;
}

int BioRead(BIO* b, char* data, int len) {
  BIO_clear_retry_flags(b);
  auto* s = static_cast<TlsSession::State*>(BIO_get_data(b));
  if (s->in.empty()) {
    BIO_set_retry_read(b);
    return -1;
  }
  const size_t n = std::min(s->in.size(), static_cast<size_t>(len));
  std::memcpy(data, s->in.data(), n);
  s->in.remove_prefix(n);
  return static_cast<int>(n);
}

long BioCtrl(BIO* b, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_PENDING:
      return static_cast<long>(static_cast<TlsSession::State*>(BIO_get_data(b))->in.size());
    default:
      return 0;
  }
}

int BioCreate(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

int BioDestroy(BIO*) { return 1; }

const BIO_METHOD* SessionBioMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "xpra-relay tls");
    BIO_meth_set_write(m, BioWrite);
    BIO_meth_set_read(m, BioRead);
    BIO_meth_set_ctrl(m, BioCtrl);
    BIO_meth_set_create(m, BioCreate);
    BIO_meth_set_destroy(m, BioDestroy);
    return m;
  }();
  return method;
}

// What the accessors report, read from an SSL (TakeOverRecords keeps a copy of each).
std::string ServerNameOf(const SSL* ssl) {
  const char* n = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  return n ? n : "";
}

std::string AlpnOf(const SSL* ssl) {
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  SSL_get0_alpn_selected(ssl, &p, &n);
  return p ? std::string(reinterpret_cast<const char*>(p), n) : "";
}

std::string PeerSubjectOf(const SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return "";
  char buf[512];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
  return buf;
}

void KeylogCallback(const SSL* ssl, const char* line) {
  auto* st = static_cast<TlsSession::State*>(SSL_get_app_data(ssl));
  if (st == nullptr) return;
  const std::string_view l(line);
  int which;
  if (l.substr(0, 24) == "CLIENT_TRAFFIC_SECRET_0 ") {
    which = 0;
  } else if (l.substr(0, 24) == "SERVER_TRAFFIC_SECRET_0 ") {
    which = 1;
  } else {
    return;
  }
  // "LABEL <client random, hex> <secret, hex>"
  const std::string_view hex = l.substr(l.rfind(' ') + 1);
  if (hex.size() % 2 != 0 || hex.size() > 2 * sizeof st->secrets->secret[0]) return;
  if (!st->secrets) st->secrets = std::make_unique<TrafficSecrets>();
  auto nibble = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
  };
  for (size_t i = 0; i < hex.size() / 2; ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      st->secrets->len[which] = 0;
      return;
    }
    st->secrets->secret[which][i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  st->secrets->len[which] = hex.size() / 2;
}

// TLS 1.3, its handshake just finished: the relay's record layer takes over and the SSL object
// goes (about 13 KiB an established connection no longer holds). `out_mark`: where in s.out the
// records OpenSSL wrote in this step begin (its session tickets, sealed with the server's
// application key). Anything unexpected leaves the session with OpenSSL, as TLS 1.2 is.
void TakeOverRecords(TlsSession::State& s, size_t out_mark) {
  std::unique_ptr<TrafficSecrets> secrets = std::move(s.secrets);
  SSL* ssl = s.ssl.get();
  if (!secrets || secrets->len[0] == 0 || secrets->len[1] == 0 || SSL_version(ssl) != TLS1_3_VERSION) return;
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
  Aead aead;
  if (cipher == nullptr || !AeadForSuite(static_cast<uint16_t>(SSL_CIPHER_get_id(cipher) & 0xffff), &aead)) return;
  // OpenSSL must hold nothing received and not yet handed out (it reads exactly one record at a
  // time, so at the end of the handshake it has read up to the client's Finished, no further).
  if (SSL_has_pending(ssl) || SSL_pending(ssl) > 0) return;
  // Its records since the mark: whole records, each application-key one counts.
  uint64_t sealed = 0;
  size_t pos = out_mark;
  while (pos + 5 <= s.out.size()) {
    if (static_cast<uint8_t>(s.out[pos]) == 23) ++sealed;
    pos += 5 + ((static_cast<size_t>(static_cast<uint8_t>(s.out[pos + 3])) << 8) | static_cast<uint8_t>(s.out[pos + 4]));
  }
  if (pos != s.out.size()) return;
  auto records = Tls13Records::Create(
      aead, std::string_view(reinterpret_cast<const char*>(secrets->secret[0]), secrets->len[0]),
      std::string_view(reinterpret_cast<const char*>(secrets->secret[1]), secrets->len[1]), sealed);
  if (!records.ok()) return;
  auto info = std::make_unique<EstablishedInfo>();
  info->version = SSL_get_version(ssl);
  const char* name = SSL_CIPHER_get_name(cipher);
  info->cipher = name ? name : "";
  info->resumed = SSL_session_reused(ssl) == 1;
  info->server_name = ServerNameOf(ssl);
  info->alpn = AlpnOf(ssl);
  info->peer_subject = PeerSubjectOf(ssl);
  s.records = std::move(*records);
  s.info = std::move(info);
  s.ssl.reset();
  s.contexts.reset();
  ERR_clear_error();
}

}  // namespace

TlsSession::TlsSession(std::unique_ptr<State> state) : state_(std::move(state)) {}
TlsSession::TlsSession(TlsSession&&) noexcept = default;
TlsSession& TlsSession::operator=(TlsSession&&) noexcept = default;
TlsSession::~TlsSession() = default;

Expected<TlsSession> TlsSession::Accept(std::shared_ptr<const ContextSet> contexts, TlsLimits limits) {
  if (!contexts || contexts->size() == 0) return MakeError(ErrorCode::kInternal, "TLS session without contexts");
  auto st = std::make_unique<State>();
  st->contexts = std::move(contexts);
  st->limits = limits;
  ERR_clear_error();
  st->ssl.reset(SSL_new(st->contexts->default_context()));
  if (!st->ssl) return MakeError(ErrorCode::kInternal, "SSL_new: " + OpenSslErrors());
  BIO* bio = BIO_new(SessionBioMethod());
  if (bio == nullptr) return MakeError(ErrorCode::kInternal, "BIO_new: " + OpenSslErrors());
  BIO_set_data(bio, st.get());
  SSL_set_bio(st->ssl.get(), bio, bio);  // one reference, owned by the SSL
  SSL_set_app_data(st->ssl.get(), st.get());  // for KeylogCallback
  SSL_set_accept_state(st->ssl.get());
  return TlsSession(std::move(st));
}

namespace {

// The error after an SSL call returned <= 0, or nullopt for "wants more input".
std::optional<Error> SslFailure(SSL* ssl, int ret, const char* what) {
  const int err = SSL_get_error(ssl, ret);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return std::nullopt;
  std::string msg = std::string("TLS ") + what + " failed: ";
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) msg += std::string("client certificate: ") + X509_verify_cert_error_string(verify) + "; ";
  msg += err == SSL_ERROR_SSL ? OpenSslErrors() : ("SSL error " + std::to_string(err));
  ERR_clear_error();
  return MakeError(ErrorCode::kMalformed, std::move(msg));
}

// Receive once the relay's record layer has taken over.
Status ReceiveRecords(TlsSession::State& s, std::string_view ciphertext, std::string* plaintext) {
  if (Status st = s.records->Open(ciphertext, plaintext, &s.out); !st.ok()) {
    s.error = std::make_unique<Error>(st.error());
    return *s.error;
  }
  if (s.records->peer_closed()) s.phase = TlsSession::State::Phase::kPeerClosed;
  return Status::Ok();
}

}  // namespace

Status TlsSession::Receive(std::string_view ciphertext, std::string* plaintext) {
  State& s = *state_;
  if (s.error) return *s.error;
  if (s.records) return ReceiveRecords(s, ciphertext, plaintext);
  SSL* ssl = s.ssl.get();
  ERR_clear_error();
  s.in = ciphertext;
  if (!s.done()) {
    s.handshake_bytes += ciphertext.size();
    const size_t out_mark = s.out.size();
    const int r = SSL_do_handshake(ssl);
    // Bytes after the client's Finished (its first data) do not count: the bound applies only
    // while the handshake is still unfinished.
    if (r != 1 && s.handshake_bytes > s.limits.max_handshake_bytes) {
      s.in = {};
      s.error = std::make_unique<Error>(MakeError(ErrorCode::kTooLarge,
                          "TLS handshake over " + std::to_string(s.limits.max_handshake_bytes) + " bytes"));
      return *s.error;
    }
    if (r == 1) {
      s.phase = State::Phase::kEstablished;
      TakeOverRecords(s, out_mark);
      if (s.pending_plain) {
        std::string pending = std::move(*s.pending_plain);
        s.pending_plain.reset();
        if (Status st = Send(pending); !st.ok()) return st;
      }
      if (s.records) {
        const std::string_view rest = s.in;
        s.in = {};
        return ReceiveRecords(s, rest, plaintext);
      }
    } else if (auto e = SslFailure(ssl, r, "handshake")) {
      s.in = {};
      s.error = std::make_unique<Error>(std::move(*e));
      return *s.error;
    }
  }
  while (s.phase == State::Phase::kEstablished) {
    constexpr size_t kChunk = 16384;
    const size_t old = plaintext->size();
    plaintext->resize(old + kChunk);
    const int r = SSL_read(ssl, plaintext->data() + old, static_cast<int>(kChunk));
    plaintext->resize(old + static_cast<size_t>(std::max(r, 0)));
    if (r > 0) continue;
    if (SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN) {
      s.phase = State::Phase::kPeerClosed;
      break;
    }
    if (auto e = SslFailure(ssl, r, "read")) {
      s.in = {};
      s.error = std::make_unique<Error>(std::move(*e));
      return *s.error;
    }
    break;
  }
  s.in = {};
  return Status::Ok();
}

Status TlsSession::Send(std::string_view plaintext) {
  State& s = *state_;
  if (s.error) return *s.error;
  if (!s.done()) {
    if (!s.pending_plain) s.pending_plain = std::make_unique<std::string>();
    s.pending_plain->append(plaintext);
    return Status::Ok();
  }
  if (s.records) {
    // Sealed straight from `plaintext` into the bytes to send.
    if (Status st = s.records->Seal(plaintext, &s.out); !st.ok()) {
      s.error = std::make_unique<Error>(st.error());
      return *s.error;
    }
    return Status::Ok();
  }
  ERR_clear_error();
  // Room for every record this write makes (16 KiB of plaintext each, plus at most 29 bytes of
  // header, nonce and tag in TLS 1.2, 22 in 1.3): BioWrite then appends each record without
  // regrowing `out`, which copied a 64 KiB write's ciphertext about twice over (bench/compare --tls).
  s.out.reserve(s.out.size() + plaintext.size() + (plaintext.size() / 16384 + 1) * 64);
  while (!plaintext.empty()) {
    const int n = static_cast<int>(std::min<size_t>(plaintext.size(), 1u << 20));
    const int r = SSL_write(s.ssl.get(), plaintext.data(), n);
    if (r <= 0) {
      auto e = SslFailure(s.ssl.get(), r, "write");
      s.error = std::make_unique<Error>(e ? std::move(*e) : MakeError(ErrorCode::kInternal, "TLS write wants I/O on a memory BIO"));
      return *s.error;
    }
    plaintext.remove_prefix(static_cast<size_t>(r));
  }
  return Status::Ok();
}

void TlsSession::Shutdown() {
  State& s = *state_;
  if (!s.done() || s.error) return;
  if (s.records) {
    s.records->SealAlert(kCloseNotify, &s.out);
    return;
  }
  ERR_clear_error();
  SSL_shutdown(s.ssl.get());
  ERR_clear_error();
}

void TlsSession::TakeCiphertext(std::string* out) {
  State& s = *state_;
  if (out->empty()) {
    out->swap(s.out);
  } else {
    out->append(s.out);
  }
  s.out.clear();
  s.out.shrink_to_fit();  // nothing held while idle
}

size_t TlsSession::pending_ciphertext() const { return state_->out.size(); }
bool TlsSession::handshake_done() const { return state_->done(); }
bool TlsSession::peer_closed() const { return state_->phase == State::Phase::kPeerClosed; }
bool TlsSession::resumed() const {
  if (state_->info) return state_->info->resumed;
  return state_->done() && SSL_session_reused(state_->ssl.get()) == 1;
}
bool TlsSession::own_records() const { return state_->records != nullptr; }
SSL* TlsSession::ssl() const { return state_->ssl.get(); }

std::string TlsSession::version() const { return version_name(); }

const char* TlsSession::version_name() const {
  if (state_->info) return state_->info->version;
  return state_->done() ? SSL_get_version(state_->ssl.get()) : "";
}

const char* TlsSession::cipher_name() const {
  if (state_->info) return state_->info->cipher;
  const char* c = state_->done() ? SSL_get_cipher_name(state_->ssl.get()) : nullptr;
  return c ? c : "";
}

std::string TlsSession::cipher() const { return cipher_name(); }

std::string TlsSession::server_name() const {
  return state_->info ? state_->info->server_name : ServerNameOf(state_->ssl.get());
}

std::string TlsSession::alpn() const { return state_->info ? state_->info->alpn : AlpnOf(state_->ssl.get()); }

std::string TlsSession::peer_subject() const {
  return state_->info ? state_->info->peer_subject : PeerSubjectOf(state_->ssl.get());
}

}  // namespace xr::tls
