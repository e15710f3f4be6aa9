#include "codec/cipher6.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <climits>
#include <cstring>

#include "codec/cipher.h"

namespace xr::crypto6 {
namespace {

constexpr size_t kCbcBlock = 16;  // net/crypto.py get_block_size(): 16 for CBC when BACKWARDS_COMPATIBLE

const EVP_CIPHER* CipherFor(Mode m, size_t key_size) {
  switch (key_size) {
    case 16: return m == Mode::kCbc ? EVP_aes_128_cbc() : EVP_aes_128_ctr();
    case 24: return m == Mode::kCbc ? EVP_aes_192_cbc() : EVP_aes_192_ctr();
    case 32: return m == Mode::kCbc ? EVP_aes_256_cbc() : EVP_aes_256_ctr();
    default: return nullptr;
  }
}

Status CheckKey(std::string_view key) {
  if (key.size() != 16 && key.size() != 24 && key.size() != 32) {
    return MakeError(ErrorCode::kMalformed, "AES key must be 16, 24 or 32 bytes");
  }
  return Status::Ok();
}

// An AES context for (mode, key, iv) without EVP padding (xpra pads itself); null on failure.
evp_cipher_ctx_st* NewContext(Mode m, std::string_view key, std::string_view iv, bool encrypt) {
  if (iv.size() != kIvSize) return nullptr;
  const EVP_CIPHER* cipher = CipherFor(m, key.size());
  if (cipher == nullptr) return nullptr;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return nullptr;
  if (EVP_CipherInit_ex(ctx, cipher, nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                        reinterpret_cast<const unsigned char*>(iv.data()), encrypt ? 1 : 0) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

// Runs `in` through ctx into `out` (same length: CBC gets whole blocks, CTR any length).
bool Update(EVP_CIPHER_CTX* ctx, std::string_view in, char* out) {
  constexpr size_t kMaxStep = size_t{1} << 30;  // EVP takes int lengths; a multiple of the block
  while (!in.empty()) {
    const size_t step = in.size() < kMaxStep ? in.size() : kMaxStep;
    int produced = 0;
    if (EVP_CipherUpdate(ctx, reinterpret_cast<unsigned char*>(out), &produced,
                         reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(step)) != 1 ||
        produced != static_cast<int>(step)) {
      return false;
    }
    in.remove_prefix(step);
    out += step;
  }
  return true;
}

// Checks the key; with f.stream, the direction's one context from iv (the caller owns it), else null.
Expected<evp_cipher_ctx_st*> StreamContext(std::string_view key, std::string_view iv, const Framing& f, bool encrypt) {
  if (Status s = CheckKey(key); !s.ok()) return s.error();
  if (!f.stream) return static_cast<evp_cipher_ctx_st*>(nullptr);
  evp_cipher_ctx_st* ctx = NewContext(f.mode, key, iv, encrypt);
  if (ctx == nullptr) return MakeError(ErrorCode::kMalformed, "cannot set up AES: the iv must be 16 bytes");
  return ctx;
}

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using OwnedCtx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

}  // namespace

Expected<Mode> ParseMode(std::string_view name) {
  if (name == "CBC") return Mode::kCbc;
  if (name == "CTR") return Mode::kCtr;
  std::string shown(name.substr(0, 16));
  for (char& c : shown) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return MakeError(ErrorCode::kUnsupported, "unsupported AES mode '" + shown + "': the relay speaks CBC and CTR");
}

const char* ModeName(Mode m) { return m == Mode::kCbc ? "CBC" : "CTR"; }

Expected<KeyHash> ParseKeyHash(std::string_view name) {
  std::string up(name.substr(0, 8));
  for (char& c : up) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  if (name.size() <= 8) {
    if (up == "SHA1") return KeyHash::kSha1;
    if (up == "SHA224") return KeyHash::kSha224;
    if (up == "SHA256") return KeyHash::kSha256;
    if (up == "SHA384") return KeyHash::kSha384;
    if (up == "SHA512") return KeyHash::kSha512;
  }
  return MakeError(ErrorCode::kUnsupported, "unsupported key hash: the relay speaks SHA1, SHA224, SHA256, SHA384, SHA512");
}

const char* KeyHashName(KeyHash h) {
  switch (h) {
    case KeyHash::kSha1: return "SHA1";
    case KeyHash::kSha224: return "SHA224";
    case KeyHash::kSha256: return "SHA256";
    case KeyHash::kSha384: return "SHA384";
    case KeyHash::kSha512: return "SHA512";
  }
  return "SHA1";
}

Expected<std::string> DeriveKey(std::string_view secret, std::string_view salt, KeyHash hash, size_t key_size,
                                int iterations) {
  if (iterations < kMinIterations || iterations > kMaxIterations) {
    return MakeError(ErrorCode::kMalformed, "key stretch iterations outside [1000, 1000000]");
  }
  if (key_size != 16 && key_size != 24 && key_size != 32) {
    return MakeError(ErrorCode::kMalformed, "key size must be 16, 24 or 32");
  }
  return crypto::Pbkdf2Hmac(secret, salt, KeyHashName(hash), key_size, iterations);
}

size_t PaddingSize(const Framing& f, size_t header_size) {
  if (f.mode == Mode::kCtr) return 0;
  return kCbcBlock - header_size % kCbcBlock;  // 1..16: never 0, so always-pad adds nothing
}

size_t WireSize(const Framing& f, size_t header_size) { return header_size + PaddingSize(f, header_size); }

size_t CipherBlock(const Framing& f) { return f.mode == Mode::kCtr ? 0 : kCbcBlock; }

Expected<Params> ParseParams(const Value& hello) {
  const Caps caps(hello);
  const Value* dict = caps.get("encryption");
  if (dict == nullptr || !dict->is_dict()) return MakeError(ErrorCode::kMalformed, "no encryption dict");
  const Caps c(*dict);
  Params p;
  // 6.x sends "AES" with the mode apart; "AES-CTR" in the cipher is read as xpra's get_mode() does.
  std::string cipher = c.get_string("cipher");
  std::string mode_name = c.get_string("mode");
  if (size_t dash = cipher.find('-'); dash != std::string::npos) {
    if (mode_name.empty()) mode_name = cipher.substr(dash + 1);
    cipher.resize(dash);
  }
  for (char& ch : cipher) ch = static_cast<char>(ch >= 'a' && ch <= 'z' ? ch - 'a' + 'A' : ch);
  if (cipher != "AES") return MakeError(ErrorCode::kUnsupported, "unsupported cipher: the relay speaks AES");
  for (char& ch : mode_name) ch = static_cast<char>(ch >= 'a' && ch <= 'z' ? ch - 'a' + 'A' : ch);
  auto mode = ParseMode(mode_name.empty() ? "CBC" : mode_name);
  if (!mode.ok()) return mode.error();
  p.mode = *mode;
  if (c.get_string("key_stretch", "PBKDF2") != "PBKDF2") {
    return MakeError(ErrorCode::kUnsupported, "unsupported key stretching: the relay speaks PBKDF2");
  }
  if (c.get_string("padding", "PKCS#7") != "PKCS#7") {
    return MakeError(ErrorCode::kUnsupported, "unsupported padding: the relay speaks PKCS#7");
  }
  auto hash = ParseKeyHash(c.get_string("key_hash", "SHA1"));
  if (!hash.ok()) return hash.error();
  p.key_hash = *hash;
  const int64_t key_size = c.get_int("key_size", 32);
  if (key_size != 16 && key_size != 24 && key_size != 32) {
    return MakeError(ErrorCode::kMalformed, "invalid key_size: 16, 24 or 32 bytes");
  }
  p.key_size = static_cast<size_t>(key_size);
  const int64_t iterations = c.get_int("key_stretch_iterations");
  if (iterations < kMinIterations || iterations > kMaxIterations) {
    return MakeError(ErrorCode::kMalformed, "key_stretch_iterations outside [1000, 1000000]");
  }
  p.iterations = static_cast<int>(iterations);
  const Value* iv = c.get_scalar("iv");
  if (iv == nullptr || !iv->is_string() || iv->as_string().empty()) return MakeError(ErrorCode::kMalformed, "missing iv");
  if (iv->as_string().size() != kIvSize) return MakeError(ErrorCode::kMalformed, "the iv must be 16 bytes");
  p.iv = iv->as_string();
  const Value* salt = c.get_scalar("key_salt");
  if (salt == nullptr || !salt->is_string() || salt->as_string().empty()) {
    return MakeError(ErrorCode::kMalformed, "missing key_salt");
  }
  if (salt->as_string().size() < kMinSaltBytes || salt->as_string().size() > kMaxSaltBytes) {
    return MakeError(ErrorCode::kMalformed, "key_salt outside [16, 1024] bytes");
  }
  p.key_salt = salt->as_string();
  p.framing = Framing{p.mode, c.get_bool("always-pad", false), c.get_bool("stream", true)};
  return p;
}

Params NewParams(const Params& peer) {
  Params p;
  p.mode = peer.mode;
  p.framing = peer.framing;
  // get_iv(): 16 url-safe characters; hex ones are a subset.
  p.iv = crypto::RandomIv();
  p.key_salt = crypto::RandomBytes(kOwnSaltBytes);
  return p;
}

Value ParamsDict(const Params& p) {
  Value d{Dict{}};
  d.set("cipher", "AES");
  d.set("mode", ModeName(p.mode));
  d.set("mode.options", List{Value("CBC"), Value("CTR")});
  d.set("iv", std::string_view(p.iv));
  d.set("key_salt", Value::bytes(p.key_salt));
  d.set("key_hash", KeyHashName(p.key_hash));
  d.set("key_size", static_cast<int64_t>(p.key_size));
  d.set("key_stretch", "PBKDF2");
  d.set("key_stretch.options", List{Value("PBKDF2")});
  d.set("key_stretch_iterations", static_cast<int64_t>(p.iterations));
  d.set("stream", p.framing.stream);
  d.set("always-pad", p.framing.always_pad);
  d.set("padding", "PKCS#7");
  d.set("padding.options", List{Value("PKCS#7")});
  return d;
}

// ---- Encryptor ----

void Encryptor::CtxDeleter::operator()(evp_cipher_ctx_st* ctx) const { EVP_CIPHER_CTX_free(ctx); }
Encryptor::~Encryptor() { OPENSSL_cleanse(key_.data(), key_.size()); }

Expected<std::unique_ptr<Encryptor>> Encryptor::Create(std::string_view key, std::string_view iv, Framing f) {
  auto ctx = StreamContext(key, iv, f, true);
  if (!ctx.ok()) return ctx.error();
  return std::unique_ptr<Encryptor>(new Encryptor(std::string(key), f, *ctx));
}

Status Encryptor::Encrypt(std::string_view plain, std::string* out, uint32_t* header_size) {
  return EncryptWithIv(plain, framing_.stream ? std::string() : crypto::RandomBytes(kIvSize), out, header_size);
}

Status Encryptor::EncryptWithIv(std::string_view plain, std::string_view packet_iv, std::string* out,
                                uint32_t* header_size) {
  if (broken_) return MakeError(ErrorCode::kInternal, "AES stream failed earlier");
  const size_t iv_size = framing_.stream ? 0 : kIvSize;
  if (plain.size() > UINT32_MAX - iv_size - kCbcBlock) return MakeError(ErrorCode::kTooLarge, "packet too large to encrypt");
  const size_t hsize = plain.size() + iv_size;
  const size_t pad = PaddingSize(framing_, hsize);
  // Straight from `plain` into *out, without a padded copy: the whole blocks first, then the
  // last one (the plain tail and the padding, 16 bytes with CBC; CTR has no padding).
  const size_t whole = pad == 0 ? plain.size() : plain.size() - plain.size() % kCbcBlock;
  const size_t tail = plain.size() - whole;  // < 16
  char last[2 * kCbcBlock];
  const size_t last_size = tail + pad;
  std::memcpy(last, plain.data() + whole, tail);
  std::memset(last + tail, static_cast<int>(pad), pad);
  const size_t start = out->size();
  OwnedCtx packet_ctx;
  EVP_CIPHER_CTX* ctx = ctx_.get();
  if (!framing_.stream) {
    packet_ctx.reset(NewContext(framing_.mode, key_, packet_iv, true));
    if (!packet_ctx) return MakeError(ErrorCode::kMalformed, "per-packet AES iv must be 16 bytes");
    ctx = packet_ctx.get();
    out->append(packet_iv);
  }
  const size_t at = out->size();
  out->resize(at + whole + last_size);
  if (!Update(ctx, plain.substr(0, whole), out->data() + at) ||
      !Update(ctx, std::string_view(last, last_size), out->data() + at + whole)) {
    out->resize(start);
    if (framing_.stream) broken_ = true;
    return MakeError(ErrorCode::kInternal, "AES encryption failed");
  }
  OPENSSL_cleanse(last, sizeof(last));
  *header_size = static_cast<uint32_t>(hsize);
  return Status::Ok();
}

// ---- Decryptor ----

void Decryptor::CtxDeleter::operator()(evp_cipher_ctx_st* ctx) const { EVP_CIPHER_CTX_free(ctx); }
Decryptor::~Decryptor() { OPENSSL_cleanse(key_.data(), key_.size()); }

Expected<std::unique_ptr<Decryptor>> Decryptor::Create(std::string_view key, std::string_view iv, Framing f) {
  auto ctx = StreamContext(key, iv, f, false);
  if (!ctx.ok()) return ctx.error();
  return std::unique_ptr<Decryptor>(new Decryptor(std::string(key), f, *ctx));
}

Status Decryptor::Decrypt(std::string_view wire, size_t header_size, std::string* out) {
  if (broken_) return MakeError(ErrorCode::kMalformed, "AES stream failed earlier");
  if (wire.size() != WireSize(framing_, header_size)) {
    return MakeError(ErrorCode::kMalformed, "encrypted frame size does not match its header");
  }
  if (!framing_.stream && header_size < kIvSize) {
    return MakeError(ErrorCode::kMalformed, "encrypted frame shorter than its iv");
  }
  const size_t pad = PaddingSize(framing_, header_size);
  OwnedCtx packet_ctx;
  EVP_CIPHER_CTX* ctx = ctx_.get();
  if (!framing_.stream) {
    packet_ctx.reset(NewContext(framing_.mode, key_, wire.substr(0, kIvSize), false));
    if (!packet_ctx) return MakeError(ErrorCode::kInternal, "cannot set up AES");
    ctx = packet_ctx.get();
    wire.remove_prefix(kIvSize);
  }
  // Decrypted straight into *out; the padding is checked there and cut off (or all of it
  // wiped and removed when it is wrong).
  const size_t start = out->size();
  out->resize(start + wire.size());
  char* data = out->data() + start;
  if (!Update(ctx, wire, data)) {
    OPENSSL_cleanse(data, wire.size());
    out->resize(start);
    if (framing_.stream) broken_ = true;
    return MakeError(ErrorCode::kMalformed, "AES decryption failed");
  }
  bool pad_ok = wire.size() >= pad;
  for (size_t i = wire.size() - (pad_ok ? pad : 0); pad_ok && i < wire.size(); ++i) {
    pad_ok = static_cast<unsigned char>(data[i]) == pad;
  }
  if (!pad_ok) {
    OPENSSL_cleanse(data, wire.size());
    out->resize(start);
    if (framing_.stream) broken_ = true;
    return MakeError(ErrorCode::kMalformed, "invalid padding (wrong key?)");
  }
  out->resize(start + wire.size() - pad);
  return Status::Ok();
}

}  // namespace xr::crypto6
