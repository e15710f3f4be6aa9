#include "engine/tls.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "tests/engine/tls_test_util.h"

namespace xr::tls {
namespace {

using tls_test::Client;
using tls_test::ClientOptions;
using tls_test::Pump;
using tls_test::TempDir;
using tls_test::WritePair;

// A set with one self-signed certificate for relay.test.
struct OneCert {
  TempDir dir;
  CertKeyPair pair = WritePair(dir, "relay", "relay.test", {"relay.test"});
  std::shared_ptr<const ContextSet> Build(TlsOptions o = {}) {
    o.certs = {pair};
    auto set = ContextSet::Build(o);
    REQUIRE_MESSAGE(set.ok(), (set.ok() ? "" : set.error().message));
    return *set;
  }
  ClientOptions Verified() {
    ClientOptions c;
    c.sni = "relay.test";
    c.verify_ca = pair.cert_file;
    return c;
  }
};

TlsSession NewSession(std::shared_ptr<const ContextSet> set, TlsLimits limits = {}) {
  auto s = TlsSession::Accept(std::move(set), limits);
  REQUIRE(s.ok());
  return std::move(*s);
}

TEST_CASE("tls: TLS 1.3 handshake and data both ways in memory, verified by the client") {
  OneCert c;
  TlsSession server = NewSession(c.Build());
  Client client(c.Verified());
  std::string server_plain;
  REQUIRE(Pump(client, server, &server_plain).ok());
  REQUIRE(client.done());
  CHECK(SSL_get_verify_result(client.ssl()) == X509_V_OK);
  CHECK(server.handshake_done());
  CHECK(server.version() == "TLSv1.3");
  CHECK(!server.cipher().empty());
  // The static names the connection keeps for `xpra info` say the same.
  CHECK(std::string(server.version_name()) == server.version());
  CHECK(std::string(server.cipher_name()) == server.cipher());
  CHECK(server.server_name() == "relay.test");
  CHECK_FALSE(server.resumed());
  // Client -> server, several records.
  const std::string big(100000, 'c');
  client.Write("P\x01hello");
  client.Write(big);
  REQUIRE(Pump(client, server, &server_plain).ok());
  CHECK(server_plain == "P\x01hello" + big);
  // Server -> client.
  REQUIRE(server.Send(std::string(70000, 's')).ok());
  REQUIRE(Pump(client, server, &server_plain).ok());
  CHECK(client.plain == std::string(70000, 's'));
}

// --- the relay's TLS 1.3 record layer after the handshake (engine/tls_record.h) ---

// After the handshake: `up` from the client reaches the server, then `down` the client.
void DataBothWays(Client& client, TlsSession& server, const std::string& up, const std::string& down) {
  std::string plain;
  client.Write(up);
  REQUIRE(Pump(client, server, &plain).ok());
  CHECK(plain == up);
  client.plain.clear();
  REQUIRE(server.Send(down).ok());
  REQUIRE(Pump(client, server, &plain).ok());
  CHECK(client.plain == down);
}

TEST_CASE("tls: after a TLS 1.3 handshake the relay's record layer takes over and the SSL object is freed") {
  OneCert c;
  TlsOptions o;
  o.alpn = {"http/1.1"};
  TlsSession server = NewSession(c.Build(o));
  CHECK(server.ssl() != nullptr);
  ClientOptions co = c.Verified();
  co.alpn = {"http/1.1"};
  Client client(co);
  std::string plain;
  REQUIRE(Pump(client, server, &plain).ok());
  REQUIRE(server.handshake_done());
  CHECK(server.own_records());
  CHECK(server.ssl() == nullptr);
  // What `xpra info` reports is kept.
  CHECK(server.version() == "TLSv1.3");
  CHECK(server.cipher() == SSL_CIPHER_get_name(SSL_get_current_cipher(client.ssl())));
  CHECK(server.server_name() == "relay.test");
  CHECK(server.alpn() == "http/1.1");
  // Data both ways, after the session ticket OpenSSL sealed.
  DataBothWays(client, server, "up", std::string(50000, 'd'));
}

TEST_CASE("tls: each TLS 1.3 suite works with the relay's record layer") {
  for (const char* suite : {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}) {
    CAPTURE(suite);
    OneCert c;
    TlsSession server = NewSession(c.Build());
    ClientOptions co = c.Verified();
    co.tls13_suites = suite;
    Client client(co);
    std::string plain;
    REQUIRE(Pump(client, server, &plain).ok());
    CHECK(server.cipher() == suite);
    CHECK(server.own_records());
    DataBothWays(client, server, std::string(20000, 'u'), std::string(33000, 'v'));
  }
}

TEST_CASE("tls: the client's KeyUpdate, requested or not, with the relay's record layer") {
  OneCert c;
  TlsSession server = NewSession(c.Build());
  Client client(c.Verified());
  std::string plain;
  REQUIRE(Pump(client, server, &plain).ok());
  REQUIRE(server.own_records());
  for (int type : {SSL_KEY_UPDATE_NOT_REQUESTED, SSL_KEY_UPDATE_REQUESTED, SSL_KEY_UPDATE_REQUESTED}) {
    REQUIRE(SSL_key_update(client.ssl(), type) == 1);
    REQUIRE(SSL_do_handshake(client.ssl()) == 1);  // sends the KeyUpdate now
    DataBothWays(client, server, "k" + std::to_string(type), "r" + std::to_string(type));
  }
}

TEST_CASE("tls: two session tickets: the first record after them has the right sequence number") {
  OneCert c;
  TlsOptions o;
  o.tls13_tickets = 3;
  TlsSession server = NewSession(c.Build(o));
  Client client(c.Verified());
  std::string plain;
  REQUIRE(Pump(client, server, &plain).ok());
  REQUIRE(server.own_records());
  DataBothWays(client, server, "first", "after three tickets");
}

TEST_CASE("tls: a record tampered with after the handshake ends the session with an alert") {
  OneCert c;
  TlsSession server = NewSession(c.Build());
  Client client(c.Verified());
  std::string plain;
  REQUIRE(Pump(client, server, &plain).ok());
  REQUIRE(server.own_records());
  client.Write("genuine");
  std::string wire = client.TakeOutput();
  wire[wire.size() - 3] ^= 0x40;
  Status st = server.Receive(wire, &plain);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("bad record MAC") != std::string::npos);
  CHECK(plain.empty());
  std::string alert;
  server.TakeCiphertext(&alert);
  client.Give(alert);
  client.Step();
  CHECK((SSL_get_shutdown(client.ssl()) & SSL_RECEIVED_SHUTDOWN) != 0);  // the client saw a fatal alert
  CHECK_FALSE(server.Send("more").ok());
}

TEST_CASE("tls: ciphertext fed one byte at a time") {
  OneCert c;
  TlsSession server = NewSession(c.Build());
  Client client(c.Verified());
  std::string plain;
  for (int round = 0; round < 20 && !(client.done() && server.handshake_done()); ++round) {
    client.Step();
    for (char b : client.TakeOutput()) REQUIRE(server.Receive(std::string_view(&b, 1), &plain).ok());
    std::string out;
    server.TakeCiphertext(&out);
    client.Give(out);
  }
  REQUIRE(server.handshake_done());
  client.Write("byte by byte");
  for (char b : client.TakeOutput()) REQUIRE(server.Receive(std::string_view(&b, 1), &plain).ok());
  CHECK(plain == "byte by byte");
}

TEST_CASE("tls: plaintext sent before the handshake completes goes out after it") {
  OneCert c;
  TlsSession server = NewSession(c.Build());
  REQUIRE(server.Send("early").ok());
  CHECK(server.pending_ciphertext() == 0);
  Client client(c.Verified());
  std::string plain;
  REQUIRE(Pump(client, server, &plain).ok());
  CHECK(client.plain == "early");
}

TEST_CASE("tls: TLS 1.2 is served") {
  OneCert c;
  TlsSession server = NewSession(c.Build());
  ClientOptions o = c.Verified();
  o.max_version = TLS1_2_VERSION;
  Client client(o);
  std::string plain;
  REQUIRE(Pump(client, server, &plain).ok());
  CHECK(server.version() == "TLSv1.2");
  CHECK(server.cipher().find("GCM") != std::string::npos);  // the AEAD-only default list
  CHECK(std::string(server.version_name()) == "TLSv1.2");
  CHECK(std::string(server.cipher_name()) == server.cipher());
  // TLS 1.2 stays with OpenSSL's record layer.
  CHECK_FALSE(server.own_records());
  CHECK(server.ssl() != nullptr);
  DataBothWays(client, server, "twelve", "two");
}

TEST_CASE("tls: TLS 1.1 is refused by default") {
  OneCert c;
  TlsSession server = NewSession(c.Build());
  ClientOptions o;
  o.min_version = TLS1_1_VERSION;
  o.max_version = TLS1_1_VERSION;
  o.legacy = true;
  o.ciphers = "DEFAULT@SECLEVEL=0";
  Client client(o);
  std::string plain;
  Status st = Pump(client, server, &plain);
  CHECK_FALSE(st.ok());
  CHECK_FALSE(server.handshake_done());
  CHECK_FALSE(client.done());
  // Sticky.
  CHECK_FALSE(server.Receive("x", &plain).ok());
}

TEST_CASE("tls: --ssl-protocols=TLSv1.3 refuses a TLS 1.2 client") {
  OneCert c;
  TlsOptions o;
  o.protocols = "TLSv1_3";
  TlsSession server = NewSession(c.Build(o));
  ClientOptions co = c.Verified();
  co.max_version = TLS1_2_VERSION;
  Client client(co);
  std::string plain;
  CHECK_FALSE(Pump(client, server, &plain).ok());
}

TEST_CASE("tls: --ssl-protocols parsing") {
  int lo = 0, hi = 0;
  CHECK(ParseProtocols("TLSv1.2,TLSv1.3", &lo, &hi).ok());
  CHECK((lo == TLS1_2_VERSION && hi == TLS1_3_VERSION));
  CHECK(ParseProtocols("TLSv1_2", &lo, &hi).ok());  // xpra's --ssl-protocol spelling
  CHECK((lo == TLS1_2_VERSION && hi == TLS1_2_VERSION));
  CHECK(ParseProtocols(" tlsv1.3 ", &lo, &hi).ok());
  CHECK((lo == TLS1_3_VERSION && hi == TLS1_3_VERSION));
  CHECK(ParseProtocols("SSLv23", &lo, &hi).ok());
  CHECK((lo == TLS1_2_VERSION && hi == TLS1_3_VERSION));
  Status old = ParseProtocols("TLSv1.1,TLSv1.2", &lo, &hi);
  REQUIRE_FALSE(old.ok());
  CHECK(old.error().message.find("tlsv1.1") != std::string::npos);
  CHECK_FALSE(ParseProtocols("TLSv9", &lo, &hi).ok());
  CHECK_FALSE(ParseProtocols("", &lo, &hi).ok());
}

TEST_CASE("tls: --ssl-ciphers picks TLS 1.2 ciphers and TLS 1.3 suites; unknown names are errors") {
  OneCert c;
  TlsOptions o;
  o.ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384:TLS_AES_128_GCM_SHA256";
  {
    TlsSession server = NewSession(c.Build(o));
    Client client(c.Verified());
    std::string plain;
    REQUIRE(Pump(client, server, &plain).ok());
    CHECK(server.cipher() == "TLS_AES_128_GCM_SHA256");
  }
  {
    TlsSession server = NewSession(c.Build(o));
    ClientOptions co = c.Verified();
    co.max_version = TLS1_2_VERSION;
    Client client(co);
    std::string plain;
    REQUIRE(Pump(client, server, &plain).ok());
    CHECK(server.cipher() == "ECDHE-ECDSA-AES256-GCM-SHA384");
  }
  o.ciphers = "NO-SUCH-CIPHER";
  o.certs = {c.pair};
  auto bad = ContextSet::Build(o);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("--ssl-ciphers") != std::string::npos);
  o.ciphers = "TLS_NO_SUCH_SUITE";
  CHECK_FALSE(ContextSet::Build(o).ok());
}

TEST_CASE("tls: ALPN http/1.1 chosen when offered, none otherwise") {
  OneCert c;
  auto set = c.Build();
  {
    TlsSession server = NewSession(set);
    ClientOptions o = c.Verified();
    o.alpn = {"h2", "http/1.1"};
    Client client(o);
    std::string plain;
    REQUIRE(Pump(client, server, &plain).ok());
    CHECK(server.alpn() == "http/1.1");
  }
  {
    TlsSession server = NewSession(set);
    ClientOptions o = c.Verified();
    o.alpn = {"h2"};
    Client client(o);
    std::string plain;
    REQUIRE(Pump(client, server, &plain).ok());
    CHECK(server.alpn().empty());
  }
}

// --- SNI ---

TEST_CASE("tls: the SNI name picks the certificate; unknown names get the first") {
  TempDir dir;
  TlsOptions o;
  o.certs = {WritePair(dir, "a", "a.test", {"a.test"}), WritePair(dir, "b", "b.test", {"*.b.test", "b.test"})};
  auto set = ContextSet::Build(o);
  REQUIRE(set.ok());
  CHECK((*set)->size() == 2);
  CHECK((*set)->names()[1] == std::vector<std::string>{"*.b.test", "b.test"});
  for (const auto& sni_cn : std::vector<std::pair<std::string, std::string>>{
           {"a.test", "a.test"}, {"WWW.B.TEST", "b.test"}, {"b.test", "b.test"}, {"x.y.b.test", "a.test"},
           {"other.test", "a.test"}, {"", "a.test"}}) {
    const std::string& sni = sni_cn.first;
    const std::string& cn = sni_cn.second;
    CAPTURE(sni);
    TlsSession server = NewSession(*set);
    ClientOptions co;
    co.sni = sni;
    Client client(co);
    std::string plain;
    REQUIRE(Pump(client, server, &plain).ok());
    CHECK(client.ServerCn() == cn);
  }
}

TEST_CASE("tls: a certificate directory: NAME.crt + NAME.key pairs and combined NAME.pem") {
  TempDir dir;
  WritePair(dir, "10-a", "a.test", {"a.test"});
  tls_test::Key key = tls_test::NewKey();
  tls_test::Cert cert = tls_test::MakeCert(key.get(), "c.test", {"c.test"});
  tls_test::WriteCert(dir / "20-c.pem", cert.get());
  tls_test::WriteKey(dir / "20-c.pem", key.get(), /*append=*/true);
  tls_test::WriteCert(dir / ".hidden.pem", cert.get());  // skipped
  TlsOptions o;
  o.cert_dir = dir.path();
  auto set = ContextSet::Build(o);
  REQUIRE_MESSAGE(set.ok(), (set.ok() ? "" : set.error().message));
  CHECK((*set)->size() == 2);
  TlsSession server = NewSession(*set);
  ClientOptions co;
  co.sni = "c.test";
  Client client(co);
  std::string plain;
  REQUIRE(Pump(client, server, &plain).ok());
  CHECK(client.ServerCn() == "c.test");
}

TEST_CASE("tls: what was loaded, and warnings for a key others can read") {
  TempDir dir;
  CertKeyPair p = WritePair(dir, "a", "a.test", {"a.test", "www.a.test"});
  REQUIRE(::chmod(p.key_file.c_str(), 0600) == 0);
  TlsOptions o;
  o.certs = {p};
  auto set = ContextSet::Build(o);
  REQUIRE(set.ok());
  CHECK((*set)->warnings().empty());
  REQUIRE((*set)->certificates().size() == 1);
  const CertificateInfo info = (*set)->certificates()[0];
  CHECK(info.cert_file == p.cert_file);
  CHECK(info.key_file == p.key_file);
  CHECK(info.names == std::vector<std::string>{"a.test", "www.a.test"});
  CHECK(info.not_after > time(nullptr));
  CHECK(info.not_after < time(nullptr) + 2 * 86400);  // MakeCert: valid for a day
  REQUIRE(::chmod(p.key_file.c_str(), 0644) == 0);
  set = ContextSet::Build(o);
  REQUIRE(set.ok());
  REQUIRE((*set)->warnings().size() == 1);
  CHECK((*set)->warnings()[0] == "TLS key " + p.key_file + " is readable by other users (mode 0644)");
}

TEST_CASE("tls: an expired certificate loads with a warning") {
  TempDir dir;
  tls_test::Key key = tls_test::NewKey();
  tls_test::Cert cert = tls_test::MakeCert(key.get(), "old.test", {"old.test"});
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3 * 86400);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), -86400);
  REQUIRE(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
  tls_test::WriteCert(dir / "old.crt", cert.get());
  tls_test::WriteKey(dir / "old.key", key.get());
  REQUIRE(::chmod((dir / "old.key").c_str(), 0600) == 0);
  TlsOptions o;
  o.certs = {{dir / "old.crt", dir / "old.key"}};
  auto set = ContextSet::Build(o);
  REQUIRE(set.ok());
  REQUIRE((*set)->warnings().size() == 1);
  CHECK((*set)->warnings()[0] == "TLS certificate " + dir / "old.crt" + " has expired");
}

TEST_CASE("tls: an RSA key and certificate in one file, made by `openssl req` as xpra users do") {
  TempDir dir;
  const std::string pem = dir / "ssl.pem";
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout '" + pem + "' -out '" + pem +
                          "' -subj /CN=relay.test -addext subjectAltName=DNS:relay.test -days 1 2>/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);  // the openssl command: tools/lib.sh XR_TEST_PACKAGES
  TlsOptions o;
  o.certs = {{pem, ""}};  // --ssl-cert only: the key is in the same file (xpra's ssl-key default)
  auto set = ContextSet::Build(o);
  REQUIRE_MESSAGE(set.ok(), (set.ok() ? "" : set.error().message));
  for (int max : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    CAPTURE(max);
    TlsSession server = NewSession(*set);
    ClientOptions co;
    co.sni = "relay.test";
    co.verify_ca = pem;
    co.max_version = max;
    Client client(co);
    std::string plain;
    REQUIRE(Pump(client, server, &plain).ok());
    CHECK(SSL_get_verify_result(client.ssl()) == X509_V_OK);
    if (max == TLS1_2_VERSION) CHECK(server.cipher() == "ECDHE-RSA-AES128-GCM-SHA256");
    if (max == TLS1_3_VERSION) CHECK(server.version() == "TLSv1.3");
  }
}

TEST_CASE("tls: an empty certificate directory is an error naming it") {
  TempDir dir;
  TlsOptions o;
  o.cert_dir = dir.path();
  auto set = ContextSet::Build(o);
  REQUIRE_FALSE(set.ok());
  CHECK(set.error().message.find(dir.path()) != std::string::npos);
}

// --- configuration errors name the file ---

TEST_CASE("tls: a missing certificate file is an error naming it") {
  TempDir dir;
  TlsOptions o;
  o.certs = {{dir / "nope.crt", ""}};
  auto set = ContextSet::Build(o);
  REQUIRE_FALSE(set.ok());
  CHECK(set.error().message.find(dir / "nope.crt") != std::string::npos);
  CHECK(set.error().message.find("No such file") != std::string::npos);
}

TEST_CASE("tls: a missing key file is an error naming it") {
  TempDir dir;
  CertKeyPair p = WritePair(dir, "a", "a.test", {"a.test"});
  p.key_file = dir / "missing.key";
  TlsOptions o;
  o.certs = {p};
  auto set = ContextSet::Build(o);
  REQUIRE_FALSE(set.ok());
  CHECK(set.error().message.find(p.key_file) != std::string::npos);
}

TEST_CASE("tls: a key that does not match the certificate is an error naming both") {
  TempDir dir;
  CertKeyPair a = WritePair(dir, "a", "a.test", {"a.test"});
  CertKeyPair b = WritePair(dir, "b", "b.test", {"b.test"});
  TlsOptions o;
  o.certs = {{a.cert_file, b.key_file}};
  auto set = ContextSet::Build(o);
  REQUIRE_FALSE(set.ok());
  CHECK(set.error().message.find(a.cert_file) != std::string::npos);
  CHECK(set.error().message.find(b.key_file) != std::string::npos);
  CHECK(set.error().message.find("does not match") != std::string::npos);
}

TEST_CASE("tls: a file that is not PEM is an error naming it") {
  TempDir dir;
  CertKeyPair a = WritePair(dir, "a", "a.test", {"a.test"});
  FILE* f = std::fopen((dir / "junk.crt").c_str(), "w");
  std::fputs("not a certificate\n", f);
  std::fclose(f);
  TlsOptions o;
  o.certs = {{dir / "junk.crt", a.key_file}};
  auto set = ContextSet::Build(o);
  REQUIRE_FALSE(set.ok());
  CHECK(set.error().message.find(dir / "junk.crt") != std::string::npos);
  o.certs = {{a.cert_file, dir / "junk.crt"}};
  set = ContextSet::Build(o);
  REQUIRE_FALSE(set.ok());
  CHECK(set.error().message.find("TLS key " + dir / "junk.crt") != std::string::npos);
}

TEST_CASE("tls: no certificate at all is an error") { CHECK_FALSE(ContextSet::Build(TlsOptions{}).ok()); }

// --- sessions ---

TEST_CASE("tls: session resumption with a TLS 1.3 ticket, also across a reload") {
  OneCert c;
  TlsOptions o;
  o.certs = {c.pair};
  auto holder = ContextHolder::Create(o);
  REQUIRE(holder.ok());
  SSL_SESSION* ticket = nullptr;
  {
    TlsSession server = NewSession((*holder)->current());
    Client client(c.Verified());
    std::string plain;
    REQUIRE(Pump(client, server, &plain).ok());
    client.Write("x");  // the ticket arrives after the handshake; reading picks it up
    REQUIRE(Pump(client, server, &plain).ok());
    ticket = SSL_get1_session(client.ssl());
    REQUIRE(ticket != nullptr);
    CHECK(SSL_SESSION_is_resumable(ticket) == 1);
    SSL_shutdown(client.ssl());  // else SSL_free marks the session as not resumable
  }
  for (int pass = 0; pass < 2; ++pass) {
    CAPTURE(pass);
    if (pass == 1) REQUIRE((*holder)->Reload(o).ok());  // a new context set keeps the ticket keys
    TlsSession server = NewSession((*holder)->current());
    ClientOptions co = c.Verified();
    co.session = ticket;
    Client client(co);
    std::string plain;
    REQUIRE(Pump(client, server, &plain).ok());
    CHECK(server.resumed());
    CHECK(SSL_session_reused(client.ssl()) == 1);
  }
  SSL_SESSION_free(ticket);
}

TEST_CASE("tls: TLS 1.2 session resumption by ticket (no server-side cache)") {
  OneCert c;
  auto set = c.Build();
  SSL_SESSION* ticket = nullptr;
  {
    TlsSession server = NewSession(set);
    ClientOptions co = c.Verified();
    co.max_version = TLS1_2_VERSION;
    Client client(co);
    std::string plain;
    REQUIRE(Pump(client, server, &plain).ok());
    ticket = SSL_get1_session(client.ssl());
    REQUIRE(ticket != nullptr);
    CHECK(SSL_SESSION_has_ticket(ticket) == 1);
    SSL_shutdown(client.ssl());
  }
  CHECK(SSL_CTX_sess_number(set->default_context()) == 0);  // nothing cached server-side
  TlsSession server = NewSession(set);
  ClientOptions co = c.Verified();
  co.max_version = TLS1_2_VERSION;
  co.session = ticket;
  Client client(co);
  std::string plain;
  REQUIRE(Pump(client, server, &plain).ok());
  CHECK(server.resumed());
  CHECK(server.version() == "TLSv1.2");
  SSL_SESSION_free(ticket);
}

TEST_CASE("tls: renegotiation is refused") {
  OneCert c;
  TlsSession server = NewSession(c.Build());
  ClientOptions co = c.Verified();
  co.max_version = TLS1_2_VERSION;
  Client client(co);
  std::string plain;
  REQUIRE(Pump(client, server, &plain).ok());
  REQUIRE(SSL_renegotiate(client.ssl()) == 1);
  SSL_do_handshake(client.ssl());
  (void)Pump(client, server, &plain);
  CHECK(SSL_renegotiate_pending(client.ssl()) == 1);  // never completed
  CHECK(SSL_get_secure_renegotiation_support(server.ssl()) == 1);
  CHECK((SSL_get_options(server.ssl()) & SSL_OP_NO_RENEGOTIATION) != 0);
}

TEST_CASE("tls: buffers are released on idle sessions") {
  OneCert c;
  TlsSession server = NewSession(c.Build());
  CHECK((SSL_get_mode(server.ssl()) & SSL_MODE_RELEASE_BUFFERS) != 0);
  Client client(c.Verified());
  std::string plain;
  REQUIRE(Pump(client, server, &plain).ok());
  CHECK(server.pending_ciphertext() == 0);
}

TEST_CASE("tls: close_notify from the client is seen") {
  OneCert c;
  TlsSession server = NewSession(c.Build());
  Client client(c.Verified());
  std::string plain;
  REQUIRE(Pump(client, server, &plain).ok());
  SSL_shutdown(client.ssl());
  REQUIRE(Pump(client, server, &plain).ok());
  CHECK(server.peer_closed());
  server.Shutdown();
  std::string out;
  server.TakeCiphertext(&out);
  CHECK(!out.empty());  // our close_notify
}

// --- hostile input ---

TEST_CASE("tls: garbage after a record header fails the handshake") {
  OneCert c;
  TlsSession server = NewSession(c.Build());
  std::string plain;
  Status st = server.Receive(std::string("\x16\x03\x01\x00\x20", 5) + std::string(32, '\xee'), &plain);
  CHECK_FALSE(st.ok());
  std::string alert;
  server.TakeCiphertext(&alert);
  CHECK(!alert.empty());
  CHECK(static_cast<uint8_t>(alert[0]) == 0x15);  // an alert record for the peer
}

TEST_CASE("tls: data in the same read as the client's Finished does not count against the handshake bound") {
  OneCert c;
  TlsLimits limits;
  limits.max_handshake_bytes = 8000;
  TlsSession server = NewSession(c.Build(), limits);
  Client client(c.Verified());
  std::string plain;
  client.Step();  // ClientHello
  REQUIRE(server.Receive(client.TakeOutput(), &plain).ok());
  std::string out;
  server.TakeCiphertext(&out);
  client.Give(out);
  client.Step();  // client Finished
  REQUIRE(client.done());
  client.Write(std::string(20000, 'h'));  // its first data, in the same read
  REQUIRE(server.Receive(client.TakeOutput(), &plain).ok());
  CHECK(server.handshake_done());
  CHECK(plain.size() == 20000);
}

TEST_CASE("tls: an unfinished handshake over the byte bound fails") {
  OneCert c;
  TlsLimits limits;
  limits.max_handshake_bytes = 1000;
  TlsSession server = NewSession(c.Build(), limits);
  std::string plain;
  // An oversized ClientHello record header announcing 16000 bytes, sent in pieces.
  CHECK(server.Receive(std::string("\x16\x03\x01\x3e\x80", 5), &plain).ok());
  Status st = server.Receive(std::string(996, '\x01'), &plain);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kTooLarge);
}

// --- client certificates ---

struct ClientPki {
  TempDir dir;
  tls_test::Key ca_key = tls_test::NewKey();
  tls_test::Cert ca = tls_test::MakeCert(ca_key.get(), "Test CA", {}, nullptr, nullptr, true);
  std::string ca_file = dir / "ca.pem";
  std::string cert_file = dir / "client.pem";
  std::string key_file = dir / "client.key";
  ClientPki() {
    tls_test::WriteCert(ca_file, ca.get());
    tls_test::Key key = tls_test::NewKey();
    tls_test::Cert cert = tls_test::MakeCert(key.get(), "alice", {}, ca.get(), ca_key.get(), false, 2);
    tls_test::WriteCert(cert_file, cert.get());
    tls_test::WriteKey(key_file, key.get());
  }
};

TEST_CASE("tls: required client certificate: verified one accepted, none refused") {
  OneCert c;
  ClientPki pki;
  TlsOptions o;
  o.ca_certs = pki.ca_file;
  o.client_verify_mode = "required";
  auto set = c.Build(o);
  {
    TlsSession server = NewSession(set);
    ClientOptions co = c.Verified();
    co.cert = pki.cert_file;
    co.key = pki.key_file;
    Client client(co);
    std::string plain;
    REQUIRE(Pump(client, server, &plain).ok());
    client.Write("hi");
    REQUIRE(Pump(client, server, &plain).ok());
    CHECK(plain == "hi");
    CHECK(server.peer_subject().find("CN=alice") != std::string::npos);
  }
  {
    TlsSession server = NewSession(set);
    Client client(c.Verified());
    std::string plain;
    client.Step();
    Status st = Pump(client, server, &plain);
    // TLS 1.3: the client finishes first; the server refuses its empty Certificate.
    CHECK_FALSE(st.ok());
    CHECK(plain.empty());
  }
}

TEST_CASE("tls: optional client certificate: none is fine, a self-signed one is refused") {
  OneCert c;
  ClientPki pki;
  TlsOptions o;
  o.ca_certs = pki.ca_file;  // mode defaults to optional
  auto set = c.Build(o);
  {
    TlsSession server = NewSession(set);
    Client client(c.Verified());
    std::string plain;
    REQUIRE(Pump(client, server, &plain).ok());
    CHECK(server.handshake_done());
    CHECK(server.peer_subject().empty());
  }
  {
    TempDir other;
    CertKeyPair self = WritePair(other, "self", "mallory", {});
    TlsSession server = NewSession(set);
    ClientOptions co = c.Verified();
    co.cert = self.cert_file;
    co.key = self.key_file;
    Client client(co);
    std::string plain;
    Status st = Pump(client, server, &plain);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().message.find("client certificate") != std::string::npos);
  }
}

TEST_CASE("tls: client verify mode errors") {
  OneCert c;
  TlsOptions o;
  o.certs = {c.pair};
  o.client_verify_mode = "sometimes";
  CHECK_FALSE(ContextSet::Build(o).ok());
  o.client_verify_mode = "required";  // without --ssl-ca-certs
  CHECK_FALSE(ContextSet::Build(o).ok());
  o.ca_certs = c.dir / "no-such-ca.pem";
  auto set = ContextSet::Build(o);
  REQUIRE_FALSE(set.ok());
  CHECK(set.error().message.find("no-such-ca.pem") != std::string::npos);
}

// --- reload ---

TEST_CASE("tls: reload: new handshakes see the new certificate, a live session keeps working") {
  TempDir dir;
  TlsOptions o;
  o.certs = {WritePair(dir, "old", "old.test", {"relay.test"})};
  auto holder = ContextHolder::Create(o);
  REQUIRE(holder.ok());
  TlsSession live = NewSession((*holder)->current());
  Client live_client(ClientOptions{});
  std::string live_plain;
  REQUIRE(Pump(live_client, live, &live_plain).ok());
  CHECK(live_client.ServerCn() == "old.test");

  // A renewed certificate in the same files.
  o.certs = {WritePair(dir, "old", "new.test", {"relay.test"})};
  REQUIRE((*holder)->Reload(o).ok());
  TlsSession fresh = NewSession((*holder)->current());
  Client fresh_client(ClientOptions{});
  std::string fresh_plain;
  REQUIRE(Pump(fresh_client, fresh, &fresh_plain).ok());
  CHECK(fresh_client.ServerCn() == "new.test");

  live_client.Write("still here");
  REQUIRE(Pump(live_client, live, &live_plain).ok());
  CHECK(live_plain == "still here");
  REQUIRE(live.Send("and served").ok());
  REQUIRE(Pump(live_client, live, &live_plain).ok());
  CHECK(live_client.plain == "and served");
}

TEST_CASE("tls: a failed reload keeps the current set") {
  OneCert c;
  TlsOptions o;
  o.certs = {c.pair};
  auto holder = ContextHolder::Create(o);
  REQUIRE(holder.ok());
  auto before = (*holder)->current();
  TlsOptions broken = o;
  broken.certs = {{c.dir / "gone.crt", ""}};
  Status st = (*holder)->Reload(broken);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("gone.crt") != std::string::npos);
  CHECK((*holder)->current() == before);
}

}  // namespace
}  // namespace xr::tls
