#pragma once
// The relay's version, reported in hellos (proxy.version), logs and version requests.

namespace xr {
inline constexpr const char* kRelayVersion = "0.1.0";
}  // namespace xr
