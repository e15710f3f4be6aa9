#pragma once
// AES as xpra 6.x speaks it (6.5.3: net/crypto.py, net/protocol/socket_handler.py set_cipher_in/
// set_cipher_out, encrypt, decrypt). One direction of a connection is described by the peer's
// "encryption" dict: mode CBC or CTR, iv (16 characters), key_salt, key_hash (SHA1..SHA512),
// key_size, key_stretch PBKDF2 with key_stretch_iterations (6.2+: 1,000..1,000,000, default
// 10,000), padding PKCS#7, always-pad, stream.
//   key    = PBKDF2-HMAC-<key_hash>(secret, key_salt, iterations, key_size)
//   block  = 16 for CBC (BACKWARDS_COMPATIBLE, the default), 0 for CTR (no padding)
//   pad    = block - n % block bytes of value pad (1..16 with CBC: a full block when n is a
//            multiple), none with CTR; always-pad changes nothing that formula leaves
//   stream = true: one continuous cipher per direction from `iv` (6.x's default);
//            false: each frame is a fresh 16-byte random IV followed by the frame encrypted
//            under it; the header's size then counts the IV too.
// The frame header keeps the unpadded size (IV included); the receiver reads WireSize() bytes.
// The 3.1 form (one CBC stream, 32-byte padding) is codec/cipher.h. See docs/protocol-notes.md.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "codec/value.h"

struct evp_cipher_ctx_st;  // OpenSSL's EVP_CIPHER_CTX, kept out of this header

namespace xr::crypto6 {

enum class Mode { kCbc, kCtr };
enum class KeyHash { kSha1, kSha224, kSha256, kSha384, kSha512 };

constexpr int kMinIterations = 1000;      // net/crypto.py MIN_ITERATIONS (6.2+)
constexpr int kMaxIterations = 1000000;   // net/crypto.py MAX_ITERATIONS
constexpr int kDefaultIterations = 10000; // net/crypto.py DEFAULT_ITERATIONS
constexpr size_t kIvSize = 16;

// "CBC" / "CTR" (upper case, as 6.x sends them); anything else (GCM, CFB, ...) -> kUnsupported
// "unsupported AES mode X: the relay speaks CBC and CTR".
Expected<Mode> ParseMode(std::string_view name);
const char* ModeName(Mode m);

// "SHA1", "SHA224", "SHA256", "SHA384", "SHA512" (any case, as 6.x's key_hash.upper());
// else kUnsupported.
Expected<KeyHash> ParseKeyHash(std::string_view name);
const char* KeyHashName(KeyHash h);

// PBKDF2-HMAC-<hash> -> key_size bytes (16, 24 or 32: AES-128/192/256). Iterations outside
// [kMinIterations, kMaxIterations], another key size or an empty secret -> kMalformed.
// Costs `iterations` HMACs: the relay runs it on its worker pool, never on a reactor.
Expected<std::string> DeriveKey(std::string_view secret, std::string_view salt, KeyHash hash, size_t key_size,
                                int iterations);

// How one direction frames its encrypted payloads.
struct Framing {
  Mode mode = Mode::kCbc;
  bool always_pad = false;
  bool stream = true;
};

// Padding bytes a frame whose header says `header_size` carries (6.x's formula).
size_t PaddingSize(const Framing& f, size_t header_size);

// Bytes after the header: header_size + PaddingSize().
size_t WireSize(const Framing& f, size_t header_size);

// Bytes after the header of an encrypted frame of `header_size` as a frame reader must count
// them: the padding block of the framing (16 for CBC, 0 for CTR: unpadded), for
// FrameTracker::set_cipher_block.
size_t CipherBlock(const Framing& f);

// Bounds on what a peer's "encryption" dict may hold (the relay's, not 6.x's: 6.x's get_salt()
// makes 32..1023 bytes, 64 by default).
constexpr size_t kMinSaltBytes = 16;
constexpr size_t kMaxSaltBytes = 1024;
constexpr size_t kOwnSaltBytes = 64;  // 6.x DEFAULT_SALT_LENGTH

// One direction's parameters as a 6.x peer's "encryption" dict states them (6.5.3
// client/base/aes.py get_cipher_caps, net/crypto.py new_cipher_caps): the sender of the dict
// receives with them, so its peer encrypts with them.
struct Params {
  Mode mode = Mode::kCbc;
  std::string iv;        // 16 bytes (6.x: 16 url-safe characters)
  std::string key_salt;  // kMinSaltBytes..kMaxSaltBytes
  KeyHash key_hash = KeyHash::kSha1;
  size_t key_size = 32;  // 16, 24 or 32
  int iterations = kDefaultIterations;
  Framing framing;       // mode, always-pad, stream
};

// Reads and checks the "encryption" dict of `hello` (a 6.x hello's capabilities) as 6.5.3's
// server does (defaults: mode CBC, key_hash SHA1, key_size 32, key_stretch PBKDF2, padding
// PKCS#7, always-pad false, stream true), each refusal with its own message:
//   kUnsupported: cipher other than AES ("AES-CBC" style names are split), mode other than
//     CBC/CTR (GCM: 6.5.3 no longer offers it), key_stretch other than PBKDF2, padding other
//     than PKCS#7, an unknown key_hash;
//   kMalformed: no dict, iterations outside [1,000, 1,000,000], iv missing or not 16 bytes,
//     key_salt missing or outside [16, 1024] bytes, key_size not 16/24/32.
Expected<Params> ParseParams(const Value& hello);

// The relay's own receive parameters answering a peer that sent `peer` (6.x new_cipher_caps:
// the same mode, always-pad and stream; a fresh iv and 64-byte salt, SHA1, 32-byte key,
// 10,000 iterations).
Params NewParams(const Params& peer);

// The "encryption" dict announcing `p` (new_cipher_caps' keys, read by 6.x's
// set_server_encryption).
Value ParamsDict(const Params& p);

// The sending half of one direction. Not thread-safe.
class Encryptor {
 public:
  // key 16/24/32 bytes (DeriveKey), iv 16 bytes (used when f.stream); otherwise kMalformed.
  static Expected<std::unique_ptr<Encryptor>> Create(std::string_view key, std::string_view iv, Framing f);
  ~Encryptor();
  Encryptor(const Encryptor&) = delete;
  Encryptor& operator=(const Encryptor&) = delete;

  // Appends the WireSize(*header_size) bytes of `plain` encrypted to *out and sets *header_size
  // (the size the frame header carries); `plain` must not lie in *out. Per-packet IVs come from
  // RAND_bytes.
  Status Encrypt(std::string_view plain, std::string* out, uint32_t* header_size);

  // As Encrypt() with a given per-packet IV (16 bytes; ignored for a stream). For golden tests.
  Status EncryptWithIv(std::string_view plain, std::string_view packet_iv, std::string* out, uint32_t* header_size);

  const Framing& framing() const { return framing_; }

 private:
  struct CtxDeleter {
    void operator()(evp_cipher_ctx_st* ctx) const;
  };
  Encryptor(std::string key, Framing f, evp_cipher_ctx_st* ctx) : key_(std::move(key)), framing_(f), ctx_(ctx) {}

  std::string key_;
  Framing framing_;
  std::unique_ptr<evp_cipher_ctx_st, CtxDeleter> ctx_;  // the stream's; null without stream
  bool broken_ = false;                                // an OpenSSL failure left the stream unknown
};

// The receiving half of one direction. Not thread-safe.
class Decryptor {
 public:
  static Expected<std::unique_ptr<Decryptor>> Create(std::string_view key, std::string_view iv, Framing f);
  ~Decryptor();
  Decryptor(const Decryptor&) = delete;
  Decryptor& operator=(const Decryptor&) = delete;

  // wire.size() must be WireSize(header_size) and, without stream, header_size >= 16 (else
  // kMalformed, nothing consumed); decrypts, checks the PKCS#7 padding and appends the plain
  // payload to *out. Bad padding (the usual sign of a wrong key) -> kMalformed "invalid padding
  // (wrong key?)", *out unchanged; a stream is then unusable (every later call fails too).
  Status Decrypt(std::string_view wire, size_t header_size, std::string* out);

  const Framing& framing() const { return framing_; }

 private:
  struct CtxDeleter {
    void operator()(evp_cipher_ctx_st* ctx) const;
  };
  Decryptor(std::string key, Framing f, evp_cipher_ctx_st* ctx) : key_(std::move(key)), framing_(f), ctx_(ctx) {}

  std::string key_;
  Framing framing_;
  std::unique_ptr<evp_cipher_ctx_st, CtxDeleter> ctx_;
  bool broken_ = false;
};

}  // namespace xr::crypto6
