#include "codec/digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <climits>

namespace xr::digest {
namespace {

// The hash behind an "hmac..." digest name, nullptr when not one we support.
const EVP_MD* HmacHash(std::string_view digest) {
  if (digest == "hmac" || digest == "hmac+md5") return EVP_md5();
  if (digest == "hmac+sha1") return EVP_sha1();
  if (digest == "hmac+sha224") return EVP_sha224();
  if (digest == "hmac+sha256") return EVP_sha256();
  if (digest == "hmac+sha384") return EVP_sha384();
  if (digest == "hmac+sha512") return EVP_sha512();
  return nullptr;
}

// HMAC(key, msg).hexdigest(): lower-case hex text.
Expected<std::string> HmacHex(const EVP_MD* md, std::string_view key, std::string_view msg) {
  if (key.size() > INT_MAX) return MakeError(ErrorCode::kTooLarge, "hmac key too long");
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(md, key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &mac_len) == nullptr) {
    return MakeError(ErrorCode::kInternal, "HMAC failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(mac_len * 2);
  for (unsigned int i = 0; i < mac_len; ++i) {
    hex.push_back(kHex[mac[i] >> 4]);
    hex.push_back(kHex[mac[i] & 0xf]);
  }
  OPENSSL_cleanse(mac, sizeof(mac));
  return hex;
}

// a XOR b, b NUL-padded or cut to a's length (net/digest.py gendigest("xor", a, b)).
std::string XorPadded(std::string_view a, std::string_view b) {
  std::string out(a);
  const size_t n = a.size() < b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>(out[i] ^ b[i]);
  return out;
}

}  // namespace

bool IsSupported(std::string_view digest) { return digest == "xor" || HmacHash(digest) != nullptr; }

std::string ChooseDigest(const std::vector<std::string>& client_digests, bool allow_xor) {
  auto offered = [&](std::string_view name) {
    for (const std::string& d : client_digests) {
      if (d == name) return true;
    }
    return false;
  };
  for (const char* name : {"hmac+sha512", "hmac+sha384", "hmac+sha256", "hmac+sha224", "hmac+sha1",
                           "hmac+md5", "hmac"}) {
    if (offered(name)) return name;
  }
  if (allow_xor && offered("xor")) return "xor";
  return "";
}

Expected<std::string> CombineSalts(std::string_view salt_digest, std::string_view client_salt,
                                   std::string_view server_salt) {
  if (!IsSupported(salt_digest)) return MakeError(ErrorCode::kUnsupported, "unsupported salt digest");
  if (client_salt.empty() || server_salt.empty()) {
    return MakeError(ErrorCode::kMalformed, "empty challenge salt");
  }
  if (salt_digest == "xor") return XorPadded(client_salt, server_salt);
  return HmacHex(HmacHash(salt_digest), client_salt, server_salt);
}

Expected<std::string> ComputeResponse(std::string_view digest, std::string_view password,
                                      std::string_view salt) {
  if (!IsSupported(digest)) return MakeError(ErrorCode::kUnsupported, "unsupported digest");
  if (password.empty()) return MakeError(ErrorCode::kMalformed, "empty password");
  if (salt.empty()) return MakeError(ErrorCode::kMalformed, "empty challenge salt");
  if (digest == "xor") return XorPadded(password, salt);
  return HmacHex(HmacHash(digest), password, salt);
}

bool VerifyResponse(std::string_view digest, std::string_view password, std::string_view salt,
                    std::string_view response) {
  if (response.empty()) return false;
  Expected<std::string> expected = ComputeResponse(digest, password, salt);
  if (!expected.ok()) return false;
  const bool equal = ConstantTimeEquals(*expected, response);
  OPENSSL_cleanse(expected->data(), expected->size());
  return equal;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Always compare a.size() bytes: against b when the sizes match, else against a itself, so
  // the time depends on the sizes only; the size check is folded in without a branch on content.
  const bool same_size = a.size() == b.size();
  const char* other = same_size ? b.data() : a.data();
  const int diff = a.empty() ? 0 : CRYPTO_memcmp(a.data(), other, a.size());
  return same_size & (diff == 0);
}

Expected<std::string> RecoverXorPassword(std::string_view response, std::string_view salt) {
  if (response.empty() || salt.empty()) return MakeError(ErrorCode::kMalformed, "empty xor response or salt");
  return XorPadded(response, salt);
}

}  // namespace xr::digest
