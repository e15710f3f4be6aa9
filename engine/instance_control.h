#pragma once
// The `:proxy-N` control endpoint of one relayed connection: its number, its socket file
// (DIR/HOSTNAME-proxy-N, where `xpra info` and `xpra stop` find it), and what it answers.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "codec/value.h"
#include "engine/control.h"
#include "base/fd.h"

namespace xr::engine {

// Where control sockets go and what the relay's own endpoint answers.
struct ControlConfig {
  std::string socket_dir;         // "" disables control sockets
  std::string hostname;           // socket name prefix (HOSTNAME-proxy-N)
  std::string display;            // the relay's own ":DISPLAY" ("" = none)
  bool instance_sockets = true;   // a HOSTNAME-proxy-N socket file per relayed connection
  mode_t mode = 0600;             // socket file permissions
  std::shared_ptr<ControlTarget> relay;  // the relay's own endpoint (info, stop)
};

// The path of a display's socket: DIR/HOSTNAME-NAME for ":NAME".
std::string ControlSocketPath(const ControlConfig& c, std::string_view display);

// What `xpra info` / `xpra stop` on :proxy-N do; runs on the connection's reactor. The
// connection may have ended by then: `info` returns nullopt and `stop` false.
class InstanceControl final : public ControlTarget {
 public:
  InstanceControl(std::string display, std::function<std::optional<Value>()> info, std::function<bool()> stop)
      : display_(std::move(display)), info_(std::move(info)), stop_(std::move(stop)) {}
  Value Info() override;
  bool Stop() override;
  std::string name() const override { return display_; }

 private:
  std::string display_;
  std::function<std::optional<Value>()> info_;
  std::function<bool()> stop_;
};

// The socket file of one :proxy-N. N is unique for the life of the process and never one
// whose socket another process (a second relay sharing the socket dir) is listening on.
class InstanceSocket {
 public:
  ~InstanceSocket() { Close(); }
  // Takes the next N and, when `c` asks for instance sockets, listens on its socket file.
  // Without a socket (disabled, or it could not be made: logged) the number still counts.
  void Open(const ControlConfig& c, uint64_t conn);
  // ":proxy-N" (N = 0 before Open).
  std::string display() const { return ":proxy-" + std::to_string(number_); }
  int fd() const { return fd_.get(); }
  // Accept bookkeeping: whether the multishot accept is armed, and whether it was cancelled.
  bool armed = false;
  bool cancelled = false;
  // Removes the socket file and closes the listener (the caller cancels the accept first).
  void Close();

 private:
  uint64_t number_ = 0;
  UniqueFd fd_;
  std::string path_;
};

}  // namespace xr::engine
