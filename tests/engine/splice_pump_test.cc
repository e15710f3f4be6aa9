// SplicePump over socketpairs: a frame's rest moves source -> pipe -> sink, counts each way,
// waits reported instead of blocking, the ends of either side. Every case on both backends.
#include "engine/splice_pump.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "tests/engine/backends.h"

using namespace xr;
using namespace xr::engine;

namespace {

struct Pair {
  UniqueFd near, far;  // near: the relay's socket; far: the peer's
  Pair() {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);  // blocking: Open must fix that
    near.reset(sv[0]);
    far.reset(sv[1]);
  }
};

using testing::Epoll;
using testing::Uring;

template <typename B>
struct Fixture {
  std::unique_ptr<Backend> io = B::Make();
  Pair source, sink;
  SplicePump pump;
  Fixture() {
    signal(SIGPIPE, SIG_IGN);  // as the relay does: a gone peer is an error, not a signal
    REQUIRE(pump.Open(source.near.get(), sink.near.get(), 1));
  }
  SplicePump::Result Pump(bool sink_free = true) { return pump.Pump(*io, source.near.get(), sink.near.get(), sink_free); }
  std::string ReadSink(size_t n) {
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
      ssize_t r = read(sink.far.get(), out.data() + got, n - got);
      REQUIRE(r > 0);
      got += static_cast<size_t>(r);
    }
    return out;
  }
};

}  // namespace

TEST_CASE_TEMPLATE("open makes both sockets non-blocking", B, Uring, Epoll) {
  Fixture<B> f;
  CHECK(f.pump.open());
  CHECK((fcntl(f.source.near.get(), F_GETFL) & O_NONBLOCK) != 0);
  CHECK((fcntl(f.sink.near.get(), F_GETFL) & O_NONBLOCK) != 0);
}

TEST_CASE_TEMPLATE("the rest of a frame moves through, nothing after it", B, Uring, Epoll) {
  Fixture<B> f;
  std::string frame(10000, 'x');
  std::string next = "NEXT";
  REQUIRE(write(f.source.far.get(), (frame + next).data(), frame.size() + next.size()) ==
          static_cast<ssize_t>(frame.size() + next.size()));
  f.pump.Start(frame.size());
  CHECK(f.pump.active());
  SplicePump::Result r = f.Pump();
  CHECK(r.end == SplicePump::Result::End::kFrameDone);
  CHECK(r.from_source == frame.size());
  CHECK(r.to_sink == frame.size());
  CHECK_FALSE(f.pump.active());
  CHECK(f.pump.spliced() == frame.size());
  CHECK(f.ReadSink(frame.size()) == frame);
  char buf[8];
  REQUIRE(read(f.source.near.get(), buf, sizeof buf) == 4);  // the next frame stays for the reader
  CHECK(std::string(buf, 4) == next);
}

TEST_CASE_TEMPLATE("no bytes yet: wait for the source", B, Uring, Epoll) {
  Fixture<B> f;
  f.pump.Start(100);
  SplicePump::Result r = f.Pump();
  CHECK(r.end == SplicePump::Result::End::kNone);
  CHECK(r.wait_source);
  CHECK_FALSE(r.wait_sink);
  CHECK(r.from_source == 0);
  REQUIRE(write(f.source.far.get(), "0123456789", 10) == 10);
  r = f.Pump();
  CHECK(r.from_source == 10);
  CHECK(r.to_sink == 10);
  CHECK(r.wait_source);  // 90 more to come
  CHECK(f.pump.left() == 90);
  CHECK(f.ReadSink(10) == "0123456789");
}

TEST_CASE_TEMPLATE("while the sink has bytes queued ahead, the pipe is not drained", B, Uring, Epoll) {
  Fixture<B> f;
  REQUIRE(write(f.source.far.get(), "abcdef", 6) == 6);
  f.pump.Start(6);
  SplicePump::Result r = f.Pump(/*sink_free=*/false);
  CHECK(r.end == SplicePump::Result::End::kNone);
  CHECK(r.from_source == 6);
  CHECK(r.to_sink == 0);
  CHECK(f.pump.in_pipe() == 6);
  CHECK(f.pump.active());
  r = f.Pump(true);
  CHECK(r.end == SplicePump::Result::End::kFrameDone);
  CHECK(r.to_sink == 6);
  CHECK(f.ReadSink(6) == "abcdef");
}

TEST_CASE_TEMPLATE("a sink that does not read: wait for it to be writable", B, Uring, Epoll) {
  Fixture<B> f;
  int small = 4096;
  REQUIRE(setsockopt(f.sink.near.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  int fl = fcntl(f.source.far.get(), F_GETFL);
  REQUIRE(fcntl(f.source.far.get(), F_SETFL, fl | O_NONBLOCK) == 0);
  size_t total = 4 * 1024 * 1024;
  f.pump.Start(total);
  std::string chunk(64 * 1024, 'y');
  size_t written = 0;
  size_t moved = 0;
  SplicePump::Result r;
  bool waited_sink = false;
  // Feed the source until the sink (never read) and the pipe are full.
  for (int i = 0; i < 200 && !waited_sink; ++i) {
    ssize_t w = write(f.source.far.get(), chunk.data(), chunk.size());
    if (w > 0) written += static_cast<size_t>(w);
    r = f.Pump();
    REQUIRE(r.end == SplicePump::Result::End::kNone);
    moved += r.from_source;
    waited_sink = r.wait_sink;
  }
  CHECK(waited_sink);
  CHECK(f.pump.in_pipe() > 0);
  CHECK(moved <= written);  // the pump never reports more than the source was given
  CHECK(f.pump.left() == total - moved);
}

TEST_CASE_TEMPLATE("a source that ends mid-frame ends the pump with end of stream", B, Uring, Epoll) {
  Fixture<B> f;
  REQUIRE(write(f.source.far.get(), "abc", 3) == 3);
  f.source.far.reset();
  f.pump.Start(100);
  SplicePump::Result r = f.Pump();
  CHECK(r.end == SplicePump::Result::End::kSourceEnded);
  CHECK(r.error == 0);
  CHECK(r.from_source == 3);
}

TEST_CASE_TEMPLATE("a sink whose peer is gone fails the pump", B, Uring, Epoll) {
  Fixture<B> f;
  f.sink.far.reset();
  REQUIRE(write(f.source.far.get(), "abc", 3) == 3);
  f.pump.Start(3);
  SplicePump::Result r = f.Pump();
  CHECK(r.end == SplicePump::Result::End::kSinkFailed);
  CHECK(r.error == -EPIPE);
}
