// Fuzzes the TLS 1.3 record layer's Open: never crashes, gives the same plaintext and verdict
// whatever the read boundaries, holds at most one record's bytes, and whatever it seals its
// mirror (the client's side) opens back unchanged.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engine/tls_record.h"

namespace {

using xr::tls::Aead;
using xr::tls::Tls13Records;

std::unique_ptr<Tls13Records> Make(Aead aead, bool mirror) {
  const std::string c(48, '\x11'), s(48, '\x22');
  const size_t n = aead == Aead::kAes256Gcm ? 48 : 32;
  auto r = mirror ? Tls13Records::Create(aead, s.substr(0, n), c.substr(0, n), 0)
                  : Tls13Records::Create(aead, c.substr(0, n), s.substr(0, n), 0);
  if (!r.ok()) std::abort();
  return std::move(*r);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Aead aead = static_cast<Aead>(data[0] % 3);
  const size_t step = 1 + (data[0] >> 2);
  const std::string_view wire(reinterpret_cast<const char*>(data) + 1, size - 1);

  auto whole = Make(aead, false);
  std::string plain_whole, out_whole;
  const bool ok_whole = whole->Open(wire, &plain_whole, &out_whole).ok();

  auto pieces = Make(aead, false);
  std::string plain_pieces, out_pieces;
  bool ok_pieces = true;
  for (size_t at = 0; at < wire.size() && ok_pieces; at += step) {
    ok_pieces = pieces->Open(wire.substr(at, step), &plain_pieces, &out_pieces).ok();
    if (pieces->buffered() > 5 + Tls13Records::kMaxCiphertext) std::abort();
  }
  if (ok_whole != ok_pieces || plain_whole != plain_pieces || whole->peer_closed() != pieces->peer_closed()) std::abort();

  // What the server seals, the client opens.
  auto mirror = Make(aead, true);
  std::string sealed, back, unused;
  auto server = Make(aead, false);
  if (!server->Seal(wire, &sealed).ok()) std::abort();
  if (!mirror->Open(sealed, &back, &unused).ok() || back != wire) std::abort();
  return 0;
}
