// Leg: the send queue's accounting across whole and short sends, failure, the private
// receive buffer, and the plain transport it starts with.
#include "engine/leg.h"

#include <doctest/doctest.h>

#include <string>

using namespace xr;
using namespace xr::engine;

TEST_CASE("directions pair up") {
  CHECK(Other(kClientLeg) == kServerLeg);
  CHECK(Other(kServerLeg) == kClientLeg);
  CHECK(std::string(SideName(kClientLeg)) == "client");
  CHECK(std::string(SideName(kServerLeg)) == "server");
}

TEST_CASE("queued bytes go out in order, a short send leaves the rest pending") {
  Leg leg;
  CHECK(leg.queue_empty());
  CHECK(leg.pending().empty());
  CHECK(leg.Enqueue("hello"));
  CHECK(leg.Enqueue("world!"));
  CHECK(leg.queued() == 11);
  CHECK(leg.pending() == "hello");
  leg.Sent(2);  // short send
  CHECK(leg.pending() == "llo");
  CHECK(leg.queued() == 9);
  CHECK(leg.bytes_out == 2);
  leg.Sent(3);
  CHECK(leg.pending() == "world!");
  leg.Sent(6);
  CHECK(leg.queue_empty());
  CHECK(leg.queued() == 0);
  CHECK(leg.bytes_out == 11);
  CHECK(leg.pending().empty());
}

TEST_CASE("empty strings are not queued") {
  Leg leg;
  CHECK_FALSE(leg.Enqueue(""));
  CHECK(leg.queue_empty());
}

TEST_CASE("a failed leg drops what is queued and takes nothing more") {
  Leg leg;
  REQUIRE(leg.Enqueue("abc"));
  leg.Sent(1);
  leg.Fail();
  CHECK(leg.has(Leg::kFailed));
  CHECK(leg.queue_empty());
  CHECK(leg.queued() == 0);
  CHECK_FALSE(leg.Enqueue("more"));
  CHECK(leg.queued() == 0);
  CHECK_FALSE(leg.readable());
}

TEST_CASE("a leg is readable only with an open socket and no receive in flight") {
  Leg leg;
  CHECK_FALSE(leg.readable());  // no socket yet
  leg.fd.reset(dup(0));
  REQUIRE(leg.fd.valid());
  CHECK(leg.readable());
  leg.set(Leg::kRecvInFlight);
  CHECK_FALSE(leg.readable());
  leg.clear(Leg::kRecvInFlight);
  leg.set(Leg::kEof);
  CHECK_FALSE(leg.readable());
}

TEST_CASE("the private receive buffer is used once, then given up") {
  Leg leg;
  CHECK(leg.private_buffer() == nullptr);
  leg.UsePrivateBuffer();
  REQUIRE(leg.private_buffer() != nullptr);
  auto own = leg.TakePrivateBuffer();
  CHECK(own != nullptr);
  CHECK(leg.private_buffer() == nullptr);
}

TEST_CASE("a new leg's transport is plain: bytes pass unchanged, without a copy") {
  Leg leg;
  REQUIRE(leg.transport != nullptr);
  CHECK(leg.transport->plain());
  CHECK(std::string(leg.transport->name()) == "plain");
  std::string wire("P\x10\x00\x00\x00\x00\x00\x03" "abc", 11);
  std::string scratch;
  auto out = leg.transport->Decode(wire, &scratch);
  REQUIRE(out.ok());
  CHECK(out->data() == wire.data());
  CHECK(*out == wire);
  std::string bytes = "to send";
  CHECK(leg.transport->Encode(&bytes).ok());
  CHECK(bytes == "to send");
  CHECK(leg.transport->TakeOwnOutput().empty());
}
