// The TLS 1.3 record layer on its own: key derivation checked against OpenSSL's own TLS13-KDF,
// records checked against a sealer written here with EVP directly (so neither side is only
// checked against itself), each malformed case on its own. The layer against a real OpenSSL
// client is in tls_test.cc.
#include "engine/tls_record.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include <doctest/doctest.h>

#include <string>

namespace xr::tls {
namespace {

const std::string kClientSecret(32, '\x11');
const std::string kServerSecret(32, '\x22');

std::unique_ptr<Tls13Records> Server(Aead aead = Aead::kAes128Gcm) {
  const size_t n = aead == Aead::kAes256Gcm ? 48 : 32;
  auto r = Tls13Records::Create(aead, std::string(n, '\x11'), std::string(n, '\x22'), 0);
  REQUIRE(r.ok());
  return std::move(*r);
}

// The client's side: reads what the server seals, seals with the client's secret.
std::unique_ptr<Tls13Records> Mirror(Aead aead = Aead::kAes128Gcm) {
  const size_t n = aead == Aead::kAes256Gcm ? 48 : 32;
  auto r = Tls13Records::Create(aead, std::string(n, '\x22'), std::string(n, '\x11'), 0);
  REQUIRE(r.ok());
  return std::move(*r);
}

// HKDF-Expand-Label by OpenSSL's TLS13-KDF (an implementation independent of ours).
std::string OpenSslExpandLabel(const char* digest, const std::string& secret, const std::string& label, size_t len) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "TLS13-KDF", nullptr);
  REQUIRE(kdf != nullptr);
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  std::string prefix = "tls13 ";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(digest), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<char*>(secret.data()), secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, prefix.data(), prefix.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, const_cast<char*>(label.data()), label.size()),
      OSSL_PARAM_construct_end(),
  };
  std::string out(len, '\0');
  REQUIRE(EVP_KDF_derive(ctx, reinterpret_cast<unsigned char*>(out.data()), len, params) == 1);
  EVP_KDF_CTX_free(ctx);
  EVP_KDF_free(kdf);
  return out;
}

std::string Expand(Aead aead, const std::string& secret, const std::string& label, size_t len) {
  std::string out(len, '\0');
  REQUIRE(HkdfExpandLabel(aead, secret, label, len, reinterpret_cast<unsigned char*>(out.data())).ok());
  return out;
}

// A record sealed here with EVP directly, AES-128-GCM, with the key and IV OpenSSL's KDF gives
// for `secret`: `inner` is the whole TLSInnerPlaintext (content, type byte, padding); `type`
// and `length` override the header (length: -1 for the true one).
std::string HandSeal(const std::string& secret, uint64_t seq, const std::string& inner, uint8_t type = 23,
                     int length = -1) {
  const std::string key = OpenSslExpandLabel("SHA256", secret, "key", 16);
  std::string nonce = OpenSslExpandLabel("SHA256", secret, "iv", 12);
  for (int i = 0; i < 8; ++i) nonce[11 - i] ^= static_cast<char>(seq >> (8 * i));
  const size_t len = length >= 0 ? static_cast<size_t>(length) : inner.size() + 16;
  std::string rec = {static_cast<char>(type), 3, 3, static_cast<char>(len >> 8), static_cast<char>(len & 0xff)};
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  REQUIRE(EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                             reinterpret_cast<const unsigned char*>(nonce.data())) == 1);
  int n = 0;
  REQUIRE(EVP_EncryptUpdate(ctx, nullptr, &n, reinterpret_cast<const unsigned char*>(rec.data()), 5) == 1);
  std::string ct(inner.size() + 16, '\0');
  auto* p = reinterpret_cast<unsigned char*>(ct.data());
  if (!inner.empty()) {
    REQUIRE(EVP_EncryptUpdate(ctx, p, &n, reinterpret_cast<const unsigned char*>(inner.data()),
                              static_cast<int>(inner.size())) == 1);
  }
  REQUIRE(EVP_EncryptFinal_ex(ctx, p + inner.size(), &n) == 1);
  REQUIRE(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, p + inner.size()) == 1);
  EVP_CIPHER_CTX_free(ctx);
  return rec + ct;
}

// A record from the client (to the server's read side).
std::string FromClient(uint64_t seq, const std::string& inner, uint8_t type = 23, int length = -1) {
  return HandSeal(kClientSecret, seq, inner, type, length);
}

TEST_CASE("tls_record: HKDF-Expand-Label agrees with OpenSSL's TLS13-KDF for every label and hash") {
  const std::string s32(32, '\x5a'), s48(48, '\xa5');
  for (const char* label : {"key", "iv", "traffic upd"}) {
    for (size_t len : {12, 16, 32}) {
      CHECK(Expand(Aead::kAes128Gcm, s32, label, len) == OpenSslExpandLabel("SHA256", s32, label, len));
      CHECK(Expand(Aead::kChacha20Poly1305, s32, label, len) == OpenSslExpandLabel("SHA256", s32, label, len));
      CHECK(Expand(Aead::kAes256Gcm, s48, label, len) == OpenSslExpandLabel("SHA384", s48, label, len));
    }
  }
  CHECK(Expand(Aead::kAes256Gcm, s48, "traffic upd", 48) == OpenSslExpandLabel("SHA384", s48, "traffic upd", 48));
  unsigned char out[64];
  CHECK_FALSE(HkdfExpandLabel(Aead::kAes128Gcm, s32, "key", 33, out).ok());  // over the hash length
  CHECK_FALSE(HkdfExpandLabel(Aead::kAes128Gcm, s48, "key", 16, out).ok());  // secret of the wrong hash
}

TEST_CASE("tls_record: suites the layer takes") {
  Aead a;
  CHECK((AeadForSuite(0x1301, &a) && a == Aead::kAes128Gcm));
  CHECK((AeadForSuite(0x1302, &a) && a == Aead::kAes256Gcm));
  CHECK((AeadForSuite(0x1303, &a) && a == Aead::kChacha20Poly1305));
  CHECK_FALSE(AeadForSuite(0x1304, &a));  // CCM: OpenSSL keeps it
  CHECK_FALSE(AeadForSuite(0xc02f, &a));  // a TLS 1.2 suite
}

TEST_CASE("tls_record: a record sealed by hand opens, whole and byte by byte") {
  const std::string rec = FromClient(0, std::string("hello") + '\x17') + FromClient(1, std::string("world") + '\x17' + std::string(7, '\0'));
  auto whole = Server();
  std::string plain, out;
  REQUIRE(whole->Open(rec, &plain, &out).ok());
  CHECK(plain == "helloworld");
  CHECK(whole->read_seq() == 2);
  CHECK(out.empty());
  auto bytes = Server();
  std::string plain2;
  for (char c : rec) REQUIRE(bytes->Open(std::string_view(&c, 1), &plain2, &out).ok());
  CHECK(plain2 == "helloworld");
  CHECK(bytes->buffered() == 0);
}

TEST_CASE("tls_record: sealed records open on the other side, for each AEAD, in 16 KiB records") {
  for (Aead aead : {Aead::kAes128Gcm, Aead::kAes256Gcm, Aead::kChacha20Poly1305}) {
    auto server = Server(aead);
    auto client = Mirror(aead);
    std::string data(40000, '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
    std::string wire;
    REQUIRE(server->Seal(data, &wire).ok());
    CHECK(server->write_seq() == 3);  // 16384 + 16384 + 7232
    CHECK(wire.size() == data.size() + 3 * 22);
    std::string back, out;
    REQUIRE(client->Open(wire, &back, &out).ok());
    CHECK(back == data);
    // And the other way.
    std::string wire2, back2;
    REQUIRE(client->Seal("ping", &wire2).ok());
    REQUIRE(server->Open(wire2, &back2, &out).ok());
    CHECK(back2 == "ping");
  }
}

TEST_CASE("tls_record: the server's first sequence number follows the tickets OpenSSL sealed") {
  auto r = Tls13Records::Create(Aead::kAes128Gcm, kClientSecret, kServerSecret, 2);
  REQUIRE(r.ok());
  std::string wire;
  REQUIRE((*r)->Seal("after two tickets", &wire).ok());
  // A client that has opened nothing cannot open it...
  auto fresh = Mirror();
  std::string back, out;
  CHECK_FALSE(fresh->Open(wire, &back, &out).ok());
  // ...one that opened the two ticket records (sealed by hand at 0 and 1) can.
  auto client = Mirror();
  std::string tickets = HandSeal(kServerSecret, 0, std::string("x") + '\x17') + HandSeal(kServerSecret, 1, std::string("y") + '\x17');
  std::string first;
  REQUIRE(client->Open(tickets, &first, &out).ok());
  REQUIRE(client->Open(wire, &back, &out).ok());
  CHECK(back == "after two tickets");
}

TEST_CASE("tls_record: a tampered record fails with bad_record_mac and an alert, and stays failed") {
  std::string rec = FromClient(0, std::string("secret") + '\x17');
  rec[8] ^= 1;
  auto server = Server();
  std::string plain, out;
  Status st = server->Open(rec, &plain, &out);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("bad record MAC") != std::string::npos);
  CHECK(plain.empty());  // nothing unauthenticated handed out
  auto client = Mirror();
  std::string alert, unused;
  CHECK_FALSE(client->Open(out, &alert, &unused).ok());  // the client reads our fatal alert
  CHECK(server->Open(FromClient(0, std::string("x") + '\x17'), &plain, &out).ok() == false);  // sticky
}

TEST_CASE("tls_record: a record from the wrong sequence number fails") {
  auto server = Server();
  std::string plain, out;
  CHECK_FALSE(server->Open(FromClient(1, std::string("x") + '\x17'), &plain, &out).ok());
}

TEST_CASE("tls_record: an unprotected record type after the handshake is refused") {
  auto server = Server();
  std::string plain, out;
  Status st = server->Open(std::string("\x15\x03\x03\x00\x02\x02\x28", 7), &plain, &out);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("type 21") != std::string::npos);
  CHECK(!out.empty());
}

TEST_CASE("tls_record: a record length over 16640 is refused from its header") {
  auto server = Server();
  std::string plain, out;
  Status st = server->Open(std::string("\x17\x03\x03\x41\x01", 5), &plain, &out);  // 16641
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("over 16640") != std::string::npos);
  CHECK(server->buffered() == 0);
}

TEST_CASE("tls_record: a record too short for its tag is refused") {
  auto server = Server();
  std::string plain, out;
  CHECK_FALSE(server->Open(std::string("\x17\x03\x03\x00\x10", 5) + std::string(16, 'a'), &plain, &out).ok());
}

TEST_CASE("tls_record: inner plaintext over 16385 bytes is refused") {
  auto server = Server();
  std::string plain, out;
  Status st = server->Open(FromClient(0, std::string(16385, 'a') + '\x17'), &plain, &out);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("over 16385") != std::string::npos);
  CHECK(plain.empty());
}

TEST_CASE("tls_record: all-zero inner plaintext (no content type) is refused") {
  auto server = Server();
  std::string plain, out;
  CHECK_FALSE(server->Open(FromClient(0, std::string(8, '\0')), &plain, &out).ok());
}

TEST_CASE("tls_record: a change_cipher_spec inside a protected record is refused") {
  auto server = Server();
  std::string plain, out;
  Status st = server->Open(FromClient(0, std::string("\x01\x14", 2)), &plain, &out);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("content type 20") != std::string::npos);
}

TEST_CASE("tls_record: zero-length application data records are fine") {
  auto server = Server();
  std::string plain, out;
  REQUIRE(server->Open(FromClient(0, "\x17") + FromClient(1, std::string("a") + '\x17'), &plain, &out).ok());
  CHECK(plain == "a");
}

TEST_CASE("tls_record: close_notify ends reading; what follows is ignored") {
  auto server = Server();
  std::string plain, out;
  REQUIRE(server->Open(FromClient(0, std::string("bye") + '\x17') + FromClient(1, std::string("\x01\x00\x15", 3)) +
                           "garbage after",
                       &plain, &out)
              .ok());
  CHECK(plain == "bye");
  CHECK(server->peer_closed());
  server->SealAlert(kCloseNotify, &out);
  auto client = Mirror();
  std::string unused, out2;
  REQUIRE(client->Open(out, &unused, &out2).ok());
  CHECK(client->peer_closed());
  std::string more;
  CHECK_FALSE(server->Seal("late", &more).ok());  // nothing after our close_notify
}

TEST_CASE("tls_record: a fatal alert from the peer ends the connection with its name, no alert back") {
  auto server = Server();
  std::string plain, out;
  Status st = server->Open(FromClient(0, std::string("\x02\x28\x15", 3)), &plain, &out);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message == "TLS alert from the client: handshake_failure");
  CHECK(out.empty());
}

TEST_CASE("tls_record: an alert of the wrong size is a decode error") {
  auto server = Server();
  std::string plain, out;
  CHECK_FALSE(server->Open(FromClient(0, std::string("\x02\x28\x00\x15", 4)), &plain, &out).ok());
}

TEST_CASE("tls_record: the peer's KeyUpdate (update requested): its next records use its next key, ours too") {
  auto server = Server();
  auto client = Mirror();
  std::string wire, plain, out;
  REQUIRE(client->Seal("before", &wire).ok());
  // The client's KeyUpdate(update_requested), sealed by hand with its current key, then data
  // with its next key (the secret OpenSSL's KDF derives).
  std::string next = OpenSslExpandLabel("SHA256", kClientSecret, "traffic upd", 32);
  wire += FromClient(1, std::string("\x18\x00\x00\x01\x01\x16", 6));
  wire += HandSeal(next, 0, std::string("after") + '\x17');
  REQUIRE(server->Open(wire, &plain, &out).ok());
  CHECK(plain == "beforeafter");
  CHECK(server->key_updates_received() == 1);
  CHECK(server->key_updates_sent() == 1);  // ours, update_not_requested
  REQUIRE(server->Seal("reply", &out).ok());
  // The client reads our KeyUpdate and the reply under our next key.
  std::string back, unused;
  REQUIRE(client->Open(out, &back, &unused).ok());
  CHECK(back == "reply");
  CHECK(client->key_updates_received() == 1);
  CHECK(client->key_updates_sent() == 0);  // ours did not ask for one back
}

TEST_CASE("tls_record: our key is updated after max records per key, and the peer follows") {
  auto server = Server();
  server->set_max_records_per_key_for_test(2);
  auto client = Mirror();
  std::string wire;
  for (int i = 0; i < 5; ++i) REQUIRE(server->Seal("r" + std::to_string(i), &wire).ok());
  CHECK(server->key_updates_sent() == 2);
  std::string back, out;
  REQUIRE(client->Open(wire, &back, &out).ok());
  CHECK(back == "r0r1r2r3r4");
  CHECK(client->key_updates_received() == 2);
}

TEST_CASE("tls_record: data after a KeyUpdate in the same record is refused") {
  auto server = Server();
  std::string plain, out;
  CHECK_FALSE(server->Open(FromClient(0, std::string("\x18\x00\x00\x01\x00\x18\x00\x00\x01\x00\x16", 11)), &plain,
                           &out)
                  .ok());
}

TEST_CASE("tls_record: a malformed KeyUpdate is a decode error") {
  auto server = Server();
  std::string plain, out;
  Status st = server->Open(FromClient(0, std::string("\x18\x00\x00\x01\x02\x16", 6)), &plain, &out);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message == "malformed TLS KeyUpdate");
}

TEST_CASE("tls_record: a handshake message split across records is refused") {
  auto server = Server();
  std::string plain, out;
  CHECK_FALSE(server->Open(FromClient(0, std::string("\x18\x00\x16", 3)), &plain, &out).ok());
}

TEST_CASE("tls_record: other post-handshake messages from the client are refused") {
  auto server = Server();
  std::string plain, out;
  Status st = server->Open(FromClient(0, std::string("\x04\x00\x00\x00\x16", 5)), &plain, &out);  // NewSessionTicket
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message == "TLS handshake message type 4 after the handshake");
}

TEST_CASE("tls_record: a partial record is held, and no more than one record's bytes") {
  auto server = Server();
  const std::string rec = FromClient(0, std::string(10000, 'z') + '\x17');
  std::string plain, out;
  REQUIRE(server->Open(std::string_view(rec).substr(0, 3), &plain, &out).ok());
  CHECK(server->buffered() == 3);
  REQUIRE(server->Open(std::string_view(rec).substr(3, 5000), &plain, &out).ok());
  CHECK(server->buffered() == 5003);
  REQUIRE(server->Open(std::string_view(rec).substr(5003), &plain, &out).ok());
  CHECK(server->buffered() == 0);
  CHECK(plain == std::string(10000, 'z'));
}

TEST_CASE("tls_record: a secret of the wrong length is refused") {
  CHECK_FALSE(Tls13Records::Create(Aead::kAes128Gcm, std::string(48, 'a'), std::string(32, 'b'), 0).ok());
  CHECK_FALSE(Tls13Records::Create(Aead::kAes256Gcm, std::string(32, 'a'), std::string(32, 'b'), 0).ok());
}

TEST_CASE("tls_record: two connections on one thread never use each other's keys") {
  auto a = Server();
  auto b = Tls13Records::Create(Aead::kAes128Gcm, std::string(32, '\x33'), std::string(32, '\x44'), 0);
  REQUIRE(b.ok());
  auto a_client = Mirror();
  auto b_client = Tls13Records::Create(Aead::kAes128Gcm, std::string(32, '\x44'), std::string(32, '\x33'), 0);
  REQUIRE(b_client.ok());
  std::string wa, wb;
  for (int i = 0; i < 3; ++i) {  // interleaved: the thread's context switches key each time
    REQUIRE(a->Seal("a" + std::to_string(i), &wa).ok());
    REQUIRE((*b)->Seal("b" + std::to_string(i), &wb).ok());
  }
  std::string ra, rb, out;
  REQUIRE(a_client->Open(wa, &ra, &out).ok());
  REQUIRE((*b_client)->Open(wb, &rb, &out).ok());
  CHECK(ra == "a0a1a2");
  CHECK(rb == "b0b1b2");
  // A layer freed and another made (perhaps at the same address) gets a key of its own.
  a.reset();
  auto c = Tls13Records::Create(Aead::kAes128Gcm, std::string(32, '\x55'), std::string(32, '\x66'), 0);
  REQUIRE(c.ok());
  std::string wc, rc;
  REQUIRE((*c)->Seal("c", &wc).ok());
  auto c_client = Tls13Records::Create(Aead::kAes128Gcm, std::string(32, '\x66'), std::string(32, '\x55'), 0);
  REQUIRE((*c_client)->Open(wc, &rc, &out).ok());
  CHECK(rc == "c");
}

}  // namespace
}  // namespace xr::tls
