#pragma once
// The I/O backends a test runs against, each case once per backend:
//   TEST_CASE_TEMPLATE("...", B, Uring, Epoll) { auto io = B::Make(); ... }

#include <doctest/doctest.h>

#include <memory>

#include "engine/epoll_backend.h"
#include "engine/uring_backend.h"

namespace xr::engine::testing {

// io_uring with a 64-entry ring.
struct Uring {
  static std::unique_ptr<Backend> Make() {
    auto b = std::make_unique<UringBackend>();
    REQUIRE(b->Init(64).ok());
    return b;
  }
};

struct Epoll {
  static std::unique_ptr<Backend> Make() {
    auto b = std::make_unique<EpollBackend>();
    REQUIRE(b->Init().ok());
    return b;
  }
};

}  // namespace xr::engine::testing
