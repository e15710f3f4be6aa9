// Fuzzes the whole login state machine: arbitrary client bytes (fed in pieces whose sizes come
// from the input) against a Session with a real multifile auth module and a fake target that
// accepts the connection and answers with a server hello. Must never crash, hang or leak.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "auth/factory.h"
#include "codec/packet.h"
#include "engine/session.h"

using namespace xr;
using namespace xr::engine;

namespace {

struct FuzzIo : SessionIo {
  Session* session = nullptr;
  bool connect_requested = false;
  std::vector<std::function<AuthOutcome()>> jobs;
  size_t to_client = 0;
  bool closed = false;
  void SendToClient(std::string b) override { to_client += b.size(); }
  void SendToServer(std::string) override {}
  void RunAuth(std::function<AuthOutcome()> job) override { jobs.push_back(std::move(job)); }
  void ConnectServer(const registry::Target&) override { connect_requested = true; }
  void StartPassthrough() override {}
  void SetDeadline(int64_t) override {}
  void Close(std::string_view) override { closed = true; }
};

std::shared_ptr<SessionConfig> MakeConfig() {
  static std::string path = [] {
    char p[] = "/tmp/xr-session-fuzz-XXXXXX";
    int fd = mkstemp(p);
    std::string users = "foo|bar|1000|1000|tcp://127.0.0.1:15200/200|||\n";
    if (fd >= 0) {
      ssize_t n = write(fd, users.data(), users.size());
      (void)n;
      close(fd);
    }
    return std::string(p);
  }();
  auto c = std::make_shared<SessionConfig>();
  auto m = auth::CreateAuthModule("multifile,filename=" + path);
  if (!m.ok()) abort();
  c->auth = std::shared_ptr<auth::AuthModule>(std::move(*m));
  c->identity = ProxyIdentity{"fuzz", "fuzzhost"};
  c->client_limits.max_payload = 1 << 20;
  return c;
}

std::string ServerHello() {
  Value caps{Dict{}};
  caps.set("version", "3.1.3");
  caps.set("rencode", true);
  std::string out;
  if (!EncodePacket(Value(List{Value("hello"), caps}), EncodeOptions{}, nullptr, &out).ok()) abort();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::shared_ptr<SessionConfig> config = MakeConfig();
  static std::string server_hello = ServerHello();
  FuzzIo io;
  // Fresh admission state and counters per input: each run starts from the same state.
  Admission admission;
  RelayCounters counters;
  Session s(1, "fuzz:1", config, &io, SessionEnv{&admission, &counters, NowMs});
  io.session = &s;
  s.Start();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // First byte picks the piece size (1..256), so byte-at-a-time splits are explored too.
  size_t piece = in.empty() ? 1 : static_cast<uint8_t>(in[0]) + 1;
  if (!in.empty()) in.remove_prefix(1);
  while (!in.empty() && !io.closed) {
    size_t n = std::min(piece, in.size());
    s.OnClientData(in.substr(0, n));
    in.remove_prefix(n);
    auto jobs = std::move(io.jobs);
    io.jobs.clear();
    for (auto& j : jobs) s.OnAuthDone(j());
    if (io.connect_requested) {
      io.connect_requested = false;
      s.OnServerConnected();
      s.OnServerData(server_hello);
    }
  }
  if (!io.closed) s.OnTimeout();
  return 0;
}
