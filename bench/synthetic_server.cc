// xpra-synthetic-server: an xpra 3.1 server endpoint for load tests. It speaks the handshake
// (hello, optional challenge/response), answers ping with ping_echo as xpra 3.1 does, and
// streams verifiable "draw" packets to clients that ask for the bench stream (see
// bench/bench_common.h). One process, one epoll loop per thread, SO_REUSEPORT listeners.
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_common.h"
#include "codec/cipher.h"
#include "codec/digest.h"
#include "codec/frame_reader.h"
#include "codec/header.h"
#include "codec/packet.h"
#include "codec/value.h"

namespace xr::bench {
namespace {

constexpr const char* kProg = "xpra-synthetic-server";
constexpr size_t kSaltBytes = 64;
constexpr size_t kReadBuf = 256 * 1024;
constexpr size_t kStreamBatch = 256 * 1024;    // queue stream packets up to this many bytes per write
constexpr int64_t kWriteBudget = 4 << 20;      // bytes per connection per turn before yielding
constexpr int64_t kFlushTimeoutNs = 2'000'000'000;

struct ServerConfig {
  Endpoint bind;
  std::string password;
  size_t stream_size = 65536;
  double stream_rate = 0;  // packets/s per connection, 0 = as fast as the socket takes
  int threads = 1;
  bool quiet = false;
  // --xpra6: speak as an xpra 6.x server (rencodeplus + lz4, nested "" caps): a client hello in
  // any other encoding is refused the way 6.5.3 refuses it (an unframed line, then close), so
  // the relay's bridge (issue 17) meets what a real 6.x server does.
  bool xpra6 = false;
  // Test aid (--inject-fault): damage stream packet `fault_at` of every connection.
  enum class Fault { kNone, kCorrupt, kGap } fault = Fault::kNone;
  uint64_t fault_at = 0;
};

// Counters shared by all workers (relaxed: they are only summed for reports).
struct ServerStats {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> active{0};
  std::atomic<uint64_t> authenticated{0};  // hellos answered (after a passed challenge or none)
  std::atomic<uint64_t> auth_failures{0};
  std::atomic<uint64_t> protocol_errors{0};
  std::atomic<uint64_t> pings{0};
  std::atomic<uint64_t> stream_packets{0};
  std::atomic<uint64_t> stream_bytes{0};  // payload bytes
};

std::atomic<bool> g_stop{false};
std::vector<int> g_wake_fds;  // one eventfd per worker, written by the signal handler

void OnSignal(int) {
  g_stop.store(true);
  uint64_t one = 1;
  for (int fd : g_wake_fds) {
    ssize_t r = write(fd, &one, sizeof one);
    (void)r;
  }
}

// Stream bodies per payload size, created on first use and shared by all workers.
class BodyCache {
 public:
  std::shared_ptr<const StreamBodies> Get(size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [s, b] : cache_) {
      if (s == size) return b;
    }
    if (cache_.size() >= 32) return nullptr;  // bounded: a client cannot make us allocate without end
    auto b = std::make_shared<const StreamBodies>(size);
    cache_.emplace_back(size, b);
    return b;
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<size_t, std::shared_ptr<const StreamBodies>>> cache_;
};

// The static part of our hello: what an xpra 3.1.3 server says about itself.
Value BaseHello(const std::string& hostname, const std::string& uuid, int64_t start_time) {
  Value caps{Dict{}};
  auto set = [&](std::string_view k, Value v) { caps.set(k, std::move(v)); };
  set("version", kXpraVersion);
  set("build.version", kXpraVersion);
  set("build.revision", "0");
  set("platform", "linux");
  set("digest", TextList(ClientDigests()));
  set("salt-digest", TextList(ClientSaltDigests()));
  set("compressors", TextList({"lz4", "zlib"}));
  set("encoders", TextList({"rencode", "bencode"}));
  set("rencode", true);
  set("rencode.version", "1.0.6");
  set("bencode", true);
  set("bencode.version", "Cython");
  set("yaml", false);
  set("lz4", true);
  set("zlib", true);
  set("lzo", false);
  set("brotli", false);
  set("start_time", start_time);
  set("server_type", "synthetic");
  set("server.mode", "seamless");
  set("hostname", std::string_view(hostname));
  set("uuid", std::string_view(uuid));
  set("session_name", "synthetic");
  set("info-request", true);
  set("readonly-server", true);
  set("readonly", false);
  set("ping-echo-sourceid", true);
  set("windows", true);
  set("encodings", TextList({"rgb24"}));
  set("encodings.core", TextList({"rgb24"}));
  set("actual_desktop_size", Value(List{Value(1920), Value(1080)}));
  set("max_desktop_size", Value(List{Value(8192), Value(4096)}));
  set("desktop_size", Value(List{Value(1920), Value(1080)}));
  set("root_window_size", Value(List{Value(1920), Value(1080)}));
  set("window.raise", true);
  set("notifications", false);
  set("clipboard", false);
  set("sound.send", false);
  set("sound.receive", false);
  set("file-transfer", false);
  set("printing", false);
  set("webcam", false);
  set("keyboard", false);
  set("pointer", false);
  return caps;
}

// What an xpra 6.x server says differently (--xpra6): only rencodeplus and lz4, its version as
// major.minor, capabilities with a value of their own nested under "" ({"lz4": {"": True}}).
void Xpra6Hello(Value* caps) {
  caps->erase_if([](std::string_view k) {
    return k == "rencode" || k == "bencode" || k == "zlib" || k == "yaml" || k == "lzo" || k == "brotli" ||
           k.starts_with("rencode.") || k.starts_with("bencode.");
  });
  caps->set("version", "6.5");
  caps->set("build.version", "6.5.3");
  caps->set("encoders", TextList({"rencodeplus"}));
  caps->set("compressors", TextList({"lz4"}));
  caps->set("rencodeplus", true);
  caps->set("lz4", Value(Dict{{Value(""), Value(true)}, {Value("version"), Value("1.9.4")}}));
}

class Worker {
 public:
  Worker(const ServerConfig& cfg, ServerStats* stats, BodyCache* bodies, const Value* base_hello, int64_t start_time)
      : cfg_(cfg), stats_(stats), bodies_(bodies), base_hello_(base_hello), start_time_(start_time) {}

  // Creates the epoll set and the wake eventfd; listen_fd is this worker's SO_REUSEPORT socket.
  Status Init(UniqueFd listen_fd) {
    listen_ = std::move(listen_fd);
    epoll_ = UniqueFd(epoll_create1(EPOLL_CLOEXEC));
    wake_ = UniqueFd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (epoll_.get() < 0 || wake_.get() < 0) return MakeError(ErrorCode::kIo, std::string("epoll/eventfd: ") + strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenTag;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listen_.get(), &ev) != 0) return MakeError(ErrorCode::kIo, "epoll_ctl listen");
    ev.data.u64 = kWakeTag;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) return MakeError(ErrorCode::kIo, "epoll_ctl wake");
    return Status::Ok();
  }

  int wake_fd() const { return wake_.get(); }

  // Serves until g_stop; then closes every connection.
  void Run() {
    std::vector<char> buf(kReadBuf);
    epoll_event events[256];
    while (!g_stop.load(std::memory_order_relaxed)) {
      int timeout = 1000;
      int64_t now = NowNs();
      if (!runnable_.empty()) {
        timeout = 0;
      } else if (auto next = timers_.NextDeadline()) {
        timeout = static_cast<int>(std::clamp<int64_t>((*next - now + 999'999) / 1'000'000, 0, 1000));
      }
      int n = epoll_wait(epoll_.get(), events, 256, timeout);
      if (n < 0 && errno != EINTR) {
        std::fprintf(stderr, "%s: epoll_wait: %s\n", kProg, strerror(errno));
        break;
      }
      for (int i = 0; i < n; ++i) {
        uint64_t tag = events[i].data.u64;
        if (tag == kListenTag) {
          AcceptAll();
          continue;
        }
        if (tag == kWakeTag) continue;
        Conn* c = Lookup(tag);
        if (c == nullptr) continue;
        uint32_t e = events[i].events;
        if (e & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
          if (!OnReadable(c, buf.data())) continue;  // closed
        }
        if (e & EPOLLOUT) Pump(c);
      }
      now = NowNs();
      while (auto t = timers_.PopDue(now)) {
        Conn* c = Lookup(t->id);
        if (c == nullptr || c->timer_ns != t->deadline_ns) continue;
        c->timer_ns = 0;
        if (c->closing) {
          Close(c);  // the peer did not take our last bytes in time
        } else {
          Pump(c);
        }
      }
      std::vector<uint64_t> run;
      run.swap(runnable_);
      for (uint64_t tag : run) {
        if (Conn* c = Lookup(tag)) {
          c->queued = false;
          Pump(c);
        }
      }
    }
    // As xpra: tell every client why (best effort: one write attempt), then close.
    for (auto& c : conns_) {
      if (!c) continue;
      if (!c->closing) {
        Send(c.get(), Value(List{Value("disconnect"), Value("server shutdown")}));
        c->out.WriteTo(c->fd.get());
      }
      Close(c.get());
    }
  }

 private:
  static constexpr uint64_t kListenTag = ~uint64_t{0};
  static constexpr uint64_t kWakeTag = ~uint64_t{0} - 1;

  enum class State { kHello, kChallenge, kReady };

  struct Conn {
    UniqueFd fd;
    uint64_t tag = 0;  // generation << 24 | fd: epoll data and timer id
    State state = State::kHello;
    FrameReader reader{FrameLimits{}};
    PacketDecoder decoder{FrameLimits{}};
    OutQueue out;
    EncodeOptions opts;
    std::string server_salt;
    std::string digest;
    std::string salt_digest;
    bool closing = false;  // flush what is queued, then close
    bool queued = false;   // in runnable_
    int64_t timer_ns = 0;  // pending timer deadline (0 = none)
    // stream
    bool streaming = false;
    std::shared_ptr<const StreamBodies> bodies;
    uint64_t token = 0;
    uint64_t next_seq = 1;
    double rate = 0;
    int64_t rate_start_ns = 0;
    uint64_t rate_sent = 0;
  };

  Conn* Lookup(uint64_t tag) {
    size_t fd = static_cast<size_t>(tag & 0xffffff);
    if (fd >= conns_.size() || !conns_[fd] || conns_[fd]->tag != tag) return nullptr;
    return conns_[fd].get();
  }

  void AcceptAll() {
    while (true) {
      int fd = accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          std::fprintf(stderr, "%s: accept: %s\n", kProg, strerror(errno));
        }
        return;
      }
      SetNoDelay(fd);
      auto c = std::make_unique<Conn>();
      c->fd = UniqueFd(fd);
      c->tag = (++generation_ << 24) | static_cast<uint64_t>(fd);
      c->opts.encoding = Encoding::kRencode;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      ev.data.u64 = c->tag;
      if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) continue;
      if (static_cast<size_t>(fd) >= conns_.size()) conns_.resize(static_cast<size_t>(fd) + 1024);
      conns_[static_cast<size_t>(fd)] = std::move(c);
      stats_->accepted.fetch_add(1, std::memory_order_relaxed);
      stats_->active.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void Close(Conn* c) {
    size_t fd = static_cast<size_t>(c->fd.get());
    stats_->active.fetch_sub(1, std::memory_order_relaxed);
    conns_[fd].reset();  // closes the socket, which leaves the epoll set
  }

  // Reads until EAGAIN; false if the connection was closed.
  bool OnReadable(Conn* c, char* buf) {
    while (true) {
      ssize_t r = read(c->fd.get(), buf, kReadBuf);
      if (r > 0) {
        if (c->closing) continue;  // discard: we are on our way out
        c->reader.Feed(std::string_view(buf, static_cast<size_t>(r)));
        if (!DrainFrames(c)) return false;
        continue;
      }
      if (r == 0) {
        Close(c);
        return false;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      Close(c);  // reset by peer etc.
      return false;
    }
  }

  // Decodes and handles every complete packet; false if the connection was closed.
  bool DrainFrames(Conn* c) {
    while (!c->closing) {
      auto next = c->reader.Next();
      if (!next.ok()) return ProtocolError(c, next.error().message);
      if (!next->has_value()) return true;
      auto packet = c->decoder.Push(std::move(**next));
      if (!packet.ok()) return ProtocolError(c, packet.error().message);
      if (!packet->has_value()) continue;
      if (!Handle(c, **packet)) return false;
    }
    return true;
  }

  // As xpra 6.5.3 answers a hello it has no decoder for: a line of text (no xpra header), close.
  bool Refuse6(Conn* c) {
    stats_->protocol_errors.fetch_add(1, std::memory_order_relaxed);
    c->out.AppendOwned(std::string("disconnect: invalid packet encoding: decoder is not available\n"));
    c->closing = true;
    c->streaming = false;
    ArmTimer(c, NowNs() + kFlushTimeoutNs);
    return Pump(c);
  }

  bool ProtocolError(Conn* c, const std::string& why) {
    stats_->protocol_errors.fetch_add(1, std::memory_order_relaxed);
    return Disconnect(c, "protocol error", why);
  }

  // Queues ["disconnect", reason, detail] and closes once it is written.
  bool Disconnect(Conn* c, std::string_view reason, std::string_view detail) {
    List p{Value("disconnect"), Value(reason)};
    if (!detail.empty()) p.emplace_back(detail);
    Send(c, Value(std::move(p)));
    c->closing = true;
    c->streaming = false;
    ArmTimer(c, NowNs() + kFlushTimeoutNs);
    return Pump(c);
  }

  void Send(Conn* c, const Value& packet) {
    std::string wire;
    if (Status s = AppendPacket(packet, c->opts, &wire); !s.ok()) {
      std::fprintf(stderr, "%s: cannot encode a packet: %s\n", kProg, s.error().message.c_str());
      return;
    }
    c->out.AppendOwned(std::move(wire));
  }

  void ArmTimer(Conn* c, int64_t deadline) {
    c->timer_ns = deadline;
    timers_.Push(deadline, c->tag, 0);
  }

  // Handles one packet; false if the connection was closed.
  bool Handle(Conn* c, const Value& packet) {
    const List& l = packet.as_list();
    std::string_view type = l[0].as_string();
    switch (c->state) {
      case State::kHello:
      case State::kChallenge:
        if (type == "disconnect") {
          Close(c);
          return false;
        }
        if (type != "hello" || l.size() < 2 || !l[1].is_dict()) {
          return ProtocolError(c, "expected a hello packet, got '" + std::string(type) + "'");
        }
        return OnHello(c, l[1]);
      case State::kReady:
        if (type == "ping") return OnPing(c, l);
        if (type == "disconnect") {
          Close(c);
          return false;
        }
        return true;  // ping_echo, damage-sequence, anything else: ignored, as a busy server would
    }
    return true;
  }

  bool OnHello(Conn* c, const Value& caps_value) {
    Caps caps(caps_value);
    if (c->state == State::kHello) {
      // As xpra: encoder and compressor follow the client's hello.
      c->opts.encoding = caps.get_bool("rencode", false) ? Encoding::kRencode : Encoding::kBencode;
      if (cfg_.xpra6) {
        if (c->decoder.last_encoding() != Encoding::kRencodePlus) return Refuse6(c);
        c->opts.encoding = Encoding::kRencodePlus;
        c->opts.flush = true;
      }
      int level = static_cast<int>(std::clamp<int64_t>(caps.get_int("compression_level", 1), 0, 9));
      auto compressors = caps.get_strings("compressors");
      auto offers = [&](const char* name) {
        return caps.get_bool(name, false) || std::find(compressors.begin(), compressors.end(), name) != compressors.end();
      };
      c->opts.compressor = level == 0 ? Compressor::kNone
                           : offers("lz4") ? Compressor::kLz4
                           : offers("zlib") && !cfg_.xpra6 ? Compressor::kZlib
                                                           : Compressor::kNone;
      c->opts.level = c->opts.compressor == Compressor::kNone ? 0 : level;
      if (!caps.has("version")) return Disconnect(c, "version error", "the client did not send its version");
      if (!cfg_.password.empty()) {
        if (caps.has("challenge_response")) return AuthFailed(c, "challenge response without a challenge");
        return SendChallenge(c, caps);
      }
      return Accept(c, caps);
    }
    // kChallenge: the hello must carry the response.
    std::string response = caps.get_string("challenge_response");
    std::string client_salt = caps.get_string("challenge_client_salt");
    if (response.empty()) return AuthFailed(c, "invalid state, challenge already sent - no response found!");
    std::string salt = c->server_salt;
    if (!client_salt.empty()) {
      auto combined = digest::CombineSalts(c->salt_digest, client_salt, c->server_salt);
      if (!combined.ok()) return AuthFailed(c, "invalid client salt: " + combined.error().message);
      salt = std::move(*combined);
    }
    if (!digest::VerifyResponse(c->digest, cfg_.password, salt, response)) return AuthFailed(c, "authentication failed");
    return Accept(c, caps);
  }

  bool AuthFailed(Conn* c, const std::string& why) {
    stats_->auth_failures.fetch_add(1, std::memory_order_relaxed);
    // xpra 3.1 disconnects with the failure message as the reason.
    return Disconnect(c, why, {});
  }

  bool SendChallenge(Conn* c, const Caps& caps) {
    std::vector<std::string> digests = caps.get_strings("digest");
    if (!caps.has("digest")) digests = {"hmac"};
    std::vector<std::string> salt_digests = caps.get_strings("salt-digest");
    if (!caps.has("salt-digest")) salt_digests = {"xor"};
    // hmac+sha256 when offered (what 3.1 clients and our relay agree on quickly), otherwise the
    // strongest hmac the client offers, as xpra's choose_digest() does; never xor.
    if (std::find(digests.begin(), digests.end(), "hmac+sha256") != digests.end()) {
      c->digest = "hmac+sha256";
    } else {
      c->digest = digest::ChooseDigest(digests, false);
    }
    if (c->digest.empty()) return AuthFailed(c, "cannot proceed without a supported digest");
    c->salt_digest = digest::ChooseDigest(salt_digests, true);
    if (c->salt_digest.empty()) return AuthFailed(c, "no supported salt digest");
    if (c->salt_digest == "xor") return AuthFailed(c, "insecure salt digest 'xor' rejected");
    c->server_salt = crypto::RandomBytes(kSaltBytes);
    Send(c, Value(List{Value("challenge"), Value::bytes(c->server_salt), Value(""), Value(std::string_view(c->digest)),
                       Value(std::string_view(c->salt_digest)), Value("password")}));
    c->state = State::kChallenge;
    return Pump(c);
  }

  bool Accept(Conn* c, const Caps& caps) {
    Value hello = *base_hello_;
    int64_t now = time(nullptr);
    hello.set("current_time", now);
    hello.set("elapsed_time", now - start_time_);
    if (caps.get_bool(kStreamKey, false)) {
      int64_t size = caps.get_int(kStreamSizeKey, 0);
      if (size <= 0) size = static_cast<int64_t>(cfg_.stream_size);
      if (size < static_cast<int64_t>(kMinStreamSize) || size > static_cast<int64_t>(kMaxStreamSize)) {
        return Disconnect(c, "protocol error", "bench.stream-size out of range [16, 16777216]: " + std::to_string(size));
      }
      double rate = cfg_.stream_rate;
      if (const Value* r = caps.get(kStreamRateKey)) {
        if (r->is_int()) rate = static_cast<double>(r->as_int());
        if (r->is_float()) rate = r->as_float().value;
      }
      if (!(rate >= 0)) rate = 0;
      c->bodies = bodies_->Get(static_cast<size_t>(size));
      if (!c->bodies) return Disconnect(c, "server error", "too many distinct stream sizes");
      c->token = static_cast<uint64_t>(caps.get_int(kStreamTokenKey, 0));
      c->rate = rate;
      c->rate_start_ns = NowNs();
      c->streaming = true;
      hello.set(kStreamKey, true);
      hello.set(kStreamSizeKey, size);
      hello.set(kStreamRateKey, rate);
    }
    Send(c, Value(List{Value("hello"), std::move(hello)}));
    c->state = State::kReady;
    stats_->authenticated.fetch_add(1, std::memory_order_relaxed);
    return Pump(c);
  }

  bool OnPing(Conn* c, const List& l) {
    if (l.size() < 2) return ProtocolError(c, "ping packet without a timestamp");
    stats_->pings.fetch_add(1, std::memory_order_relaxed);
    // xpra 3.1 server_core/_process_ping + networkstate_mixin.process_ping:
    // ("ping_echo", time_to_echo, l1, l2, l3, client_latency_ms or -1, sid)
    int64_t now = NowNs();
    if (now - load_ns_ > 1'000'000'000) {
      double la[3] = {0, 0, 0};
      if (getloadavg(la, 3) == 3) {
        for (int i = 0; i < 3; ++i) load_[i] = static_cast<int64_t>(la[i] * 1000);
      }
      load_ns_ = now;
    }
    Value sid = l.size() >= 4 ? l[3] : Value("");
    Send(c, Value(List{Value("ping_echo"), l[1], Value(load_[0]), Value(load_[1]), Value(load_[2]), Value(-1),
                       std::move(sid)}));
    return Pump(c);
  }

  // Queues stream packets within the rate and the batch size.
  void FillStream(Conn* c, int64_t now) {
    uint64_t allowed = UINT64_MAX;
    if (c->rate > 0) {
      double elapsed = static_cast<double>(now - c->rate_start_ns) / 1e9;
      auto due = static_cast<uint64_t>(elapsed * c->rate);
      auto burst = static_cast<uint64_t>(std::max(1.0, c->rate));  // at most one second behind
      if (due > c->rate_sent + burst) c->rate_sent = due - burst;
      allowed = due > c->rate_sent ? due - c->rate_sent : 0;
    }
    while (allowed > 0 && (c->out.empty() || c->out.size() < kStreamBatch)) {
      if (cfg_.fault == ServerConfig::Fault::kGap && c->next_seq == cfg_.fault_at) ++c->next_seq;
      bool corrupt = cfg_.fault == ServerConfig::Fault::kCorrupt && c->next_seq == cfg_.fault_at;
      size_t before = c->out.size();
      auto n = AppendStreamPacket(*c->bodies, c->next_seq, c->token, c->opts.encoding, &c->out);
      if (n.ok() && corrupt) {
        c->out.CorruptByte(before + kHeaderSize + c->bodies->size() / 2);
      }
      if (!n.ok()) {
        std::fprintf(stderr, "%s: cannot encode a stream packet: %s\n", kProg, n.error().message.c_str());
        c->streaming = false;
        return;
      }
      ++c->next_seq;
      ++c->rate_sent;
      --allowed;
      stats_->stream_packets.fetch_add(1, std::memory_order_relaxed);
      stats_->stream_bytes.fetch_add(c->bodies->size(), std::memory_order_relaxed);
    }
  }

  // Writes what is queued (and stream packets while the socket takes them); false if closed.
  bool Pump(Conn* c) {
    int64_t budget = kWriteBudget;
    while (true) {
      int64_t now = 0;
      if (c->streaming && c->out.size() < kStreamBatch) {
        now = NowNs();
        FillStream(c, now);
      }
      if (c->out.empty()) {
        if (c->closing) {
          Close(c);
          return false;
        }
        if (c->streaming && c->rate > 0 && c->timer_ns == 0) {
          // Next packet is due at rate_start + (rate_sent + 1) / rate.
          auto due = c->rate_start_ns + static_cast<int64_t>(static_cast<double>(c->rate_sent + 1) * 1e9 / c->rate);
          ArmTimer(c, std::max(due, now + 100'000));
        }
        return true;
      }
      int64_t w = c->out.WriteTo(c->fd.get());
      if (w < 0) {
        Close(c);
        return false;
      }
      if (!c->out.empty()) return true;  // socket full: wait for EPOLLOUT
      budget -= w;
      if (budget <= 0) {
        if (!c->queued) {
          c->queued = true;
          runnable_.push_back(c->tag);
        }
        return true;
      }
      if (!c->streaming) {
        if (c->closing) continue;
        return true;
      }
    }
  }

  const ServerConfig& cfg_;
  ServerStats* stats_;
  BodyCache* bodies_;
  const Value* base_hello_;
  const int64_t start_time_;
  UniqueFd listen_;
  UniqueFd epoll_;
  UniqueFd wake_;
  std::vector<std::unique_ptr<Conn>> conns_;  // by fd
  std::vector<uint64_t> runnable_;            // tags with write budget left over
  TimerHeap timers_;
  uint64_t generation_ = 0;
  int64_t load_[3] = {0, 0, 0};
  int64_t load_ns_ = 0;
};

Expected<UniqueFd> Listen(const Endpoint& ep, uint16_t port) {
  sockaddr_storage addr = ep.addr;
  if (addr.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&addr)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port = htons(port);
  }
  UniqueFd fd(socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return MakeError(ErrorCode::kIo, std::string("socket: ") + strerror(errno));
  int one = 1;
  if (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    return MakeError(ErrorCode::kIo, std::string("SO_REUSEADDR: ") + strerror(errno));
  }
  if (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return MakeError(ErrorCode::kIo, std::string("SO_REUSEPORT: ") + strerror(errno));
  }
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), ep.addr_len) != 0) {
    return MakeError(ErrorCode::kIo, "bind " + AddressToString(addr) + ": " + strerror(errno));
  }
  if (listen(fd.get(), 65535) != 0) return MakeError(ErrorCode::kIo, std::string("listen: ") + strerror(errno));
  return fd;
}

uint16_t BoundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: %s --bind=HOST:PORT [options]\n"
               "An xpra 3.1.3 server endpoint for load tests: handshake (optional password challenge),\n"
               "ping -> ping_echo, and a verifiable draw-packet stream for clients that ask for it.\n"
               "  --bind=HOST:PORT      address to listen on (port 0: pick a free one; printed at start)\n"
               "  --password=PW         send a challenge and require this password (hmac digests)\n"
               "  --stream-size=BYTES   payload bytes per stream packet (default 65536; a client's\n"
               "                        bench.stream-size overrides it)\n"
               "  --stream-rate=N       stream packets per second per connection, 0 = as fast as the\n"
               "                        socket takes (default 0; a client's bench.stream-rate overrides it)\n"
               "  --threads=N           worker threads (default: one per CPU)\n"
               "  --quiet               no startup line on stderr\n"
               "  --xpra6               speak as an xpra 6.x server: rencodeplus + lz4 only; a hello in\n"
               "                        rencode or bencode is refused as 6.5.3 does (unframed, close)\n"
               "  --inject-fault=KIND:N test aid: in every stream, corrupt one payload byte of packet N\n"
               "                        (KIND corrupt) or skip sequence number N (KIND gap)\n"
               "Stops on SIGTERM/SIGINT and prints a one-line summary.\n",
               kProg);
}

int Main(int argc, char** argv) {
  Args args(argc, argv, {"bind", "password", "stream-size", "stream-rate", "threads", "inject-fault"},
            {"help", "quiet", "xpra6"});
  if (args.Has("help")) {
    Usage(stdout);
    return 0;
  }
  auto fail = [](const std::string& m) {
    std::fprintf(stderr, "%s: %s\n", kProg, m.c_str());
    return 2;
  };
  if (!args.problem().empty()) return fail(args.problem() + " (see --help)");
  if (!args.positional().empty()) return fail("unexpected argument '" + args.positional()[0] + "' (see --help)");
  if (!args.Has("bind")) return fail("--bind=HOST:PORT is required (see --help)");
  ServerConfig cfg;
  auto ep = ParseHostPort(args.Get("bind"));
  if (!ep.ok()) return fail("--bind: " + ep.error().message);
  cfg.bind = *ep;
  cfg.password = args.Get("password");
  auto size = args.GetInt("stream-size", 65536);
  auto rate = args.GetDouble("stream-rate", 0);
  auto threads = args.GetInt("threads", CpuCount());
  if (!size.ok()) return fail(size.error().message);
  if (!rate.ok()) return fail(rate.error().message);
  if (!threads.ok()) return fail(threads.error().message);
  if (*size < static_cast<int64_t>(kMinStreamSize) || *size > static_cast<int64_t>(kMaxStreamSize)) {
    return fail("--stream-size must be within [16, 16777216]");
  }
  if (*rate < 0) return fail("--stream-rate must be >= 0");
  if (*threads < 1 || *threads > 256) return fail("--threads must be within [1, 256]");
  cfg.stream_size = static_cast<size_t>(*size);
  cfg.stream_rate = *rate;
  cfg.threads = static_cast<int>(*threads);
  cfg.quiet = args.Has("quiet");
  cfg.xpra6 = args.Has("xpra6");
  if (args.Has("inject-fault")) {
    std::string f = args.Get("inject-fault");
    size_t colon = f.find(':');
    std::string kind = f.substr(0, colon);
    long long at = colon == std::string::npos ? 0 : std::atoll(f.c_str() + colon + 1);
    if ((kind != "corrupt" && kind != "gap") || at < 1) return fail("--inject-fault wants corrupt:N or gap:N (N >= 1)");
    cfg.fault = kind == "corrupt" ? ServerConfig::Fault::kCorrupt : ServerConfig::Fault::kGap;
    cfg.fault_at = static_cast<uint64_t>(at);
  }

  signal(SIGPIPE, SIG_IGN);
  uint64_t fd_limit = RaiseFdLimit();

  // The first listener picks the port (if 0); the others share it through SO_REUSEPORT.
  std::vector<UniqueFd> listeners;
  uint16_t port = cfg.bind.port;
  for (int i = 0; i < cfg.threads; ++i) {
    auto l = Listen(cfg.bind, port);
    if (!l.ok()) return fail(l.error().message);
    if (i == 0) port = BoundPort(l->get());
    listeners.push_back(std::move(*l));
  }

  ServerStats stats;
  BodyCache bodies;
  int64_t start_wall = time(nullptr);
  std::string uuid;
  for (unsigned char ch : crypto::RandomBytes(16)) {
    static const char* hex = "0123456789abcdef";
    uuid += hex[ch >> 4];
    uuid += hex[ch & 15];
  }
  Value base = BaseHello(LocalHostname(), uuid, start_wall);
  if (cfg.xpra6) Xpra6Hello(&base);
  if (!bodies.Get(cfg.stream_size)) return fail("cannot prepare the stream bodies");

  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < cfg.threads; ++i) {
    auto w = std::make_unique<Worker>(cfg, &stats, &bodies, &base, start_wall);
    if (Status s = w->Init(std::move(listeners[static_cast<size_t>(i)])); !s.ok()) return fail(s.error().message);
    g_wake_fds.push_back(w->wake_fd());
    workers.push_back(std::move(w));
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::string where = cfg.bind.host.find(':') != std::string::npos ? "[" + cfg.bind.host + "]" : cfg.bind.host;
  std::printf("%s: listening on %s:%u\n", kProg, where.c_str(), port);
  std::fflush(stdout);
  if (!cfg.quiet) {
    std::fprintf(stderr, "%s: threads=%d password=%s stream-size=%zu stream-rate=%g fd-limit=%llu\n", kProg,
                 cfg.threads, cfg.password.empty() ? "no" : "yes", cfg.stream_size, cfg.stream_rate,
                 static_cast<unsigned long long>(fd_limit));
  }

  int64_t t0 = NowNs();
  std::vector<std::thread> threads_run;
  // Worker threads must not take the signals: the main thread does (it only waits).
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  for (auto& w : workers) threads_run.emplace_back([&w] { w->Run(); });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  while (!g_stop.load()) usleep(100 * 1000);
  uint64_t active_at_stop = stats.active.load();
  for (auto& t : threads_run) t.join();
  double secs = static_cast<double>(NowNs() - t0) / 1e9;
  std::printf(
      "%s: stopped after %.1f s: %llu connections (%llu open at exit), %llu hellos answered, %llu auth failures, "
      "%llu protocol errors, %llu pings, %llu stream packets (%.1f MB)\n",
      kProg, secs, static_cast<unsigned long long>(stats.accepted.load()),
      static_cast<unsigned long long>(active_at_stop), static_cast<unsigned long long>(stats.authenticated.load()),
      static_cast<unsigned long long>(stats.auth_failures.load()),
      static_cast<unsigned long long>(stats.protocol_errors.load()), static_cast<unsigned long long>(stats.pings.load()),
      static_cast<unsigned long long>(stats.stream_packets.load()), static_cast<double>(stats.stream_bytes.load()) / 1e6);
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace xr::bench

int main(int argc, char** argv) { return xr::bench::Main(argc, argv); }
