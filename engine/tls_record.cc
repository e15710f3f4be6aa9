#include "engine/tls_record.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace xr::tls {

namespace {

constexpr size_t kHeader = 5;
constexpr size_t kTag = 16;
constexpr size_t kIvLen = 12;
constexpr uint8_t kApplicationData = 23;
constexpr uint8_t kAlertType = 21;
constexpr uint8_t kHandshakeType = 22;
constexpr uint8_t kKeyUpdate = 24;

size_t KeyLen(Aead a) { return a == Aead::kAes128Gcm ? 16 : 32; }
size_t HashLen(Aead a) { return a == Aead::kAes256Gcm ? 48 : 32; }
const EVP_MD* Hash(Aead a) { return a == Aead::kAes256Gcm ? EVP_sha384() : EVP_sha256(); }

// Fetched once: EVP_CipherInit_ex with a fetched cipher does no provider lookup per call.
const EVP_CIPHER* Cipher(Aead a) {
  static const EVP_CIPHER* aes128 = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
  static const EVP_CIPHER* aes256 = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  static const EVP_CIPHER* chacha = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  switch (a) {
    case Aead::kAes128Gcm: return aes128;
    case Aead::kAes256Gcm: return aes256;
    case Aead::kChacha20Poly1305: return chacha;
  }
  return nullptr;
}

// Every key installed gets its own id: a thread's cipher context is tagged with the id of the
// key loaded in it, so a connection freed and another allocated at the same address can never
// be taken for each other.
std::atomic<uint64_t> g_next_key_id{1};

// The reactor thread's two cipher contexts (seal, open), each with the key it holds loaded.
struct CipherSlot {
  EVP_CIPHER_CTX* ctx = nullptr;
  uint64_t key_id = 0;
};
struct ThreadCiphers {
  CipherSlot seal, open;
  ~ThreadCiphers() {
    EVP_CIPHER_CTX_free(seal.ctx);
    EVP_CIPHER_CTX_free(open.ctx);
  }
};
thread_local ThreadCiphers t_ciphers;

const char* AlertName(uint8_t d) {
  switch (d) {
    case 0: return "close_notify";
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 22: return "record_overflow";
    case 40: return "handshake_failure";
    case 42: return "bad_certificate";
    case 47: return "illegal_parameter";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 80: return "internal_error";
    case 90: return "user_canceled";
    case 109: return "missing_extension";
    case 110: return "unsupported_extension";
    default: return nullptr;
  }
}

}  // namespace

struct Tls13Records::Direction {
  unsigned char secret[48];
  unsigned char key[32];
  unsigned char iv[kIvLen];
  uint64_t seq = 0;
  uint64_t key_id = 0;
  ~Direction() { OPENSSL_cleanse(this, sizeof *this); }

  // The key and IV of `secret` (already in this->secret), sequence number 0.
  Status Install(Aead aead) {
    const std::string_view s(reinterpret_cast<const char*>(secret), HashLen(aead));
    if (Status st = HkdfExpandLabel(aead, s, "key", KeyLen(aead), key); !st.ok()) return st;
    if (Status st = HkdfExpandLabel(aead, s, "iv", kIvLen, iv); !st.ok()) return st;
    seq = 0;
    key_id = g_next_key_id.fetch_add(1, std::memory_order_relaxed);
    return Status::Ok();
  }
  // RFC 8446 7.2: the next application traffic secret, and its key and IV.
  Status Update(Aead aead) {
    unsigned char next[48];
    const std::string_view s(reinterpret_cast<const char*>(secret), HashLen(aead));
    if (Status st = HkdfExpandLabel(aead, s, "traffic upd", HashLen(aead), next); !st.ok()) return st;
    std::memcpy(secret, next, HashLen(aead));
    OPENSSL_cleanse(next, sizeof next);
    return Install(aead);
  }
  // The per-record nonce: the IV with the sequence number XORed into its last 8 bytes.
  void Nonce(unsigned char out[kIvLen]) const {
    std::memcpy(out, iv, kIvLen);
    for (int i = 0; i < 8; ++i) out[kIvLen - 1 - i] ^= static_cast<unsigned char>(seq >> (8 * i));
  }
};

namespace {

// The thread's context for `slot`, with `d`'s key loaded; null on a library failure.
EVP_CIPHER_CTX* Load(CipherSlot& slot, const Tls13Records::Direction& d, Aead aead, int encrypt) {
  if (slot.ctx == nullptr && (slot.ctx = EVP_CIPHER_CTX_new()) == nullptr) return nullptr;
  if (slot.key_id != d.key_id) {
    slot.key_id = 0;
    if (EVP_CipherInit_ex(slot.ctx, Cipher(aead), nullptr, d.key, nullptr, encrypt) != 1) return nullptr;
    slot.key_id = d.key_id;
  }
  return slot.ctx;
}

}  // namespace

bool AeadForSuite(uint16_t suite, Aead* aead) {
  switch (suite) {
    case 0x1301: *aead = Aead::kAes128Gcm; return true;
    case 0x1302: *aead = Aead::kAes256Gcm; return true;
    case 0x1303: *aead = Aead::kChacha20Poly1305; return true;
    default: return false;
  }
}

Status HkdfExpandLabel(Aead aead, std::string_view secret, std::string_view label, size_t out_len,
                       unsigned char* out) {
  const size_t hash_len = HashLen(aead);
  if (out_len > hash_len || label.size() > 249 || secret.size() != hash_len) {
    return MakeError(ErrorCode::kInternal, "HKDF-Expand-Label: bad length");
  }
  // HkdfLabel = uint16 length, opaque label<7..255> = "tls13 " + label, opaque context<0..255> = "";
  // one HMAC block suffices for out_len <= the hash length: T(1) = HMAC(secret, info || 0x01).
  unsigned char info[2 + 1 + 6 + 249 + 1 + 1];
  size_t n = 0;
  info[n++] = static_cast<unsigned char>(out_len >> 8);
  info[n++] = static_cast<unsigned char>(out_len);
  info[n++] = static_cast<unsigned char>(6 + label.size());
  std::memcpy(info + n, "tls13 ", 6);
  n += 6;
  std::memcpy(info + n, label.data(), label.size());
  n += label.size();
  info[n++] = 0;  // empty context
  info[n++] = 1;  // the HKDF-Expand block counter
  unsigned char block[EVP_MAX_MD_SIZE];
  unsigned int block_len = 0;
  if (HMAC(Hash(aead), secret.data(), static_cast<int>(secret.size()), info, n, block, &block_len) == nullptr ||
      block_len != hash_len) {
    return MakeError(ErrorCode::kInternal, "HKDF-Expand-Label: HMAC failed");
  }
  std::memcpy(out, block, out_len);
  OPENSSL_cleanse(block, sizeof block);
  return Status::Ok();
}

Tls13Records::Tls13Records(Aead aead) : aead_(aead) {}

Tls13Records::~Tls13Records() {
  // The thread's contexts forget this connection's keys (they are not reused for anything).
  for (CipherSlot* slot : {&t_ciphers.seal, &t_ciphers.open}) {
    if (slot->ctx != nullptr && ((read_ && slot->key_id == read_->key_id) || (write_ && slot->key_id == write_->key_id))) {
      EVP_CIPHER_CTX_reset(slot->ctx);
      slot->key_id = 0;
    }
  }
}

Expected<std::unique_ptr<Tls13Records>> Tls13Records::Create(Aead aead, std::string_view client_secret,
                                                               std::string_view server_secret, uint64_t write_seq) {
  if (client_secret.size() != HashLen(aead) || server_secret.size() != HashLen(aead)) {
    return MakeError(ErrorCode::kInternal, "TLS 1.3 traffic secret of the wrong length");
  }
  if (Cipher(aead) == nullptr) return MakeError(ErrorCode::kUnsupported, "cipher not available in this OpenSSL");
  std::unique_ptr<Tls13Records> r(new Tls13Records(aead));
  r->read_ = std::make_unique<Direction>();
  r->write_ = std::make_unique<Direction>();
  std::memcpy(r->read_->secret, client_secret.data(), client_secret.size());
  std::memcpy(r->write_->secret, server_secret.data(), server_secret.size());
  if (Status st = r->read_->Install(aead); !st.ok()) return st.error();
  if (Status st = r->write_->Install(aead); !st.ok()) return st.error();
  r->write_->seq = write_seq;
  return r;
}

uint64_t Tls13Records::read_seq() const { return read_->seq; }
uint64_t Tls13Records::write_seq() const { return write_->seq; }

Status Tls13Records::Fail(Alert alert, std::string message, std::string* out) {
  SealAlert(alert, out);
  error_ = std::make_unique<Error>(MakeError(ErrorCode::kMalformed, std::move(message)));
  return *error_;
}

void Tls13Records::SealRecord(uint8_t inner_type, std::string_view data, std::string* out) {
  const size_t len = data.size() + 1 + kTag;
  const size_t at = out->size();
  out->resize(at + kHeader + len);
  auto* p = reinterpret_cast<unsigned char*>(out->data() + at);
  p[0] = kApplicationData;
  p[1] = 3;
  p[2] = 3;
  p[3] = static_cast<unsigned char>(len >> 8);
  p[4] = static_cast<unsigned char>(len);
  unsigned char nonce[kIvLen];
  write_->Nonce(nonce);
  EVP_CIPHER_CTX* ctx = Load(t_ciphers.seal, *write_, aead_, 1);
  int n = 0;
  bool ok = ctx != nullptr && EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, nonce, 1) == 1 &&
            EVP_CipherUpdate(ctx, nullptr, &n, p, kHeader) == 1;
  if (ok && !data.empty()) {
    ok = EVP_CipherUpdate(ctx, p + kHeader, &n, reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size())) == 1;
  }
  ok = ok && EVP_CipherUpdate(ctx, p + kHeader + data.size(), &n, &inner_type, 1) == 1 &&
       EVP_CipherFinal_ex(ctx, p + kHeader + data.size() + 1, &n) == 1 &&
       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTag, p + kHeader + data.size() + 1) == 1;
  if (!ok) {
    // A library failure (never seen): nothing half-sealed goes out, and nothing after it.
    out->resize(at);
    t_ciphers.seal.key_id = 0;
    if (!error_) error_ = std::make_unique<Error>(MakeError(ErrorCode::kInternal, "TLS record encryption failed"));
    sealed_alert_ = true;
    return;
  }
  ++write_->seq;
}

Status Tls13Records::UpdateWriteKey(bool request_update, std::string* out) {
  const char msg[5] = {static_cast<char>(kKeyUpdate), 0, 0, 1, static_cast<char>(request_update ? 1 : 0)};
  SealRecord(kHandshakeType, std::string_view(msg, sizeof msg), out);
  if (error_) return *error_;
  if (Status st = write_->Update(aead_); !st.ok()) {
    error_ = std::make_unique<Error>(st.error());
    sealed_alert_ = true;
    return *error_;
  }
  ++updates_sent_;
  return Status::Ok();
}

Status Tls13Records::Seal(std::string_view plaintext, std::string* out) {
  if (error_) return *error_;
  if (sealed_alert_) return MakeError(ErrorCode::kIo, "TLS write after the connection was closed");
  const size_t records = (plaintext.size() + kMaxPlaintext - 1) / kMaxPlaintext;
  out->reserve(out->size() + plaintext.size() + records * (kHeader + 1 + kTag) + 32);
  while (!plaintext.empty()) {
    if (write_->seq >= max_records_per_key_) {
      if (Status st = UpdateWriteKey(false, out); !st.ok()) return st;
    }
    const size_t n = std::min(plaintext.size(), kMaxPlaintext);
    SealRecord(kApplicationData, plaintext.substr(0, n), out);
    if (error_) return *error_;
    plaintext.remove_prefix(n);
  }
  return Status::Ok();
}

void Tls13Records::SealAlert(Alert alert, std::string* out) {
  if (sealed_alert_) return;
  const char msg[2] = {static_cast<char>(alert == kCloseNotify || alert == kUserCanceled ? 1 : 2),
                       static_cast<char>(alert)};
  SealRecord(kAlertType, std::string_view(msg, sizeof msg), out);
  sealed_alert_ = true;
}

namespace {

// A record header's problem, or kCloseNotify (0) for none. After the handshake every record is
// protected: outer type application_data; the version field is ignored (RFC 8446 5.1).
Alert CheckHeader(const unsigned char* h, size_t* len, std::string* why) {
  *len = (size_t{h[3]} << 8) | h[4];
  if (h[0] != kApplicationData) {
    *why = "TLS record of type " + std::to_string(h[0]) + " after the handshake (only protected records are allowed)";
    return kUnexpectedMessage;
  }
  if (*len > Tls13Records::kMaxCiphertext) {
    *why = "TLS record of " + std::to_string(*len) + " bytes (over 16640)";
    return kRecordOverflow;
  }
  if (*len < 1 + kTag) {
    *why = "TLS record of " + std::to_string(*len) + " bytes cannot hold its tag";
    return kBadRecordMac;
  }
  return kCloseNotify;
}

}  // namespace

Status Tls13Records::Open(std::string_view wire, std::string* plaintext, std::string* out) {
  if (error_) return *error_;
  std::string why;
  size_t len = 0;
  if (partial_) {
    std::string& p = *partial_;
    if (p.size() < kHeader) {
      const size_t take = std::min(kHeader - p.size(), wire.size());
      p.append(wire.substr(0, take));
      wire.remove_prefix(take);
      if (p.size() < kHeader) return Status::Ok();
    }
    if (Alert a = CheckHeader(reinterpret_cast<const unsigned char*>(p.data()), &len, &why); a != kCloseNotify) {
      partial_.reset();
      return Fail(a, why, out);
    }
    const size_t take = std::min(kHeader + len - p.size(), wire.size());
    p.append(wire.substr(0, take));
    wire.remove_prefix(take);
    if (p.size() < kHeader + len) return Status::Ok();
    std::unique_ptr<std::string> record = std::move(partial_);
    if (Status st = OpenRecord(*record, plaintext, out); !st.ok()) return st;
  }
  while (!wire.empty() && !peer_closed_) {
    if (wire.size() >= kHeader) {
      if (Alert a = CheckHeader(reinterpret_cast<const unsigned char*>(wire.data()), &len, &why); a != kCloseNotify) {
        return Fail(a, why, out);
      }
      if (wire.size() >= kHeader + len) {
        if (Status st = OpenRecord(wire.substr(0, kHeader + len), plaintext, out); !st.ok()) return st;
        wire.remove_prefix(kHeader + len);
        continue;
      }
    }
    // The start of a record: kept (at most one record's bytes) until the rest comes.
    partial_ = std::make_unique<std::string>(wire);
    partial_->reserve(kHeader + (wire.size() >= kHeader ? len : kMaxCiphertext));
    break;
  }
  return Status::Ok();
}

Status Tls13Records::OpenRecord(std::string_view record, std::string* plaintext, std::string* out) {
  if (peer_closed_) return Status::Ok();
  const auto* h = reinterpret_cast<const unsigned char*>(record.data());
  const size_t body = record.size() - kHeader - kTag;
  const auto* tag = h + kHeader + body;
  // TLSInnerPlaintext (content, its type, zero padding) may not exceed 2^14 + 1 bytes: known
  // from the length alone, so refused before any decryption.
  if (body > kMaxPlaintext + 1) return Fail(kRecordOverflow, "TLS record plaintext over 16385 bytes", out);
  const size_t at = plaintext->size();
  plaintext->resize(at + body);
  auto* p = reinterpret_cast<unsigned char*>(plaintext->data() + at);
  unsigned char nonce[kIvLen];
  read_->Nonce(nonce);
  EVP_CIPHER_CTX* ctx = Load(t_ciphers.open, *read_, aead_, 0);
  int n = 0, m = 0;
  const bool setup = ctx != nullptr && EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, nonce, 0) == 1 &&
                     EVP_CipherUpdate(ctx, nullptr, &n, h, kHeader) == 1 &&
                     EVP_CipherUpdate(ctx, p, &n, h + kHeader, static_cast<int>(body)) == 1 &&
                     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTag, const_cast<unsigned char*>(tag)) == 1;
  if (!setup) {
    plaintext->resize(at);
    t_ciphers.open.key_id = 0;
    return Fail(kBadRecordMac, "TLS record decryption failed (library error)", out);
  }
  if (EVP_CipherFinal_ex(ctx, p + n, &m) != 1) {
    plaintext->resize(at);  // nothing unauthenticated is left for the caller
    return Fail(kBadRecordMac, "TLS record failed authentication (bad record MAC)", out);
  }
  ++read_->seq;
  // The content type is the last byte that is not padding.
  size_t end = body;
  while (end > 0 && p[end - 1] == 0) --end;
  if (end == 0) {
    plaintext->resize(at);
    return Fail(kUnexpectedMessage, "TLS record with no content type", out);
  }
  const uint8_t type = p[end - 1];
  const size_t content = end - 1;
  if (type == kApplicationData) {
    plaintext->resize(at + content);
    return Status::Ok();
  }
  const std::string inner(reinterpret_cast<const char*>(p), content);
  plaintext->resize(at);
  if (type == kAlertType) {
    if (content != 2) return Fail(kDecodeError, "TLS alert of " + std::to_string(content) + " bytes", out);
    const uint8_t desc = static_cast<uint8_t>(inner[1]);
    if (desc == kCloseNotify) {
      peer_closed_ = true;
      partial_.reset();
      return Status::Ok();
    }
    if (desc == kUserCanceled) return Status::Ok();  // a close_notify follows
    const char* name = AlertName(desc);
    error_ = std::make_unique<Error>(MakeError(
        ErrorCode::kMalformed, std::string("TLS alert from the client: ") + (name ? name : std::to_string(desc).c_str())));
    sealed_alert_ = true;  // no alert answers a fatal alert
    return *error_;
  }
  if (type == kHandshakeType) return HandlePostHandshake(inner, out);
  return Fail(kUnexpectedMessage, "TLS record content type " + std::to_string(type) + " after the handshake", out);
}

Status Tls13Records::HandlePostHandshake(std::string_view messages, std::string* out) {
  // The one message a client may send after the handshake is a KeyUpdate, whole, alone at the
  // end of its record (the peer's next records use its next key). An empty handshake record
  // carries nothing and is passed over.
  if (messages.empty()) return Status::Ok();
  if (messages.size() < 4) return Fail(kUnexpectedMessage, "a TLS handshake message split across records", out);
  const auto* m = reinterpret_cast<const unsigned char*>(messages.data());
  const size_t len = (size_t{m[1]} << 16) | (size_t{m[2]} << 8) | m[3];
  if (messages.size() < 4 + len) return Fail(kUnexpectedMessage, "a TLS handshake message split across records", out);
  if (m[0] != kKeyUpdate) {
    return Fail(kUnexpectedMessage, "TLS handshake message type " + std::to_string(m[0]) + " after the handshake", out);
  }
  if (len != 1 || m[4] > 1) return Fail(kDecodeError, "malformed TLS KeyUpdate", out);
  if (messages.size() != 5) return Fail(kUnexpectedMessage, "data after a TLS KeyUpdate in its record", out);
  if (Status st = read_->Update(aead_); !st.ok()) {
    error_ = std::make_unique<Error>(st.error());
    return *error_;
  }
  ++updates_received_;
  if (m[4] == 1) return UpdateWriteKey(false, out);  // update_requested: ours before our next data
  return Status::Ok();
}

}  // namespace xr::tls
