#include "engine/instance_control.h"

#include <unistd.h>

#include <atomic>

#include "engine/listen.h"
#include "engine/log.h"
#include "session_registry/socket_dirs.h"

namespace xr::engine {
namespace {
// :proxy-N numbers, shared by every reactor.
std::atomic<uint64_t> g_next_proxy_number{1};
}  // namespace

std::string ControlSocketPath(const ControlConfig& c, std::string_view display) {
  std::string name(display);
  if (!name.empty() && name.front() == ':') name.erase(0, 1);
  return c.socket_dir + "/" + c.hostname + "-" + name;
}

Value InstanceControl::Info() {
  if (auto v = info_()) return std::move(*v);
  Value v{Dict{}};
  v.set("error", "instance " + name() + " has ended");
  return v;
}

bool InstanceControl::Stop() { return stop_(); }

void InstanceSocket::Open(const ControlConfig& cc, uint64_t conn) {
  number_ = g_next_proxy_number.fetch_add(1);
  if (cc.socket_dir.empty() || !cc.instance_sockets || fd_.valid()) return;
  path_ = ControlSocketPath(cc, display());
  for (int tries = 0; registry::ProbeSocket(path_) == registry::SocketState::kLive; ++tries) {
    if (tries == 1000) {
      XR_WARN("control", "conn={} no control socket: every :proxy-N name tried is in use", conn);
      path_.clear();
      return;
    }
    if (tries == 0) {
      XR_WARN("control", "{} is in use by another process (a relay sharing {}?); taking the next number", path_,
              cc.socket_dir);
    }
    number_ = g_next_proxy_number.fetch_add(1);
    path_ = ControlSocketPath(cc, display());
  }
  auto fd = OpenUnixListener(path_, cc.mode);
  if (!fd.ok()) {
    XR_WARN("control", "conn={} no control socket: {}", conn, fd.error().message);
    path_.clear();
    return;
  }
  fd_ = std::move(*fd);
}

void InstanceSocket::Close() {
  if (!path_.empty()) {
    ::unlink(path_.c_str());
    path_.clear();
  }
  fd_.reset();
}

}  // namespace xr::engine
