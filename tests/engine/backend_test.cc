// The io_uring backend through the Backend interface, on socketpairs and loopback: what each
// prepare function promises in engine/backend.h.
#include "engine/uring_backend.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "base/fd.h"

using namespace xr;
using namespace xr::engine;

namespace {

struct Pair {
  UniqueFd a, b;
  Pair() {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
};

struct Fixture {
  UringBackend io;
  Backend& backend = io;
  Fixture() {
    REQUIRE(io.Init(64).ok());
    REQUIRE(backend.Start(8, 4096).ok());
  }
  // Waits until the operation tagged `tag` completed; other completions are kept in `seen`.
  Completion WaitFor(uint64_t tag) {
    for (int rounds = 0; rounds < 1000; ++rounds) {
      for (size_t i = 0; i < seen.size(); ++i) {
        if (seen[i].tag == tag) {
          Completion c = seen[i];
          seen.erase(seen.begin() + static_cast<long>(i));
          return c;
        }
      }
      int rc = backend.Wait();
      REQUIRE((rc == 0 || rc == -EINTR || rc == -ETIME));
      Completion buf[16];
      size_t n = backend.Reap(buf, std::size(buf));
      seen.insert(seen.end(), buf, buf + n);
    }
    FAIL("no completion for tag " << tag);
    return {};
  }
  std::vector<Completion> seen;
};

// A loopback tcp listener with `backlog`; *addr gets its address.
UniqueFd LoopbackListener(int backlog, sockaddr_in* addr, int flags = SOCK_NONBLOCK) {
  UniqueFd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0));
  *addr = sockaddr_in{};
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(listener.get(), reinterpret_cast<sockaddr*>(addr), sizeof *addr) == 0);
  REQUIRE(listen(listener.get(), backlog) == 0);
  socklen_t len = sizeof *addr;
  REQUIRE(getsockname(listener.get(), reinterpret_cast<sockaddr*>(addr), &len) == 0);
  return listener;
}

}  // namespace

TEST_CASE("send on one end, a provided-buffer receive on the other") {
  Fixture f;
  Pair p;
  f.backend.RecvProvided(p.b.get(), 0, 2);
  std::string msg = "hello through the backend";
  f.backend.Send(p.a.get(), msg.data(), msg.size(), 1);
  Completion sent = f.WaitFor(1);
  CHECK(sent.res == static_cast<int>(msg.size()));
  Completion got = f.WaitFor(2);
  REQUIRE(got.res == static_cast<int>(msg.size()));
  REQUIRE(got.buffer >= 0);
  CHECK(std::string(f.backend.buffer(got.buffer), static_cast<size_t>(got.res)) == msg);
  f.backend.Recycle(got.buffer);
}

TEST_CASE("a receive limited to fewer bytes than a buffer reads only those") {
  Fixture f;
  Pair p;
  REQUIRE(write(p.a.get(), "0123456789", 10) == 10);
  f.backend.RecvProvided(p.b.get(), 4, 7);
  Completion got = f.WaitFor(7);
  REQUIRE(got.res == 4);
  CHECK(std::string(f.backend.buffer(got.buffer), 4) == "0123");
  f.backend.Recycle(got.buffer);
}

TEST_CASE("a receive into the caller's buffer, and end of stream") {
  Fixture f;
  Pair p;
  char buf[16];
  REQUIRE(write(p.a.get(), "abc", 3) == 3);
  f.backend.Recv(p.b.get(), buf, sizeof buf, 3);
  Completion got = f.WaitFor(3);
  REQUIRE(got.res == 3);
  CHECK(got.buffer == -1);
  CHECK(std::string(buf, 3) == "abc");
  p.a.reset();
  f.backend.Recv(p.b.get(), buf, sizeof buf, 4);
  CHECK(f.WaitFor(4).res == 0);
}

TEST_CASE("a cancelled receive completes with -ECANCELED, the cancel on its own tag") {
  Fixture f;
  Pair p;
  f.backend.RecvProvided(p.b.get(), 0, 10);
  f.backend.Cancel(10, 11);
  CHECK(f.WaitFor(10).res == -ECANCELED);
  CHECK(f.WaitFor(11).res == 0);
}

TEST_CASE("a timer completes with -ETIME") {
  Fixture f;
  f.backend.Timer(10, 20);
  CHECK(f.WaitFor(20).res == -ETIME);
}

TEST_CASE("poll reports readiness") {
  Fixture f;
  Pair p;
  f.backend.Poll(p.b.get(), POLLIN, 30);
  REQUIRE(write(p.a.get(), "x", 1) == 1);
  Completion c = f.WaitFor(30);
  CHECK((c.res & POLLIN) != 0);
}

TEST_CASE("accept on a listener, connect with a timeout") {
  Fixture f;
  sockaddr_in addr;
  UniqueFd listener = LoopbackListener(8, &addr);
  f.backend.Accept(listener.get(), 40);
  UniqueFd client(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  f.backend.ConnectWithTimeout(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr, 5000, 41, 42);
  CHECK(f.WaitFor(41).res == 0);
  CHECK(f.WaitFor(42).res == -ECANCELED);  // the timeout is withdrawn once the connect is done
  Completion accepted = f.WaitFor(40);
  REQUIRE(accepted.res >= 0);
  CHECK(accepted.more);
  UniqueFd server(accepted.res);
  CHECK((fcntl(server.get(), F_GETFL) & O_NONBLOCK) != 0);
}

TEST_CASE("a connect that does not finish in time fails with -ECANCELED") {
  Fixture f;
  // A listener whose backlog is full leaves further SYNs unanswered: the connect hangs.
  sockaddr_in addr;
  UniqueFd listener = LoopbackListener(0, &addr, 0);
  std::vector<UniqueFd> fill;
  for (int i = 0; i < 4; ++i) {
    fill.emplace_back(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int rc = connect(fill.back().get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    (void)rc;  // EINPROGRESS: these only fill the backlog
  }
  UniqueFd client(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  f.backend.ConnectWithTimeout(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr, 200, 50, 51);
  CHECK(f.WaitFor(50).res == -ECANCELED);
  CHECK(f.WaitFor(51).res == -ETIME);
}

TEST_CASE("linked connects are never split when the submission queue is nearly full") {
  Fixture f;  // 64 entries
  Pair p;
  for (int i = 0; i < 63; ++i) f.backend.Poll(p.b.get(), POLLIN, 100 + static_cast<uint64_t>(i));
  // One entry left: the connect and its timeout must both go into the next submission.
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  UniqueFd tcp(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  f.backend.ConnectWithTimeout(tcp.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr, 5000, 60, 61);
  // Port 0 refuses at once; had the pair been split, the timeout would have no connect to
  // cancel and would complete -EINVAL instead of -ECANCELED.
  CHECK(f.WaitFor(60).res == -ECONNREFUSED);
  CHECK(f.WaitFor(61).res == -ECANCELED);
}

TEST_CASE("splice moves bytes through a pipe without a copy in user space") {
  Fixture f;
  Pair p;
  int pfd[2];
  REQUIRE(pipe2(pfd, O_NONBLOCK | O_CLOEXEC) == 0);
  UniqueFd pr(pfd[0]), pw(pfd[1]);
  CHECK(f.backend.Splice(p.b.get(), pw.get(), 100) == -EAGAIN);  // nothing to read yet
  REQUIRE(write(p.a.get(), "spliced", 7) == 7);
  CHECK(f.backend.Splice(p.b.get(), pw.get(), 100) == 7);
  char buf[16];
  REQUIRE(read(pr.get(), buf, sizeof buf) == 7);
  CHECK(std::string(buf, 7) == "spliced");
}
