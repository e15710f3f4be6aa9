#pragma once
// Test helpers for TLS: certificates made with the OpenSSL API in a temporary directory, and a
// client made with plain OpenSSL (memory BIOs) that talks to an xr::tls::TlsSession in memory.

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/tls.h"

namespace xr::tls_test {

// A directory under $TEST_TMPDIR (or /tmp), removed with everything in it.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/tls_test.XXXXXX";
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;

inline Key NewKey() {
  Key k(EVP_EC_gen("P-256"));
  REQUIRE(k);
  return k;
}

// A certificate for `key` with subject CN=cn and DNS subjectAltNames, signed by issuer/issuer_key
// (self-signed when issuer is null). ca: a CA certificate (basicConstraints CA:TRUE).
inline Cert MakeCert(EVP_PKEY* key, const std::string& cn, const std::vector<std::string>& dns,
                     X509* issuer = nullptr, EVP_PKEY* issuer_key = nullptr, bool ca = false, long serial = 1) {
  Cert c(X509_new());
  REQUIRE(c);
  X509_set_version(c.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c.get()), 86400);
  X509_set_pubkey(c.get(), key);
  X509_NAME* name = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer ? issuer : c.get(), c.get(), nullptr, nullptr, 0);
  auto add = [&](int nid, const std::string& value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
    REQUIRE(ext != nullptr);
    X509_add_ext(c.get(), ext, -1);
    X509_EXTENSION_free(ext);
  };
  add(NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  if (!dns.empty()) {
    std::string san;
    for (const auto& d : dns) san += (san.empty() ? "DNS:" : ",DNS:") + d;
    add(NID_subject_alt_name, san);
  }
  REQUIRE(X509_sign(c.get(), issuer_key ? issuer_key : key, EVP_sha256()) > 0);
  return c;
}

inline void WriteCert(const std::string& path, X509* cert, bool append = false) {
  FILE* f = std::fopen(path.c_str(), append ? "a" : "w");
  REQUIRE(f != nullptr);
  PEM_write_X509(f, cert);
  std::fclose(f);
}

inline void WriteKey(const std::string& path, EVP_PKEY* key, bool append = false) {
  FILE* f = std::fopen(path.c_str(), append ? "a" : "w");
  REQUIRE(f != nullptr);
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

// A self-signed pair written as dir/name.crt + dir/name.key; returns the pair.
inline tls::CertKeyPair WritePair(const TempDir& dir, const std::string& name, const std::string& cn,
                                  const std::vector<std::string>& dns) {
  Key key = NewKey();
  Cert cert = MakeCert(key.get(), cn, dns);
  WriteCert(dir / (name + ".crt"), cert.get());
  WriteKey(dir / (name + ".key"), key.get());
  return {dir / (name + ".crt"), dir / (name + ".key")};
}

struct ClientOptions {
  std::string sni;
  int min_version = TLS1_2_VERSION;
  int max_version = TLS1_3_VERSION;
  std::vector<std::string> alpn;
  std::string verify_ca;  // CA file the client verifies the server with ("" = no verification)
  std::string cert, key;  // client certificate
  SSL_SESSION* session = nullptr;
  std::string ciphers;    // TLS 1.2 list for the client
  std::string tls13_suites;  // TLS 1.3 suites the client offers ("" = OpenSSL's default)
  bool legacy = false;    // security level 0 (to offer TLS 1.0/1.1)
};

// A TLS client in plain OpenSSL, over memory BIOs.
class Client {
 public:
  explicit Client(const ClientOptions& o) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    REQUIRE(ctx_ != nullptr);
    if (o.legacy) SSL_CTX_set_security_level(ctx_, 0);
    SSL_CTX_set_min_proto_version(ctx_, o.min_version);
    SSL_CTX_set_max_proto_version(ctx_, o.max_version);
    if (!o.ciphers.empty()) REQUIRE(SSL_CTX_set_cipher_list(ctx_, o.ciphers.c_str()) == 1);
    if (!o.tls13_suites.empty()) REQUIRE(SSL_CTX_set_ciphersuites(ctx_, o.tls13_suites.c_str()) == 1);
    if (!o.verify_ca.empty()) {
      REQUIRE(SSL_CTX_load_verify_locations(ctx_, o.verify_ca.c_str(), nullptr) == 1);
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    }
    if (!o.cert.empty()) {
      REQUIRE(SSL_CTX_use_certificate_chain_file(ctx_, o.cert.c_str()) == 1);
      REQUIRE(SSL_CTX_use_PrivateKey_file(ctx_, o.key.c_str(), SSL_FILETYPE_PEM) == 1);
    }
    ssl_ = SSL_new(ctx_);
    REQUIRE(ssl_ != nullptr);
    if (!o.sni.empty()) SSL_set_tlsext_host_name(ssl_, o.sni.c_str());
    if (!o.alpn.empty()) {
      std::string wire;
      for (const auto& p : o.alpn) wire += static_cast<char>(p.size()) + p;
      SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()), static_cast<unsigned>(wire.size()));
    }
    if (o.session) SSL_set_session(ssl_, o.session);
    rbio_ = BIO_new(BIO_s_mem());
    wbio_ = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl_, rbio_, wbio_);
    SSL_set_connect_state(ssl_);
  }
  ~Client() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  SSL* ssl() const { return ssl_; }
  // Advances the handshake / reads all available plaintext into `plain`.
  void Step() {
    ERR_clear_error();
    if (!SSL_is_init_finished(ssl_)) {
      if (SSL_do_handshake(ssl_) != 1) return;
    }
    char buf[16384];
    int n;
    while ((n = SSL_read(ssl_, buf, sizeof buf)) > 0) plain.append(buf, static_cast<size_t>(n));
    ERR_clear_error();
  }
  void Write(const std::string& data) {
    REQUIRE(SSL_is_init_finished(ssl_));
    REQUIRE(SSL_write(ssl_, data.data(), static_cast<int>(data.size())) == static_cast<int>(data.size()));
  }
  std::string TakeOutput() {
    std::string out;
    char buf[16384];
    int n;
    while ((n = BIO_read(wbio_, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
  void Give(const std::string& ciphertext) {
    if (!ciphertext.empty()) BIO_write(rbio_, ciphertext.data(), static_cast<int>(ciphertext.size()));
  }
  bool done() const { return SSL_is_init_finished(ssl_); }
  // Subject CN of the server certificate, "" if none.
  std::string ServerCn() const {
    X509* cert = SSL_get0_peer_certificate(ssl_);
    if (!cert) return "";
    char buf[256] = {0};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
    return buf;
  }

  std::string plain;  // plaintext received from the server

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;
  BIO* wbio_ = nullptr;
};

// Moves ciphertext both ways until neither side has anything to say. Returns the server's first
// error (ok if none); server plaintext goes to *server_plain.
inline Status Pump(Client& c, tls::TlsSession& s, std::string* server_plain) {
  for (int round = 0; round < 100; ++round) {
    c.Step();
    std::string to_server = c.TakeOutput();
    bool progress = !to_server.empty();
    if (!to_server.empty()) {
      Status st = s.Receive(to_server, server_plain);
      if (!st.ok()) {
        std::string alert;
        s.TakeCiphertext(&alert);
        c.Give(alert);
        c.Step();
        return st;
      }
    }
    std::string to_client;
    s.TakeCiphertext(&to_client);
    if (!to_client.empty()) {
      progress = true;
      c.Give(to_client);
    }
    if (!progress) break;
  }
  c.Step();
  return Status::Ok();
}

}  // namespace xr::tls_test
