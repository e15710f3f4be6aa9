#include "engine/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/fd.h"

using namespace xr;
using namespace xr::engine;

namespace {

// A datagram socket the test owns, bound to a path in its own temp dir or to an abstract name.
struct Receiver {
  UniqueFd fd;
  std::string name;  // as NOTIFY_SOCKET spells it
  std::string dir;

  explicit Receiver(bool abstract) {
    fd.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd.valid());
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socklen_t len;
    if (abstract) {
      name = "@xr-sd-notify-test-" + std::to_string(getpid());
      std::memcpy(addr.sun_path + 1, name.data() + 1, name.size() - 1);
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    } else {
      char tmpl[] = "/tmp/xr-sdnotify-XXXXXX";
      REQUIRE(mkdtemp(tmpl) != nullptr);
      dir = tmpl;
      name = dir + "/notify";
      std::memcpy(addr.sun_path, name.c_str(), name.size() + 1);
      len = sizeof addr;
    }
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) == 0);
    timeval tv{2, 0};
    setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Receiver() {
    if (!dir.empty()) {
      ::unlink(name.c_str());
      ::rmdir(dir.c_str());
    }
  }
  std::string Next() {
    char buf[4096];
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    REQUIRE(n >= 0);
    return std::string(buf, static_cast<size_t>(n));
  }
};

uint64_t NowUsec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace

TEST_CASE("sd_notify: READY, STATUS, STOPPING reach a path socket, one datagram each") {
  Receiver r(false);
  SdNotifier n(r.name);
  CHECK(n.enabled());
  REQUIRE(n.Ready("listening on 127.0.0.1:14501").ok());
  CHECK(r.Next() == "READY=1\nSTATUS=listening on 127.0.0.1:14501");
  REQUIRE(n.SetStatus("two\nlines").ok());
  CHECK(r.Next() == "STATUS=two lines");
  REQUIRE(n.Stopping().ok());
  CHECK(r.Next() == "STOPPING=1");
}

TEST_CASE("sd_notify: RELOADING carries CLOCK_MONOTONIC in microseconds") {
  Receiver r(true);
  SdNotifier n(r.name);
  uint64_t before = NowUsec();
  REQUIRE(n.Reloading().ok());
  uint64_t after = NowUsec();
  std::string msg = r.Next();
  REQUIRE(msg.starts_with("RELOADING=1\nMONOTONIC_USEC="));
  uint64_t usec = std::stoull(msg.substr(std::strlen("RELOADING=1\nMONOTONIC_USEC=")));
  CHECK(usec >= before);
  CHECK(usec <= after);
  REQUIRE(n.Ready().ok());
  CHECK(r.Next() == "READY=1");
}

TEST_CASE("sd_notify: taken from NOTIFY_SOCKET; unset means off and sends nothing") {
  Receiver r(true);
  setenv("NOTIFY_SOCKET", r.name.c_str(), 1);
  SdNotifier n = SdNotifier::FromEnvironment();
  CHECK(n.socket() == r.name);
  REQUIRE(n.Ready().ok());
  CHECK(r.Next() == "READY=1");
  unsetenv("NOTIFY_SOCKET");
  SdNotifier off = SdNotifier::FromEnvironment();
  CHECK(!off.enabled());
  CHECK(off.Ready().ok());
}

TEST_CASE("sd_notify: bad socket names and a socket nobody listens on are errors naming it") {
  CHECK(SdNotifier("relative/path").Ready().error().code == ErrorCode::kMalformed);
  CHECK(SdNotifier("@").Ready().error().code == ErrorCode::kMalformed);
  CHECK(SdNotifier("/" + std::string(200, 'x')).Ready().error().code == ErrorCode::kMalformed);
  auto gone = SdNotifier("/nonexistent-dir-xr/notify").Ready();
  REQUIRE(!gone.ok());
  CHECK(gone.error().code == ErrorCode::kIo);
  CHECK(gone.error().message.find("/nonexistent-dir-xr/notify") != std::string::npos);
}
