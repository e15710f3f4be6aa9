// Fuzz target: a 6.x AES receiver fed arbitrary frames (sizes, IVs, padding) must never crash,
// never append on failure, and whatever an Encryptor of the same parameters sends must come back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "codec/cipher6.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  using namespace xr::crypto6;
  const Framing f{(data[0] & 1) ? Mode::kCtr : Mode::kCbc, false, (data[0] & 2) != 0};
  const size_t header_size = data[1];
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  static const std::string kKey(32, 'k');
  static const std::string kIv = "0123456789abcdef";
  auto dec = Decryptor::Create(kKey, kIv, f);
  if (!dec.ok()) std::abort();
  std::string out;
  if (!(*dec)->Decrypt(rest, header_size, &out).ok() && !out.empty()) std::abort();
  auto enc = Encryptor::Create(kKey, kIv, f);
  auto dec2 = Decryptor::Create(kKey, kIv, f);
  if (!enc.ok() || !dec2.ok()) std::abort();
  std::string wire, back;
  uint32_t hs = 0;
  if (!(*enc)->Encrypt(rest, &wire, &hs).ok()) std::abort();
  if (wire.size() != WireSize(f, hs)) std::abort();
  if (!(*dec2)->Decrypt(wire, hs, &back).ok() || back != rest) std::abort();
  return 0;
}
