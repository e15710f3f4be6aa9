#pragma once
// Process-wide helpers shared by the relay and the load tools.

#include <cstdint>

namespace xr {

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the soft limit in force
// afterwards (unchanged when raising is refused), or 0 when the limit cannot be read.
uint64_t RaiseFdLimit();

}  // namespace xr
