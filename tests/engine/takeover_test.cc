// The takeover wire (engine/takeover.h): listening sockets passed with SCM_RIGHTS over a unix
// stream socket, one record each, and every way the exchange can go wrong ending in an error
// that says what happened, with no descriptor leaked.
#include "engine/takeover.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "base/fd.h"

using namespace xr;
using namespace xr::engine;

namespace {

struct Pair {
  UniqueFd a, b;
  Pair() {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
};

UniqueFd Listener(uint16_t* port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(fd.get(), 16) == 0);
  socklen_t len = sizeof a;
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

uint16_t PortOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

int OpenFds() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

void SendRaw(int fd, const std::string& text, int attach) {
  std::string rec(takeover::kRecordSize, '\0');
  std::memcpy(rec.data(), text.data(), text.size());
  iovec iov{rec.data(), rec.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {0};
  if (attach >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &attach, sizeof attach);
  }
  REQUIRE(sendmsg(fd, &msg, 0) == static_cast<ssize_t>(rec.size()));
}

}  // namespace

TEST_CASE("listening sockets arrive with their ids, and the received ones accept") {
  uint16_t p1 = 0, p2 = 0;
  UniqueFd l1 = Listener(&p1), l2 = Listener(&p2);
  Pair pair;
  std::thread sender([&] {
    CHECK(takeover::SendSockets(pair.a.get(), {{"tcp:127.0.0.1:1", l1.get()}, {"tcp:127.0.0.1:1", l1.get()},
                                               {"control:/run/x", l2.get()}})
              .ok());
  });
  auto got = takeover::ReceiveSockets(pair.b.get());
  sender.join();
  REQUIRE(got.ok());
  REQUIRE(got->size() == 3);
  CHECK((*got)[0].id == "tcp:127.0.0.1:1");
  CHECK((*got)[1].id == "tcp:127.0.0.1:1");
  CHECK((*got)[2].id == "control:/run/x");
  CHECK(PortOf((*got)[0].fd.get()) == p1);
  CHECK(PortOf((*got)[2].fd.get()) == p2);
  CHECK((fcntl((*got)[0].fd.get(), F_GETFD) & FD_CLOEXEC) != 0);
  // The same socket: a connection queued before the sender closes its copy is accepted by the receiver.
  UniqueFd client(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(p1);
  REQUIRE(connect(client.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  l1.reset();
  UniqueFd accepted(accept4((*got)[1].fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  CHECK(accepted.valid());
}

TEST_CASE("a refusal carries its reason") {
  Pair pair;
  REQUIRE(takeover::SendRefusal(pair.a.get(), "another takeover is under way").ok());
  auto got = takeover::ReceiveSockets(pair.b.get());
  REQUIRE(!got.ok());
  CHECK(got.error().message == "the running relay refused the takeover: another takeover is under way");
}

TEST_CASE("the end record must count the sockets sent") {
  uint16_t p = 0;
  UniqueFd l = Listener(&p);
  Pair pair;
  int before = OpenFds();
  SendRaw(pair.a.get(), "L tcp:x\n", l.get());
  SendRaw(pair.a.get(), "E 2\n", -1);
  auto got = takeover::ReceiveSockets(pair.b.get());
  REQUIRE(!got.ok());
  CHECK(got.error().message.find("2 sockets announced, 1 received") != std::string::npos);
  CHECK(OpenFds() == before);  // the received socket was closed with the error
}

TEST_CASE("a socket record without its socket is refused") {
  Pair pair;
  SendRaw(pair.a.get(), "L tcp:x\n", -1);
  auto got = takeover::ReceiveSockets(pair.b.get());
  REQUIRE(!got.ok());
  CHECK(got.error().message.find("without its socket") != std::string::npos);
}

TEST_CASE("a malformed record is refused") {
  Pair pair;
  SendRaw(pair.a.get(), "garbage", -1);
  auto got = takeover::ReceiveSockets(pair.b.get());
  REQUIRE(!got.ok());
  CHECK(got.error().message.find("malformed") != std::string::npos);
}

TEST_CASE("a connection closed mid-exchange is an error, not a hang") {
  Pair pair;
  uint16_t p = 0;
  UniqueFd l = Listener(&p);
  SendRaw(pair.a.get(), "L tcp:x\n", l.get());
  pair.a.reset();
  int before = OpenFds();
  auto got = takeover::ReceiveSockets(pair.b.get());
  REQUIRE(!got.ok());
  CHECK(got.error().message == "the running relay closed the connection");
  CHECK(OpenFds() == before);
}

TEST_CASE("a record split across reads still carries its socket") {
  uint16_t p = 0;
  UniqueFd l = Listener(&p);
  Pair pair;
  std::string rec(takeover::kRecordSize, '\0');
  std::memcpy(rec.data(), "L tcp:y\n", 8);
  std::thread sender([&] {
    // The first 100 bytes with the socket, the rest later.
    iovec iov{rec.data(), 100};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {0};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    int fd = l.get();
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    REQUIRE(sendmsg(pair.a.get(), &msg, 0) == 100);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    REQUIRE(send(pair.a.get(), rec.data() + 100, rec.size() - 100, 0) == static_cast<ssize_t>(rec.size() - 100));
    SendRaw(pair.a.get(), "E 1\n", -1);
  });
  auto got = takeover::ReceiveSockets(pair.b.get());
  sender.join();
  REQUIRE(got.ok());
  REQUIRE(got->size() == 1);
  CHECK((*got)[0].id == "tcp:y");
  CHECK(PortOf((*got)[0].fd.get()) == p);
}

TEST_CASE("asking a socket nobody listens on fails readably") {
  UniqueFd conn;
  auto got = takeover::RequestSockets("/nonexistent/xpra-relay-control", &conn);
  REQUIRE(!got.ok());
  CHECK(got.error().message.find("cannot reach the running relay at /nonexistent/xpra-relay-control") !=
        std::string::npos);
}
