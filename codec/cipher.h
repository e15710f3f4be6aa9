#pragma once
// AES-256-CBC exactly as xpra 3.1.3 uses it (net/crypto.py, net/pycryptography_backend.py,
// net/protocol.py): key = PBKDF2-HMAC-SHA1(secret, key_salt, iterations) -> 32 bytes, the IV is
// the 16 ASCII bytes of the "cipher.iv" string, and each direction of a connection is ONE
// continuous CBC stream (the chaining carries over from one packet to the next). Every
// payload is padded by the sender itself (never by EVP) to a multiple of 32 with 1..32 bytes:
// spaces ("legacy") or PKCS#7-style bytes of value pad_count. The frame header keeps the
// unpadded size; the receiver reads PaddedSize(size) bytes and checks the padding it expects.
// See docs/protocol-notes.md, "AES in xpra 3.1".

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

struct evp_cipher_ctx_st;  // OpenSSL's EVP_CIPHER_CTX, kept out of this header

namespace xr::crypto {

enum class Padding { kLegacy, kPkcs7 };  // legacy = spaces
constexpr size_t kPaddingBlock = 32;      // xpra's DEFAULT_BLOCKSIZE (also the key size)
constexpr size_t kKeySize = 32;           // AES-256
constexpr size_t kIvSize = 16;            // AES block; the IV is 16 ASCII characters in xpra
constexpr int kMinIterations = 100;       // net/crypto.py get_encryptor(): assert 100 <= it <= 10000
constexpr int kMaxIterations = 10000;
constexpr int kDefaultIterations = 1000;  // net/crypto.py DEFAULT_ITERATIONS

// n + (32 - n % 32): always adds 1..32 bytes (32 when n is already a multiple of 32).
size_t PaddedSize(size_t n);

// The wire name of a padding: "legacy" or "PKCS#7" (values of cipher.padding).
std::string_view PaddingName(Padding padding);

// Parses a cipher.padding value ("legacy" / "PKCS#7"); anything else -> kUnsupported.
Expected<Padding> ParsePadding(std::string_view name);

// As xpra's choose_padding(): the first entry of the peer's cipher.padding.options that we
// support, in the peer's order; none -> kUnsupported.
Expected<Padding> ChoosePadding(const std::vector<std::string>& options);

// PBKDF2-HMAC-SHA1 -> 32-byte key; iterations outside [100, 10000] -> kMalformed;
// an empty secret -> kMalformed (xpra asserts a non-empty key). secret and salt are raw bytes
// (xpra: strtobytes(), i.e. latin-1 for text).
Expected<std::string> DeriveKey(std::string_view secret, std::string_view salt, int iterations);

// PBKDF2-HMAC-<hash> (an OpenSSL digest name: "SHA1", "SHA256", ...) -> key_size (1..64) bytes,
// no bound on iterations beyond >= 1 (callers apply their xpra version's range); an empty
// secret -> kMalformed. Shared by DeriveKey and codec/cipher6.h.
Expected<std::string> Pbkdf2Hmac(std::string_view secret, std::string_view salt, const char* hash, size_t key_size,
                                 int iterations);

// n bytes from OpenSSL RAND_bytes (aborts the process if the RNG fails).
std::string RandomBytes(size_t n);

// 16 random lower-case hex characters, the form xpra uses for cipher.iv (uuid4().hex[:16]).
std::string RandomIv();

// One continuous AES-256-CBC stream (one direction). Not thread-safe; movable only via the
// unique_ptr it is created in.
class Encryptor {
 public:
  // key must be 32 bytes (from DeriveKey), iv 16 bytes; otherwise kMalformed.
  static Expected<std::unique_ptr<Encryptor>> Create(std::string_view key, std::string_view iv,
                                                     Padding padding);
  ~Encryptor();
  Encryptor(const Encryptor&) = delete;
  Encryptor& operator=(const Encryptor&) = delete;

  // Pads plain to PaddedSize(plain.size()) and appends the ciphertext to *out.
  Status Encrypt(std::string_view plain, std::string* out);

  // The padding this stream adds.
  Padding padding() const { return padding_; }

 private:
  struct CtxDeleter {
    void operator()(evp_cipher_ctx_st* ctx) const;
  };
  Encryptor(evp_cipher_ctx_st* ctx, Padding padding) : ctx_(ctx), padding_(padding) {}

  std::unique_ptr<evp_cipher_ctx_st, CtxDeleter> ctx_;
  Padding padding_;
  bool broken_ = false;  // an OpenSSL failure left the stream in an unknown state
};

// The receiving half of one direction's stream.
class Decryptor {
 public:
  // key must be 32 bytes (from DeriveKey), iv 16 bytes; otherwise kMalformed.
  static Expected<std::unique_ptr<Decryptor>> Create(std::string_view key, std::string_view iv,
                                                     Padding padding);
  ~Decryptor();
  Decryptor(const Decryptor&) = delete;
  Decryptor& operator=(const Decryptor&) = delete;

  // cipher.size() must be PaddedSize(plain_size) (else kMalformed, stream untouched); decrypts,
  // checks the plain_size..end padding bytes and appends plain_size bytes to *out. Bad padding
  // (the usual sign of a wrong key) -> kMalformed, *out unchanged, and the stream is then
  // unusable: every later call fails too, as the CBC chaining has already moved on.
  Status Decrypt(std::string_view cipher, size_t plain_size, std::string* out);

  // The padding this stream expects.
  Padding padding() const { return padding_; }

 private:
  struct CtxDeleter {
    void operator()(evp_cipher_ctx_st* ctx) const;
  };
  Decryptor(evp_cipher_ctx_st* ctx, Padding padding) : ctx_(ctx), padding_(padding) {}

  std::unique_ptr<evp_cipher_ctx_st, CtxDeleter> ctx_;
  Padding padding_;
  bool broken_ = false;  // a padding or OpenSSL failure already advanced the stream
};

}  // namespace xr::crypto
