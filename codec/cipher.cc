#include "codec/cipher.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>

namespace xr::crypto {
namespace {

constexpr size_t kAesBlock = 16;
// EVP takes int lengths: feed it at most this much per call (a multiple of the AES block).
constexpr size_t kMaxUpdate = size_t{1} << 30;

char PadByte(Padding padding, size_t pad_count) {
  return padding == Padding::kLegacy ? ' ' : static_cast<char>(pad_count);
}

Status CheckKeyIv(std::string_view key, std::string_view iv) {
  if (key.size() != kKeySize) {
    return MakeError(ErrorCode::kMalformed, "AES-256 key must be 32 bytes");
  }
  if (iv.size() != kIvSize) {
    return MakeError(ErrorCode::kMalformed, "AES-CBC iv must be 16 bytes");
  }
  return Status::Ok();
}

// Creates an AES-256-CBC context without EVP padding (xpra pads itself).
evp_cipher_ctx_st* NewCbcContext(std::string_view key, std::string_view iv, bool encrypt) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return nullptr;
  const auto* k = reinterpret_cast<const unsigned char*>(key.data());
  const auto* v = reinterpret_cast<const unsigned char*>(iv.data());
  if (EVP_CipherInit_ex(ctx, EVP_aes_256_cbc(), nullptr, k, v, encrypt ? 1 : 0) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

// Runs whole AES blocks of `in` through ctx into `out` (same length, may not overlap).
bool Update(EVP_CIPHER_CTX* ctx, const char* in, size_t n, char* out) {
  while (n > 0) {
    const size_t step = n < kMaxUpdate ? n : kMaxUpdate;
    int produced = 0;
    if (EVP_CipherUpdate(ctx, reinterpret_cast<unsigned char*>(out), &produced,
                         reinterpret_cast<const unsigned char*>(in), static_cast<int>(step)) != 1 ||
        produced != static_cast<int>(step)) {
      return false;
    }
    in += step;
    out += step;
    n -= step;
  }
  return true;
}

}  // namespace

size_t PaddedSize(size_t n) { return n + (kPaddingBlock - n % kPaddingBlock); }

std::string_view PaddingName(Padding padding) {
  return padding == Padding::kLegacy ? "legacy" : "PKCS#7";
}

Expected<Padding> ParsePadding(std::string_view name) {
  if (name == "legacy") return Padding::kLegacy;
  if (name == "PKCS#7") return Padding::kPkcs7;
  return MakeError(ErrorCode::kUnsupported, "unsupported cipher padding");
}

Expected<Padding> ChoosePadding(const std::vector<std::string>& options) {
  for (const std::string& option : options) {
    Expected<Padding> p = ParsePadding(option);
    if (p.ok()) return p;
  }
  return MakeError(ErrorCode::kUnsupported, "no supported cipher padding offered");
}

Expected<std::string> DeriveKey(std::string_view secret, std::string_view salt, int iterations) {
  if (iterations < kMinIterations || iterations > kMaxIterations) {
    return MakeError(ErrorCode::kMalformed, "key stretch iterations outside [100, 10000]");
  }
  return Pbkdf2Hmac(secret, salt, "SHA1", kKeySize, iterations);
}

Expected<std::string> Pbkdf2Hmac(std::string_view secret, std::string_view salt, const char* hash, size_t key_size,
                                 int iterations) {
  if (secret.empty()) {
    return MakeError(ErrorCode::kMalformed, "empty encryption key");
  }
  if (secret.size() > INT_MAX || salt.size() > INT_MAX) {
    return MakeError(ErrorCode::kTooLarge, "encryption key or salt too long");
  }
  const EVP_MD* md = EVP_get_digestbyname(hash);
  if (md == nullptr || iterations < 1 || key_size == 0 || key_size > 64) {
    return MakeError(ErrorCode::kMalformed, "invalid key derivation parameters");
  }
  std::string key(key_size, '\0');
  // A non-null salt pointer even for an empty salt.
  static const char kEmpty[1] = {0};
  const char* salt_ptr = salt.empty() ? kEmpty : salt.data();
  if (PKCS5_PBKDF2_HMAC(secret.data(), static_cast<int>(secret.size()),
                        reinterpret_cast<const unsigned char*>(salt_ptr),
                        static_cast<int>(salt.size()), iterations, md,
                        static_cast<int>(key.size()),
                        reinterpret_cast<unsigned char*>(key.data())) != 1) {
    OPENSSL_cleanse(key.data(), key.size());
    return MakeError(ErrorCode::kInternal, "PBKDF2 failed");
  }
  return key;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  size_t done = 0;
  while (done < n) {
    const size_t step = n - done < kMaxUpdate ? n - done : kMaxUpdate;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data() + done), static_cast<int>(step)) != 1) {
      std::abort();  // no usable RNG: nothing secure can continue
    }
    done += step;
  }
  return out;
}

std::string RandomIv() {
  static constexpr char kHex[] = "0123456789abcdef";
  const std::string raw = RandomBytes(kIvSize / 2);
  std::string iv;
  iv.reserve(kIvSize);
  for (unsigned char c : raw) {
    iv.push_back(kHex[c >> 4]);
    iv.push_back(kHex[c & 0xf]);
  }
  return iv;
}

// ---- Encryptor ----

void Encryptor::CtxDeleter::operator()(evp_cipher_ctx_st* ctx) const { EVP_CIPHER_CTX_free(ctx); }

Encryptor::~Encryptor() = default;

Expected<std::unique_ptr<Encryptor>> Encryptor::Create(std::string_view key, std::string_view iv,
                                                       Padding padding) {
  if (Status s = CheckKeyIv(key, iv); !s.ok()) return s.error();
  evp_cipher_ctx_st* ctx = NewCbcContext(key, iv, /*encrypt=*/true);
  if (ctx == nullptr) return MakeError(ErrorCode::kInternal, "cannot create AES-CBC encryptor");
  return std::unique_ptr<Encryptor>(new Encryptor(ctx, padding));
}

Status Encryptor::Encrypt(std::string_view plain, std::string* out) {
  if (broken_) return MakeError(ErrorCode::kInternal, "AES stream already failed");
  const size_t n = plain.size();
  const size_t padded = PaddedSize(n);
  const size_t head = n - n % kAesBlock;  // whole AES blocks taken straight from plain
  // Tail: the last partial AES block of plain plus 1..32 padding bytes (16..48 bytes).
  char tail[kAesBlock + kPaddingBlock];
  const size_t tail_size = padded - head;
  const size_t pad_count = padded - n;
  std::copy(plain.data() + head, plain.data() + n, tail);
  std::fill(tail + (n - head), tail + tail_size, PadByte(padding_, pad_count));

  const size_t start = out->size();
  out->resize(start + padded);
  char* dst = out->data() + start;
  const bool ok = Update(ctx_.get(), plain.data(), head, dst) &&
                  Update(ctx_.get(), tail, tail_size, dst + head);
  OPENSSL_cleanse(tail, sizeof(tail));
  if (!ok) {
    broken_ = true;
    out->resize(start);
    return MakeError(ErrorCode::kInternal, "AES encryption failed");
  }
  return Status::Ok();
}

// ---- Decryptor ----

void Decryptor::CtxDeleter::operator()(evp_cipher_ctx_st* ctx) const { EVP_CIPHER_CTX_free(ctx); }

Decryptor::~Decryptor() = default;

Expected<std::unique_ptr<Decryptor>> Decryptor::Create(std::string_view key, std::string_view iv,
                                                       Padding padding) {
  if (Status s = CheckKeyIv(key, iv); !s.ok()) return s.error();
  evp_cipher_ctx_st* ctx = NewCbcContext(key, iv, /*encrypt=*/false);
  if (ctx == nullptr) return MakeError(ErrorCode::kInternal, "cannot create AES-CBC decryptor");
  return std::unique_ptr<Decryptor>(new Decryptor(ctx, padding));
}

Status Decryptor::Decrypt(std::string_view cipher, size_t plain_size, std::string* out) {
  if (broken_) return MakeError(ErrorCode::kMalformed, "AES stream already failed");
  if (plain_size > SIZE_MAX - kPaddingBlock || cipher.size() != PaddedSize(plain_size)) {
    return MakeError(ErrorCode::kMalformed, "AES ciphertext size does not match the padded size");
  }
  const size_t start = out->size();
  out->resize(start + cipher.size());
  char* dst = out->data() + start;
  if (!Update(ctx_.get(), cipher.data(), cipher.size(), dst)) {
    broken_ = true;
    OPENSSL_cleanse(dst, cipher.size());
    out->resize(start);
    return MakeError(ErrorCode::kInternal, "AES decryption failed");
  }
  // Like net/protocol.py: the pad is exactly cipher.size() - plain_size bytes of the expected
  // value (the header's size decides the count, not the last byte).
  const size_t pad_count = cipher.size() - plain_size;
  const unsigned char expect = static_cast<unsigned char>(PadByte(padding_, pad_count));
  unsigned char diff = 0;
  for (size_t i = plain_size; i < cipher.size(); ++i) {
    diff |= static_cast<unsigned char>(dst[i]) ^ expect;
  }
  if (diff != 0) {
    broken_ = true;
    OPENSSL_cleanse(dst, cipher.size());
    out->resize(start);
    return MakeError(ErrorCode::kMalformed, "AES padding error - wrong key?");
  }
  out->resize(start + plain_size);
  return Status::Ok();
}

}  // namespace xr::crypto
