#pragma once
// The TLS 1.3 record layer (RFC 8446 section 5) for a connection whose handshake OpenSSL has
// finished: what kTLS does in the kernel, done here because this kernel has no kTLS. OpenSSL
// does the handshake (certificates, key exchange, tickets, client certificates); at its end the
// connection hands the two application traffic secrets to a Tls13Records and frees its SSL
// object, about 13 KiB that an idle connection no longer holds. From then on records are
// sealed straight from the caller's buffer into the bytes to send, and opened straight from the
// received bytes, with no intermediate copy.
//
// Suites: TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256 (any
// other suite stays with OpenSSL's record layer). Post-handshake messages: KeyUpdate in both
// directions (the peer's, and ours after kMaxRecordsPerKey records of one key); anything else
// from the peer is an unexpected_message. Cipher contexts are per reactor thread, loaded with a
// connection's key when it is that connection's turn, so an idle connection holds only its
// secrets, keys, IVs and sequence numbers.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace xr::tls {

enum class Aead : uint8_t { kAes128Gcm, kAes256Gcm, kChacha20Poly1305 };

// The AEAD of a TLS 1.3 suite (the low 16 bits of SSL_CIPHER_get_id: 0x1301...), if we do it.
bool AeadForSuite(uint16_t suite, Aead* aead);

// HKDF-Expand-Label (RFC 8446 section 7.1) with the suite's hash, for out_len <= the hash's
// length (every label the record layer needs): "key", "iv", "traffic upd".
Status HkdfExpandLabel(Aead aead, std::string_view secret, std::string_view label, size_t out_len,
                       unsigned char* out);

// TLS alert descriptions the record layer sends or names.
enum Alert : uint8_t {
  kCloseNotify = 0,
  kUnexpectedMessage = 10,
  kBadRecordMac = 20,
  kRecordOverflow = 22,
  kDecodeError = 50,
  kUserCanceled = 90,
};

class Tls13Records {
 public:
  // Records one key may seal before ours is updated (RFC 8446 5.5 allows 2^24.5 for AES-GCM).
  static constexpr uint64_t kMaxRecordsPerKey = uint64_t{1} << 23;
  static constexpr size_t kMaxPlaintext = 16384;         // per record (2^14)
  static constexpr size_t kMaxCiphertext = 16384 + 256;  // a record's payload, per RFC 8446 5.2

  // The layer for `aead` with the peer's (client's) and our (server's) application traffic
  // secrets; `write_seq`: records OpenSSL already sealed with ours (its session tickets).
  static Expected<std::unique_ptr<Tls13Records>> Create(Aead aead, std::string_view client_secret,
                                                        std::string_view server_secret, uint64_t write_seq);
  ~Tls13Records();
  Tls13Records(const Tls13Records&) = delete;
  Tls13Records& operator=(const Tls13Records&) = delete;

  // Opens the records in `wire` (any split: a partial record is kept until the rest comes),
  // appending application data to *plaintext. Records sealed in response (our KeyUpdate) and
  // an alert on error are appended to *out. Error: a record that does not authenticate, breaks
  // the size limits or carries something the layer does not accept; the connection must close
  // after sending *out. Sticky. After the peer's close_notify, the rest is ignored.
  Status Open(std::string_view wire, std::string* plaintext, std::string* out);
  // Seals `plaintext` into application-data records appended to *out.
  Status Seal(std::string_view plaintext, std::string* out);
  // Seals an alert (fatal, except close_notify) for the peer; nothing more is sealed after it.
  void SealAlert(Alert alert, std::string* out);

  bool peer_closed() const { return peer_closed_; }
  // Bytes of a partial record held (for the caller's accounting and tests).
  size_t buffered() const { return partial_ ? partial_->size() : 0; }
  uint64_t read_seq() const;
  uint64_t write_seq() const;
  // KeyUpdates received from the peer, and sent.
  uint32_t key_updates_received() const { return updates_received_; }
  uint32_t key_updates_sent() const { return updates_sent_; }

  // Tests: lowers kMaxRecordsPerKey for this layer.
  void set_max_records_per_key_for_test(uint64_t n) { max_records_per_key_ = n; }

  struct Direction;  // secret, key, IV, sequence number, key id

 private:
  Tls13Records(Aead aead);
  // One whole record (header + payload).
  Status OpenRecord(std::string_view record, std::string* plaintext, std::string* out);
  Status HandlePostHandshake(std::string_view messages, std::string* out);
  Status Fail(Alert alert, std::string message, std::string* out);
  void SealRecord(uint8_t inner_type, std::string_view data, std::string* out);
  Status UpdateWriteKey(bool request_update, std::string* out);

  Aead aead_;
  bool peer_closed_ = false;
  bool sealed_alert_ = false;
  uint32_t updates_received_ = 0;
  uint32_t updates_sent_ = 0;
  uint64_t max_records_per_key_ = kMaxRecordsPerKey;
  std::unique_ptr<Direction> read_, write_;
  std::unique_ptr<std::string> partial_;  // a record not received whole yet (only while there is one)
  std::unique_ptr<Error> error_;          // sticky
};

}  // namespace xr::tls
