// Both I/O backends (io_uring and epoll) through the Backend interface, on socketpairs and
// loopback: what each prepare function promises in engine/backend.h. Every case runs on both.

#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "base/fd.h"
#include "tests/engine/backends.h"

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

using testing::Epoll;
using testing::Uring;

#define BACKEND_TEST(name) TEST_CASE_TEMPLATE(name, B, Uring, Epoll)

// 8 provided buffers of 4 KiB.
template <typename B>
struct Fixture {
  std::unique_ptr<Backend> io = B::Make();
  Backend& backend = *io;
  Fixture() { REQUIRE(backend.Start(8, 4096).ok()); }
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

// A loopback listener whose backlog is full (`fill` holds the connects that fill it): further
// SYNs go unanswered, so a connect to *addr hangs.
UniqueFd FullListener(sockaddr_in* addr, std::vector<UniqueFd>* fill) {
  UniqueFd listener = LoopbackListener(0, addr, 0);
  for (int i = 0; i < 4; ++i) {
    fill->emplace_back(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int rc = connect(fill->back().get(), reinterpret_cast<sockaddr*>(addr), sizeof *addr);
    (void)rc;  // EINPROGRESS: these only fill the backlog
  }
  return listener;
}

}  // namespace

BACKEND_TEST("send on one end, a provided-buffer receive on the other") {
  Fixture<B> f;
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

BACKEND_TEST("a receive limited to fewer bytes than a buffer reads only those") {
  Fixture<B> f;
  Pair p;
  REQUIRE(write(p.a.get(), "0123456789", 10) == 10);
  f.backend.RecvProvided(p.b.get(), 4, 7);
  Completion got = f.WaitFor(7);
  REQUIRE(got.res == 4);
  CHECK(std::string(f.backend.buffer(got.buffer), 4) == "0123");
  f.backend.Recycle(got.buffer);
}

BACKEND_TEST("a receive into the caller's buffer, and end of stream") {
  Fixture<B> f;
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

BACKEND_TEST("a cancelled receive completes with -ECANCELED, the cancel on its own tag") {
  Fixture<B> f;
  Pair p;
  f.backend.RecvProvided(p.b.get(), 0, 10);
  f.backend.Cancel(10, 11);
  CHECK(f.WaitFor(10).res == -ECANCELED);
  CHECK(f.WaitFor(11).res == 0);
}

BACKEND_TEST("a timer completes with -ETIME") {
  Fixture<B> f;
  f.backend.Timer(10, 20);
  CHECK(f.WaitFor(20).res == -ETIME);
}

BACKEND_TEST("poll reports readiness") {
  Fixture<B> f;
  Pair p;
  f.backend.Poll(p.b.get(), POLLIN, 30);
  REQUIRE(write(p.a.get(), "x", 1) == 1);
  Completion c = f.WaitFor(30);
  CHECK((c.res & POLLIN) != 0);
}

BACKEND_TEST("accept on a listener, connect with a timeout") {
  Fixture<B> f;
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

BACKEND_TEST("a connect that does not finish in time fails with -ECANCELED") {
  Fixture<B> f;
  sockaddr_in addr;
  std::vector<UniqueFd> fill;
  UniqueFd listener = FullListener(&addr, &fill);
  UniqueFd client(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  f.backend.ConnectWithTimeout(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr, 200, 50, 51);
  CHECK(f.WaitFor(50).res == -ECANCELED);
  CHECK(f.WaitFor(51).res == -ETIME);
}

BACKEND_TEST("linked connects are never split when the submission queue is nearly full") {
  Fixture<B> f;  // 64 entries
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

BACKEND_TEST("splice moves bytes through a pipe without a copy in user space") {
  Fixture<B> f;
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

BACKEND_TEST("-ENOBUFS when every provided buffer is in use, and a recycled one serves again") {
  Fixture<B> f;
  std::vector<Pair> pairs(9);
  for (auto& p : pairs) REQUIRE(write(p.a.get(), "data", 4) == 4);
  std::vector<int> held;
  for (uint64_t i = 0; i < 8; ++i) {
    f.backend.RecvProvided(pairs[i].b.get(), 0, 200 + i);
    Completion c = f.WaitFor(200 + i);
    REQUIRE(c.res == 4);
    REQUIRE(c.buffer >= 0);
    held.push_back(c.buffer);
  }
  f.backend.RecvProvided(pairs[8].b.get(), 0, 208);
  CHECK(f.WaitFor(208).res == -ENOBUFS);
  f.backend.Recycle(held.back());
  held.pop_back();
  f.backend.RecvProvided(pairs[8].b.get(), 0, 209);
  Completion c = f.WaitFor(209);
  REQUIRE(c.res == 4);
  CHECK(std::string(f.backend.buffer(c.buffer), 4) == "data");
  f.backend.Recycle(c.buffer);
  for (int b : held) f.backend.Recycle(b);
}

BACKEND_TEST("a receive waiting for data completes when it comes, and with 0 at end of stream") {
  Fixture<B> f;
  Pair p;
  f.backend.RecvProvided(p.b.get(), 0, 300);
  f.backend.Timer(20, 301);
  CHECK(f.WaitFor(301).res == -ETIME);  // nothing yet: the receive is still waiting
  for (const Completion& c : f.seen) CHECK(c.tag != 300);
  REQUIRE(write(p.a.get(), "late", 4) == 4);
  Completion got = f.WaitFor(300);
  REQUIRE(got.res == 4);
  CHECK(std::string(f.backend.buffer(got.buffer), 4) == "late");
  f.backend.Recycle(got.buffer);
  f.backend.RecvProvided(p.b.get(), 0, 302);
  p.a.reset();
  CHECK(f.WaitFor(302).res == 0);
}

BACKEND_TEST("a send to a full socket waits until the peer reads (back-pressure)") {
  Fixture<B> f;
  Pair p;
  std::string chunk(65536, 'x');
  size_t filled = 0;
  while (true) {
    ssize_t n = write(p.a.get(), chunk.data(), chunk.size());
    if (n <= 0) break;
    filled += static_cast<size_t>(n);
  }
  REQUIRE(errno == EAGAIN);
  std::string msg = "after the backlog";
  f.backend.Send(p.a.get(), msg.data(), msg.size(), 400);
  f.backend.Timer(20, 401);
  CHECK(f.WaitFor(401).res == -ETIME);
  for (const Completion& c : f.seen) CHECK(c.tag != 400);  // still blocked
  std::string got;
  char buf[65536];
  while (got.size() < filled + msg.size()) {
    ssize_t n = read(p.b.get(), buf, sizeof buf);
    if (n > 0) {
      got.append(buf, static_cast<size_t>(n));
    } else {
      // Drained: let the backend send the rest.
      f.backend.Timer(1, 402);
      f.WaitFor(402);
    }
  }
  CHECK(f.WaitFor(400).res == static_cast<int>(msg.size()));
  CHECK(got.substr(filled) == msg);
}

BACKEND_TEST("a multishot accept completes once per connection and stays armed") {
  Fixture<B> f;
  sockaddr_in addr;
  UniqueFd listener = LoopbackListener(8, &addr);
  f.backend.Accept(listener.get(), 500);
  std::vector<UniqueFd> clients, servers;
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(connect(clients.back().get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    Completion c = f.WaitFor(500);
    REQUIRE(c.res >= 0);
    CHECK(c.more);
    servers.emplace_back(c.res);
  }
  f.backend.Cancel(500, 501);
  Completion last = f.WaitFor(500);
  CHECK(last.res == -ECANCELED);
  CHECK(!last.more);
  CHECK(f.WaitFor(501).res == 0);
}

BACKEND_TEST("a cancelled connect completes with -ECANCELED, and so does its timeout") {
  Fixture<B> f;
  sockaddr_in addr;
  std::vector<UniqueFd> fill;
  UniqueFd listener = FullListener(&addr, &fill);
  UniqueFd client(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  f.backend.ConnectWithTimeout(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr, 10000, 600, 601);
  f.backend.Timer(20, 602);
  CHECK(f.WaitFor(602).res == -ETIME);
  f.backend.Cancel(600, 603);
  CHECK(f.WaitFor(600).res == -ECANCELED);
  CHECK(f.WaitFor(601).res == -ECANCELED);
  CHECK(f.WaitFor(603).res == 0);
}

BACKEND_TEST("a cancelled timer completes with -ECANCELED") {
  Fixture<B> f;
  f.backend.Timer(60000, 700);
  f.backend.Cancel(700, 701);
  CHECK(f.WaitFor(700).res == -ECANCELED);
  CHECK(f.WaitFor(701).res == 0);
}

BACKEND_TEST("a read on an eventfd completes when it is signalled") {
  Fixture<B> f;
  UniqueFd efd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  uint64_t value = 0;
  f.backend.Read(efd.get(), &value, sizeof value, 800);
  uint64_t three = 3;
  REQUIRE(write(efd.get(), &three, sizeof three) == sizeof three);
  CHECK(f.WaitFor(800).res == static_cast<int>(sizeof value));
  CHECK(value == 3);
}

BACKEND_TEST("poll for POLLOUT on a writable socket completes at once") {
  Fixture<B> f;
  Pair p;
  f.backend.Poll(p.a.get(), POLLOUT, 900);
  Completion c = f.WaitFor(900);
  CHECK((c.res & POLLOUT) != 0);
}

BACKEND_TEST("data and end of stream arriving together: the next receive still sees the end") {
  Fixture<B> f;
  Pair p;
  f.backend.RecvProvided(p.b.get(), 0, 1000);  // waiting (so the fd is watched) when both come
  f.backend.Timer(20, 1001);
  CHECK(f.WaitFor(1001).res == -ETIME);
  REQUIRE(write(p.a.get(), "last words", 10) == 10);
  REQUIRE(shutdown(p.a.get(), SHUT_WR) == 0);
  Completion got = f.WaitFor(1000);
  REQUIRE(got.res == 10);  // fewer bytes than a buffer holds
  f.backend.Recycle(got.buffer);
  f.backend.RecvProvided(p.b.get(), 0, 1002);
  f.backend.Timer(1000, 1003);
  CHECK(f.WaitFor(1003).res == -ETIME);
  bool ended = false;
  for (const Completion& c : f.seen) ended = ended || (c.tag == 1002 && c.res == 0);
  CHECK(ended);  // the end of stream, not a receive left waiting for an edge that came already
}

BACKEND_TEST("RecvHot: the bytes in a buffer Recycle takes back, and at most 8 buffers in turn") {
  Fixture<B> f;
  Pair p;
  std::vector<int> ids;
  for (uint64_t i = 0; i < 20; ++i) {
    const std::string msg = "hot " + std::to_string(i);
    REQUIRE(write(p.a.get(), msg.data(), msg.size()) == static_cast<ssize_t>(msg.size()));
    f.backend.RecvHot(p.b.get(), 0, 400 + i);
    Completion c = f.WaitFor(400 + i);
    REQUIRE(c.res == static_cast<int>(msg.size()));
    REQUIRE(c.buffer >= 0);
    CHECK(std::string(f.backend.buffer(c.buffer), msg.size()) == msg);
    f.backend.Recycle(c.buffer);
    if (std::find(ids.begin(), ids.end(), c.buffer) == ids.end()) ids.push_back(c.buffer);
  }
  // Each buffer came back before the next receive: a few buffers serve every receive, so the
  // kernel copies into memory still in cache (io_uring: 8 in turn; epoll: the last freed).
  CHECK(ids.size() <= 8);
}

TEST_CASE("io_uring: RecvHot has 8 buffers of its own, apart from the main ring; -ENOBUFS when all 8 are held") {
  Fixture<Uring> f;
  std::vector<Pair> pairs(17);
  for (auto& p : pairs) REQUIRE(write(p.a.get(), "data", 4) == 4);
  std::vector<int> main_ids, hot_ids;
  for (uint64_t i = 0; i < 8; ++i) {  // every buffer of the main ring held
    f.backend.RecvProvided(pairs[i].b.get(), 0, 500 + i);
    Completion c = f.WaitFor(500 + i);
    REQUIRE(c.res == 4);
    main_ids.push_back(c.buffer);
  }
  for (uint64_t i = 8; i < 16; ++i) {  // the hot ones still serve
    f.backend.RecvHot(pairs[i].b.get(), 0, 500 + i);
    Completion c = f.WaitFor(500 + i);
    REQUIRE(c.res == 4);
    REQUIRE(c.buffer >= 0);
    CHECK(std::find(main_ids.begin(), main_ids.end(), c.buffer) == main_ids.end());
    CHECK(std::find(hot_ids.begin(), hot_ids.end(), c.buffer) == hot_ids.end());
    CHECK(std::string(f.backend.buffer(c.buffer), 4) == "data");
    hot_ids.push_back(c.buffer);
  }
  f.backend.RecvHot(pairs[16].b.get(), 0, 520);
  CHECK(f.WaitFor(520).res == -ENOBUFS);
  // A hot buffer given back serves the next hot receive; main buffers go back to the main ring.
  f.backend.Recycle(hot_ids.back());
  hot_ids.pop_back();
  f.backend.RecvHot(pairs[16].b.get(), 0, 521);
  Completion c = f.WaitFor(521);
  REQUIRE(c.res == 4);
  CHECK(std::find(main_ids.begin(), main_ids.end(), c.buffer) == main_ids.end());
  CHECK(std::string(f.backend.buffer(c.buffer), 4) == "data");
  f.backend.Recycle(c.buffer);
  for (int b : hot_ids) f.backend.Recycle(b);
  for (int b : main_ids) f.backend.Recycle(b);
  REQUIRE(write(pairs[0].a.get(), "more", 4) == 4);
  f.backend.RecvProvided(pairs[0].b.get(), 0, 522);
  Completion m = f.WaitFor(522);
  REQUIRE(m.res == 4);
  CHECK(std::find(main_ids.begin(), main_ids.end(), m.buffer) != main_ids.end());
  CHECK(std::string(f.backend.buffer(m.buffer), 4) == "more");
  f.backend.Recycle(m.buffer);
}
