// xpra-relay-bench: a load client that speaks xpra 3.1 as a real client does (hello with the
// usual capabilities, challenge -> hmac response, server hello) against any xpra endpoint, in
// four modes: handshake (sessions/s), latency (ping -> ping_echo round trips), throughput
// (verified bench stream from xpra-synthetic-server) and idle (held connections, RSS per
// connection of a given process). One epoll loop per thread; thousands of connections.
#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/openssl_errors.h"
#include "bench/bench_common.h"
#include "codec/cipher.h"
#include "codec/digest.h"
#include "codec/frame_reader.h"
#include "codec/header.h"
#include "codec/packet.h"
#include "codec/value.h"
#include "codec/websocket.h"

namespace xr::bench {
namespace {

constexpr const char* kProg = "xpra-relay-bench";
constexpr size_t kReadBuf = 256 * 1024;
constexpr int64_t kReadBudget = 1 << 20;       // bytes per connection per turn before yielding
constexpr int64_t kCloseWaitNs = 2'000'000'000;  // after our disconnect packet, wait this long for EOF
constexpr int64_t kStopGraceNs = 3'000'000'000;  // longest a worker spends closing at the end

enum class Mode { kHandshake, kLatency, kThroughput, kIdle, kTlsHandshake };

// Modes whose connections loop (connect, handshake, close, again) rather than being held.
bool Looping(Mode m) { return m == Mode::kHandshake || m == Mode::kTlsHandshake; }

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kHandshake: return "handshake";
    case Mode::kTlsHandshake: return "tls-handshake";
    case Mode::kLatency: return "latency";
    case Mode::kThroughput: return "throughput";
    case Mode::kIdle: return "idle";
  }
  return "?";
}

struct Options {
  Mode mode = Mode::kHandshake;
  Endpoint ep;
  int connections = 10;
  double duration = 10;
  double rate = 0;        // latency: pings/s per connection; throughput: packets/s per connection
  bool rate_given = false;
  int64_t size = 0;       // throughput: payload bytes per packet (0 = the server's default)
  std::string json;
  bool quiet = false;
  int threads = 1;
  int pid = 0;
  int64_t max_errors = 1;
  double timeout = 30;    // seconds from connect to the server hello
  int ramp = 200;         // connections in handshake at once (held modes)
  std::string aes_key;    // --encryption=AES: key material from --encryption-keyfile; empty = plain
  double pings = 0;       // throughput/idle: a ping every S seconds once attached (0: none)
  int recv_buffer = 0;    // SO_RCVBUF of each connection (0: the kernel's default)
  int read_pause_ms = 0;  // once attached: one read per connection, then this pause
  // ssl:// and wss:// (opt.ep.tls())
  bool tls_resume = false;       // resume each loop's previous session (tickets)
  bool xpra6 = false;            // --xpra6: speak as an xpra 6.x client (rencodeplus + lz4 only)
  std::string tls_ciphersuites;  // TLS 1.3 suites offered (empty: OpenSSL's default)
  int tls_version = 0;           // 0: TLS 1.2 or 1.3; else TLS1_2_VERSION / TLS1_3_VERSION only
  std::string tls_ca;            // --ssl-ca-certs: verify the server against it (else no verification)
  std::string tls_server_name;   // --ssl-server-hostname: SNI (and the name verified)
};

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct SslSessionFree {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};

// A loop's session ticket (--tls-resume): the newest one the server sent on its connection.
struct TicketSlot {
  std::unique_ptr<SSL_SESSION, SslSessionFree> session;
  uint64_t received = 0;
};

// OpenSSL's new-session callback: the ticket goes to the loop whose SSL carries it.
int OnNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* slot = static_cast<TicketSlot*>(SSL_get_app_data(ssl));
  if (slot == nullptr) return 0;
  slot->session.reset(session);
  ++slot->received;
  return 1;  // we keep the reference
}

// The client context of ssl:// and wss:// runs: TLS 1.2+ (or one version), the suites asked
// for, verification only with --ssl-ca-certs, a client-side ticket store for --tls-resume.
Expected<std::unique_ptr<SSL_CTX, SslCtxFree>> MakeTlsContext(const Options& opt) {
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return MakeError(ErrorCode::kInternal, "SSL_CTX_new: " + TakeOpenSslErrors());
  SSL_CTX_set_min_proto_version(ctx.get(), opt.tls_version ? opt.tls_version : TLS1_2_VERSION);
  if (opt.tls_version) SSL_CTX_set_max_proto_version(ctx.get(), opt.tls_version);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (!opt.tls_ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx.get(), opt.tls_ciphersuites.c_str()) != 1) {
    return MakeError(ErrorCode::kMalformed, "--tls-ciphersuites: none usable in '" + opt.tls_ciphersuites + "'");
  }
  if (!opt.tls_ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), opt.tls_ca.c_str(), nullptr) != 1) {
      return MakeError(ErrorCode::kIo, "cannot load --ssl-ca-certs " + opt.tls_ca + ": " + TakeOpenSslErrors());
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  }
  if (opt.tls_resume) {
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx.get(), OnNewSession);
  } else {
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  }
  return ctx;
}

enum Phase : int { kRamp = 0, kMeasure = 1, kStop = 2 };

// What every worker shares with the main thread.
struct Shared {
  explicit Shared(const Options& o) : opt(o) {}
  const Options& opt;
  std::atomic<int> phase{kRamp};
  std::atomic<uint64_t> attached_now{0};  // connections attached right now
  std::atomic<uint64_t> errors{0};
  std::mutex mu;
  std::map<std::string, uint64_t> reasons;  // error text -> count
  std::vector<std::string> order;          // first occurrence order
  SSL_CTX* tls_ctx = nullptr;              // ssl://, wss://
  std::string tls_seen;                    // version and cipher of the first TLS handshake (under mu)

  // Records one error with its reason.
  void AddError(const std::string& why) {
    errors.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu);
    auto [it, inserted] = reasons.emplace(why, 0);
    ++it->second;
    if (inserted) order.push_back(why);
  }
};

// Counters written by one worker, read by the main thread (relaxed).
struct Counters {
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> attaches{0};       // server hellos received
  std::atomic<uint64_t> sessions{0};       // handshake mode: complete sessions in the window
  std::atomic<uint64_t> pings{0};          // round trips measured in the window
  std::atomic<uint64_t> packets{0};        // stream packets verified (any time)
  std::atomic<uint64_t> payload_bytes{0};  // stream payload bytes verified in the window
  std::atomic<uint64_t> window_packets{0};
  std::atomic<uint64_t> bytes_in{0};       // wire bytes read (any time)
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> challenges{0};
  std::atomic<uint64_t> in_flight{0};      // connections between connect and server hello
  std::atomic<uint64_t> tls_resumed{0};    // tls-handshake mode: resumed handshakes in the window
};

// ---------------------------------------------------------------- hello

Value BaseHello(const Options& opt, const std::string& uuid, const std::string& hostname) {
  Value caps{Dict{}};
  auto set = [&](std::string_view k, Value v) { caps.set(k, std::move(v)); };
  // What an xpra 3.1.3 client's make_hello_base() sends (network caps first).
  set("digest", TextList(ClientDigests()));
  set("salt-digest", TextList(ClientSaltDigests()));
  set("compressors", TextList({"lz4", "zlib"}));
  set("encoders", TextList({"rencode", "bencode"}));
  set("rencode", true);
  set("rencode.version", "1.0.6");
  set("bencode", true);
  set("yaml", false);
  set("lz4", true);
  set("zlib", true);
  set("lzo", false);
  set("brotli", false);
  set("version", kXpraVersion);
  set("build.version", kXpraVersion);
  set("encoding.generic", true);
  set("namespace", true);
  set("websocket.multi-packet", true);
  set("hostname", std::string_view(hostname));
  set("uuid", std::string_view(uuid));
  set("username", std::string_view(opt.ep.username.empty() ? LocalUsername() : opt.ep.username));
  set("name", "xpra-relay-bench");
  set("client_type", "xpra-relay-bench");
  set("platform", "linux");
  set("compression_level", 1);
  set("file-transfer", false);
  set("printing", false);
  set("open-files", false);
  set("open-url", false);
  if (!opt.ep.display.empty()) set("display", std::string_view(opt.ep.display));
  if (opt.xpra6) {
    // What a 6.x client offers instead: rencodeplus and lz4 only, version major.minor.
    caps.erase_if([](std::string_view k) {
      return k == "rencode" || k == "rencode.version" || k == "bencode" || k == "zlib" || k == "yaml" ||
             k == "lzo" || k == "brotli";
    });
    set("encoders", TextList({"rencodeplus"}));
    set("compressors", TextList({"lz4"}));
    set("rencodeplus", true);
    set("lz4", Value(Dict{{Value(""), Value(true)}}));
    set("version", "6.5");
  }
  return caps;
}

// The rest of a full hello (make_hello()): a client without windows that shares the session.
void AddFullHello(Value* caps, const Options& opt, uint64_t token) {
  auto set = [&](std::string_view k, Value v) { caps->set(k, std::move(v)); };
  set("randr_notify", false);
  set("windows", false);
  set("ui_client", true);
  set("share", true);
  set("keyboard", false);
  set("mouse.show", false);
  set("clipboard", false);
  set("notifications", false);
  set("cursors", false);
  set("bell", false);
  set("system_tray", false);
  set("sound.receive", false);
  set("sound.send", false);
  set("webcam", false);
  set("encodings", TextList({"rgb24", "rgb32"}));
  set("encodings.core", TextList({"rgb24", "rgb32"}));
  set("desktop_size", Value(List{Value(1920), Value(1080)}));
  set("screen_sizes", Value(List{}));
  if (opt.mode == Mode::kThroughput) {
    set(kStreamKey, true);
    if (opt.size > 0) set(kStreamSizeKey, opt.size);
    if (opt.rate_given) {
      if (opt.rate == std::floor(opt.rate)) {
        set(kStreamRateKey, static_cast<int64_t>(opt.rate));
      } else {
        set(kStreamRateKey, opt.rate);  // a float: fewer than one packet per second is fine
      }
    }
    set(kStreamTokenKey, static_cast<int64_t>(token));
  }
}

// ---------------------------------------------------------------- worker

class Worker {
 public:
  // A worker driving `slots` connections (or connection loops).
  Worker(int index, Shared* shared, size_t slots)
      : shared_(shared), opt_(shared->opt), rng_(std::random_device{}() ^ (uint64_t(index) << 32)) {
    conns_.resize(slots);
    tickets_.resize(slots);
    for (size_t s = 0; s < slots; ++s) pending_start_.push_back(s);
    hostname_ = LocalHostname();
  }

  // Creates the epoll set and the wake eventfd.
  Status Init() {
    epoll_ = UniqueFd(epoll_create1(EPOLL_CLOEXEC));
    wake_ = UniqueFd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (epoll_.get() < 0 || wake_.get() < 0) return MakeError(ErrorCode::kIo, std::string("epoll/eventfd: ") + strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeTag;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) return MakeError(ErrorCode::kIo, "epoll_ctl wake");
    return Status::Ok();
  }

  // Interrupts epoll_wait (phase changes).
  void Wake() {
    uint64_t one = 1;
    ssize_t r = write(wake_.get(), &one, sizeof one);
    (void)r;
  }

  // Live counters (read by the main thread while running).
  Counters& counters() { return counters_; }
  // Samples; read only after Run() returned.
  const Histogram& attach_hist() const { return attach_hist_; }
  const Histogram& rtt_hist() const { return rtt_hist_; }

  // Drives the connections until the phase is kStop and every connection is closed.
  void Run();

 private:
  static constexpr uint64_t kWakeTag = ~uint64_t{0};
  static constexpr int kTimerDeadline = 0;  // handshake or close-wait deadline
  static constexpr int kTimerPing = 1;
  static constexpr int kTimerKeepalive = 2;  // --pings
  static constexpr int kTimerRead = 3;       // --read-pause-ms: reading resumes

  enum class State { kIdle, kConnecting, kHelloSent, kChallengeAnswered, kAttached, kClosing, kDone };
  // A handshake under xpra's: TLS, waiting for a session ticket (tls-handshake --tls-resume),
  // the WebSocket upgrade.
  enum class Lower : uint8_t { kNone, kTls, kTicket, kWsUpgrade };

  // Receive side: our own frame parser so stream payloads are checked in place (no copies).
  struct Conn {
    State state = State::kIdle;
    UniqueFd fd;
    uint64_t gen = 0;
    int64_t connect_ns = 0;
    int64_t deadline_ns = 0;
    std::unique_ptr<PacketDecoder> decoder;
    EncodeOptions send_opts;
    std::string out;
    size_t out_pos = 0;
    bool queued = false;
    std::string uuid;  // one per connection, as each real client has its own
    // frame parsing
    char hdr[kHeaderSize];
    size_t hdr_len = 0;
    FrameHeader cur{};
    size_t left = 0;            // payload bytes still to come for cur
    bool fast = false;          // cur is a stream chunk checked in place
    std::string payload;        // other frames' payloads
    uint32_t fast_crc = 0;
    size_t fast_pos = 0;
    char trailer[kTrailerSize];
    bool chunk_ready = false;   // a checked stream chunk awaits its draw packet
    uint64_t chunk_size = 0;
    // ping
    bool ping_out = false;
    int64_t ping_sent_ns = 0;
    int64_t ping_value = 0;
    int64_t next_ping_ns = 0;
    int64_t next_keepalive_ns = 0;
    // --read-pause-ms
    bool read_paused = false;
    int64_t read_resume_ns = 0;
    // stream
    bool stream = false;
    uint64_t token = 0;
    uint64_t expected_seq = 1;
    uint64_t stream_size = 0;
    // AES-CBC (--encryption=AES), as xpra 3.1's client: each hello we send carries fresh receive
    // parameters (dec), the server's challenge and hello carry the ones we send with (enc).
    std::unique_ptr<crypto::Encryptor> enc;                     // client -> server
    std::unique_ptr<crypto::Decryptor> dec;                     // server -> client; also set on the decoder
    std::vector<std::string> server_padding_options{"legacy"};  // xpra's DEFAULT_PADDING until told
    bool fast_aes = false;  // cur is an encrypted stream chunk: decrypted into plain, then checked
    std::string plain;      // reused decryption buffer of fast_aes chunks
    // Layers under xpra (ssl://, ws://, wss://): the one whose handshake is in progress, if any.
    Lower lower = Lower::kNone;
    std::unique_ptr<SSL, SslFree> ssl;
    uint64_t tickets_before = 0;      // tickets_[slot].received when this connection began
    std::unique_ptr<ws::Decoder> ws;  // set once the server answered the upgrade
    std::string ws_head;              // the server's answer to the upgrade, so far
    uint8_t ws_mask[4] = {0, 0, 0, 0};
    std::string io_error;             // why the last TLS read or write failed
  };

  static std::string RandomHex(size_t bytes) {
    static const char* hex = "0123456789abcdef";
    std::string s;
    for (unsigned char c : crypto::RandomBytes(bytes)) {
      s += hex[c >> 4];
      s += hex[c & 15];
    }
    return s;
  }

  uint64_t Tag(size_t slot) const { return (conns_[slot].gen << 24) | slot; }
  uint64_t TimerId(size_t slot, int kind) const { return (Tag(slot) << 2) | static_cast<uint64_t>(kind); }

  Conn* Lookup(uint64_t tag, size_t* slot) {
    *slot = static_cast<size_t>(tag & 0xffffff);
    if (*slot >= conns_.size()) return nullptr;
    Conn& c = conns_[*slot];
    if (c.state == State::kIdle || c.state == State::kDone || Tag(*slot) != tag) return nullptr;
    return &c;
  }

  bool Measuring() const { return shared_->phase.load(std::memory_order_relaxed) == kMeasure; }
  bool Stopping() const { return shared_->phase.load(std::memory_order_relaxed) == kStop; }

  void Fail(size_t slot, const std::string& why);
  void CloseSlot(size_t slot);
  void StartConnect(size_t slot);
  void OnConnected(size_t slot);
  void OnEvent(size_t slot, uint32_t events, char* buf);
  bool ReadSome(size_t slot, char* buf);
  bool Consume(size_t slot, const char* p, size_t n);
  bool HandlePacket(size_t slot, const Value& packet);
  bool OnChallenge(size_t slot, const List& l);
  bool OnServerHello(size_t slot, const Value& caps);
  bool OnDraw(size_t slot, const Value& packet);
  bool AddCipherCaps(size_t slot, Value* hello);
  bool SetServerCipher(size_t slot, const Caps& caps, const char* where);
  bool CheckStreamChunk(size_t slot, const char* data, size_t size);
  bool OnPingEcho(size_t slot, const List& l);
  void SendPing(size_t slot);
  void StartKeepalive(size_t slot, int64_t now);
  bool Send(size_t slot, const Value& packet);
  bool Flush(size_t slot);
  void BeginClose(size_t slot);
  void OnTimer(size_t slot, int kind, int64_t deadline);
  void SessionEnded(size_t slot);
  void Retire(size_t slot);
  void SendHello(size_t slot);
  bool StartTls(size_t slot);
  void StartWsUpgrade(size_t slot);
  bool AdvanceLower(size_t slot, char* buf);
  bool TlsDone(size_t slot);
  bool ReadWsAnswer(size_t slot, char* buf);
  bool ConsumeWs(size_t slot, const char* p, size_t n);
  ssize_t RawRead(Conn& c, char* buf, size_t n);
  ssize_t RawWrite(Conn& c, const char* data, size_t n);
  // SSL_read/SSL_write's result `r` (<= 0) in read(2)'s conventions (see RawRead); a close_notify
  // is the end of the stream (0) when `reading`, an error when writing.
  static ssize_t TlsIoResult(Conn& c, int r, bool reading);
  static std::string IoError(const Conn& c) { return c.io_error.empty() ? strerror(errno) : c.io_error; }

  Shared* shared_;
  const Options& opt_;
  std::mt19937_64 rng_;
  std::string hostname_;
  UniqueFd epoll_;
  UniqueFd wake_;
  std::vector<Conn> conns_;
  TimerHeap timers_;
  std::vector<size_t> runnable_;  // slots with unread input left over
  Counters counters_;
  Histogram attach_hist_;
  Histogram rtt_hist_;
  std::deque<size_t> pending_start_;  // idle slots to (re)connect
  size_t live_ = 0;  // slots not idle/done
  std::vector<TicketSlot> tickets_;  // per slot: survives reconnects (--tls-resume)
  std::string ws_app_;               // reused: WebSocket payload decoded from one read
};

void Worker::Fail(size_t slot, const std::string& why) {
  Conn& c = conns_[slot];
  if (c.state == State::kIdle || c.state == State::kDone) return;
  if (!Stopping() || c.state != State::kClosing) shared_->AddError(why);
  CloseSlot(slot);
  Retire(slot);
}

// A closed slot: connects again later unless the run is stopping (or has failed enough).
void Worker::Retire(size_t slot) {
  if (Stopping() || shared_->errors.load(std::memory_order_relaxed) >= static_cast<uint64_t>(opt_.max_errors)) {
    conns_[slot].state = State::kDone;
    return;
  }
  conns_[slot].state = State::kIdle;
  pending_start_.push_back(slot);
}

void Worker::CloseSlot(size_t slot) {
  Conn& c = conns_[slot];
  if (c.state == State::kConnecting || c.state == State::kHelloSent || c.state == State::kChallengeAnswered) {
    counters_.in_flight.fetch_sub(1, std::memory_order_relaxed);
  }
  if (c.state == State::kAttached || c.state == State::kClosing) {
    shared_->attached_now.fetch_sub(1, std::memory_order_relaxed);
  }
  if (c.state != State::kIdle && c.state != State::kDone) --live_;
  if (c.ssl) SSL_shutdown(c.ssl.get());  // close_notify, one try (never waits)
  c.ssl.reset();
  c.ws.reset();
  c.lower = Lower::kNone;
  c.fd.reset();
  c.decoder.reset();
  c.out.clear();
  c.out.shrink_to_fit();
  c.payload.clear();
  c.payload.shrink_to_fit();
  c.out_pos = 0;
  c.state = State::kIdle;
  ++c.gen;
}

void Worker::StartConnect(size_t slot) {
  Conn& c = conns_[slot];
  // Reset everything but the generation.
  uint64_t gen = c.gen;
  c = Conn();
  c.gen = gen + 1;
  c.connect_ns = NowNs();
  c.decoder = std::make_unique<PacketDecoder>(FrameLimits{kHardMaxPayload, 3});
  c.send_opts.encoding = opt_.xpra6 ? Encoding::kRencodePlus : Encoding::kRencode;
  c.send_opts.flush = opt_.xpra6;
  c.send_opts.compressor = Compressor::kLz4;
  c.send_opts.level = 1;
  c.token = rng_() >> 1;
  int fd = socket(opt_.ep.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  counters_.connects.fetch_add(1, std::memory_order_relaxed);
  counters_.in_flight.fetch_add(1, std::memory_order_relaxed);
  c.state = State::kConnecting;
  ++live_;
  if (fd < 0) {
    Fail(slot, std::string("socket: ") + strerror(errno));
    return;
  }
  c.fd = UniqueFd(fd);
  SetNoDelay(fd);
  if (opt_.recv_buffer > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opt_.recv_buffer, sizeof opt_.recv_buffer);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = Tag(slot);
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    Fail(slot, std::string("epoll_ctl: ") + strerror(errno));
    return;
  }
  c.deadline_ns = c.connect_ns + static_cast<int64_t>(opt_.timeout * 1e9);
  timers_.Push(c.deadline_ns, TimerId(slot, kTimerDeadline), 0);
  int rc = connect(fd, reinterpret_cast<const sockaddr*>(&opt_.ep.addr), opt_.ep.addr_len);
  if (rc != 0 && errno != EINPROGRESS) {
    Fail(slot, "connect to " + AddressToString(opt_.ep.addr) + ": " + strerror(errno));
    return;
  }
  // Completion (or failure) is reported by EPOLLOUT / EPOLLERR.
}

void Worker::OnConnected(size_t slot) {
  Conn& c = conns_[slot];
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    Fail(slot, "connect to " + AddressToString(opt_.ep.addr) + ": " + strerror(err));
    return;
  }
  c.state = State::kHelloSent;
  if (opt_.ep.tls()) {
    StartTls(slot);
  } else if (opt_.ep.websocket()) {
    StartWsUpgrade(slot);
  } else {
    SendHello(slot);
  }
}

// The first hello (or the challenge request), once every layer under xpra is up.
void Worker::SendHello(size_t slot) {
  Conn& c = conns_[slot];
  c.uuid = RandomHex(16);
  Value hello = BaseHello(opt_, c.uuid, hostname_);
  if (!opt_.ep.password.empty()) {
    // As xpra's client: ask for the challenge first, send the full hello with the response.
    hello.set("challenge", true);
  } else {
    AddFullHello(&hello, opt_, c.token);
  }
  if (!AddCipherCaps(slot, &hello)) return;
  Send(slot, Value(List{Value("hello"), std::move(hello)}));
}

// ssl://, wss://: the TLS client handshake over the connected socket (non-blocking; epoll
// events drive it on through AdvanceLower). False if the slot was closed.
bool Worker::StartTls(size_t slot) {
  Conn& c = conns_[slot];
  c.ssl.reset(SSL_new(shared_->tls_ctx));
  if (!c.ssl || SSL_set_fd(c.ssl.get(), c.fd.get()) != 1) {
    Fail(slot, "TLS: cannot set up the connection: " + TakeOpenSslErrors());
    return false;
  }
  if (!opt_.tls_server_name.empty()) {
    SSL_set_tlsext_host_name(c.ssl.get(), opt_.tls_server_name.c_str());
    if (!opt_.tls_ca.empty()) SSL_set1_host(c.ssl.get(), opt_.tls_server_name.c_str());
  }
  TicketSlot& t = tickets_[slot];
  SSL_set_app_data(c.ssl.get(), &t);
  c.tickets_before = t.received;
  if (opt_.tls_resume && t.session) SSL_set_session(c.ssl.get(), t.session.get());
  c.lower = Lower::kTls;
  return AdvanceLower(slot, nullptr);
}

// ws://, wss://: the upgrade request as xpra's client sends it (subprotocol "binary").
void Worker::StartWsUpgrade(size_t slot) {
  Conn& c = conns_[slot];
  const std::string key = crypto::RandomBytes(16);
  static const char* b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string key64;
  for (size_t i = 0; i < key.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(key[i]) << 16;
    if (i + 1 < key.size()) v |= static_cast<uint8_t>(key[i + 1]) << 8;
    if (i + 2 < key.size()) v |= static_cast<uint8_t>(key[i + 2]);
    key64 += b64[(v >> 18) & 63];
    key64 += b64[(v >> 12) & 63];
    key64 += i + 1 < key.size() ? b64[(v >> 6) & 63] : '=';
    key64 += i + 2 < key.size() ? b64[v & 63] : '=';
  }
  const std::string mask = crypto::RandomBytes(4);
  std::memcpy(c.ws_mask, mask.data(), 4);
  c.lower = Lower::kWsUpgrade;
  c.out += "GET / HTTP/1.1\r\nHost: " + opt_.ep.host + ":" + std::to_string(opt_.ep.port) +
           "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key64 +
           "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n";
  Flush(slot);
}

// Drives the handshake in progress under xpra's; when it completes, the next layer starts
// (the upgrade, the hello) or, in tls-handshake mode, the loop ends. False if the slot was closed.
bool Worker::AdvanceLower(size_t slot, char* buf) {
  Conn& c = conns_[slot];
  if (c.lower == Lower::kWsUpgrade) return buf == nullptr || ReadWsAnswer(slot, buf);
  if (c.lower == Lower::kTicket) {
    // The server sends its tickets after the handshake: read until the socket is empty.
    char sink[4096];
    while (true) {
      ERR_clear_error();
      int r = SSL_read(c.ssl.get(), sink, sizeof sink);
      if (r > 0) continue;
      int e = SSL_get_error(c.ssl.get(), r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
      Fail(slot, "TLS: the server closed before sending a session ticket");
      return false;
    }
    if (tickets_[slot].received != c.tickets_before) return TlsDone(slot);
    return true;
  }
  if (c.lower != Lower::kTls) return true;
  ERR_clear_error();
  int r = SSL_connect(c.ssl.get());
  if (r != 1) {
    int e = SSL_get_error(c.ssl.get(), r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
    std::string why = TakeOpenSslErrors();
    if (why.empty()) why = e == SSL_ERROR_SYSCALL && errno != 0 ? strerror(errno) : "connection closed by the server";
    Fail(slot, "TLS handshake failed: " + why);
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (shared_->tls_seen.empty()) {
      shared_->tls_seen = std::string(SSL_get_version(c.ssl.get())) + " " + SSL_get_cipher_name(c.ssl.get());
    }
  }
  if (opt_.mode == Mode::kTlsHandshake) {
    if (SSL_session_reused(c.ssl.get()) && Measuring()) counters_.tls_resumed.fetch_add(1, std::memory_order_relaxed);
    if (opt_.tls_resume && tickets_[slot].received == c.tickets_before) {
      c.lower = Lower::kTicket;
      return AdvanceLower(slot, buf);
    }
    return TlsDone(slot);
  }
  if (opt_.ep.websocket()) {
    StartWsUpgrade(slot);
    return conns_[slot].state != State::kIdle && conns_[slot].state != State::kDone;
  }
  c.lower = Lower::kNone;
  SendHello(slot);
  return conns_[slot].state != State::kIdle && conns_[slot].state != State::kDone;
}

// tls-handshake mode: one TLS handshake (and, with --tls-resume, its ticket) complete: counted,
// closed, and the loop connects again.
bool Worker::TlsDone(size_t slot) {
  if (Measuring()) counters_.sessions.fetch_add(1, std::memory_order_relaxed);
  CloseSlot(slot);
  Retire(slot);
  return false;
}

// Reads the server's answer to the upgrade (at most 16 KiB): it must be 101; WebSocket frames
// follow it. False if the slot was closed.
bool Worker::ReadWsAnswer(size_t slot, char* buf) {
  constexpr size_t kMaxHead = 16 * 1024;
  while (true) {
    Conn& c = conns_[slot];
    ssize_t r = RawRead(c, buf, kReadBuf);
    if (r == 0) {
      Fail(slot, "connection closed by the server during the WebSocket upgrade");
      return false;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      Fail(slot, "read: " + IoError(c));
      return false;
    }
    c.ws_head.append(buf, static_cast<size_t>(r));
    size_t end = c.ws_head.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (c.ws_head.size() > kMaxHead) {
        Fail(slot, "WebSocket upgrade: the answer's head is over 16 KiB");
        return false;
      }
      continue;
    }
    if (!c.ws_head.starts_with("HTTP/1.1 101")) {
      Fail(slot, "WebSocket upgrade refused: " + c.ws_head.substr(0, std::min<size_t>(c.ws_head.find("\r\n"), 80)));
      return false;
    }
    std::string rest = c.ws_head.substr(end + 4);
    c.ws_head = std::string();
    // Server frames are unmasked; the bounds are the bench's own (the server is trusted here).
    c.ws = std::make_unique<ws::Decoder>(ws::DecoderLimits{kHardMaxPayload + 4096, kHardMaxPayload + 4096,
                                                          ws::MaskPolicy::kAny});
    c.lower = Lower::kNone;
    uint64_t gen = c.gen;
    SendHello(slot);
    if (conns_[slot].gen != gen) return false;
    if (!rest.empty() && !ConsumeWs(slot, rest.data(), rest.size())) return false;
    return ReadSome(slot, buf);
  }
}

// WebSocket frames from the server: payload to Consume, pings answered, a close ends the
// connection. False if the slot was closed.
bool Worker::ConsumeWs(size_t slot, const char* p, size_t n) {
  Conn& c = conns_[slot];
  ws_app_.clear();
  std::vector<ws::ControlFrame> control;
  size_t used = 0;
  ws::DecodeStatus st = c.ws->Feed(std::string_view(p, n), &ws_app_, &control, &used);
  if (st == ws::DecodeStatus::kError) {
    Fail(slot, "WebSocket protocol error from the server: " + c.ws->error_reason());
    return false;
  }
  for (const auto& f : control) {
    if (f.opcode == ws::Opcode::kPing) {
      if (c.out_pos == c.out.size()) {
        c.out.clear();
        c.out_pos = 0;
      }
      ws::AppendMaskedFrame(ws::Opcode::kPong, f.payload, c.ws_mask, &c.out);
      if (!Flush(slot)) return false;
    }
  }
  uint64_t gen = c.gen;
  if (!ws_app_.empty() && !Consume(slot, ws_app_.data(), ws_app_.size())) return false;
  if (conns_[slot].gen != gen) return false;
  if (st == ws::DecodeStatus::kClosed) {
    Conn& k = conns_[slot];
    if (k.state == State::kClosing) {
      SessionEnded(slot);
    } else {
      const ws::ControlFrame& f = control.back();
      Fail(slot, "the server closed the WebSocket (code " + std::to_string(f.close_code) +
                     (f.close_reason.empty() ? "" : ": " + f.close_reason) + ")");
    }
    return false;
  }
  return true;
}

// read(2), or SSL_read on TLS connections with read(2)'s conventions: 0 at the end of the
// stream, -1 with errno EAGAIN when the socket is empty, -1 with EPROTO and c.io_error set on
// a TLS error.
ssize_t Worker::RawRead(Conn& c, char* buf, size_t n) {
  if (!c.ssl) return read(c.fd.get(), buf, n);
  ERR_clear_error();
  int r = SSL_read(c.ssl.get(), buf, static_cast<int>(std::min<size_t>(n, INT32_MAX)));
  return r > 0 ? r : TlsIoResult(c, r, true);
}

// send(2), or SSL_write (partial writes on), with the same conventions as RawRead.
ssize_t Worker::RawWrite(Conn& c, const char* data, size_t n) {
  if (!c.ssl) return send(c.fd.get(), data, n, MSG_NOSIGNAL);
  ERR_clear_error();
  int r = SSL_write(c.ssl.get(), data, static_cast<int>(std::min<size_t>(n, INT32_MAX)));
  return r > 0 ? r : TlsIoResult(c, r, false);
}

ssize_t Worker::TlsIoResult(Conn& c, int r, bool reading) {
  int e = SSL_get_error(c.ssl.get(), r);
  if (reading && e == SSL_ERROR_ZERO_RETURN) return 0;
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    errno = EAGAIN;
    return -1;
  }
  if (e == SSL_ERROR_SYSCALL && errno != 0) return -1;
  c.io_error = "TLS: " + TakeOpenSslErrors();
  errno = EPROTO;
  return -1;
}

// --encryption=AES: fresh receive parameters in every hello we send (xpra 3.1 client_base.py
// make_hello_base): the decryptor is re-keyed with them before the hello leaves.
bool Worker::AddCipherCaps(size_t slot, Value* hello) {
  if (opt_.aes_key.empty()) return true;
  Conn& c = conns_[slot];
  auto padding = crypto::ChoosePadding(c.server_padding_options);
  if (!padding.ok()) {
    Fail(slot, "encryption error: no supported padding in " + std::to_string(c.server_padding_options.size()) +
                   " offered by the server");
    return false;
  }
  const std::string iv = crypto::RandomIv();
  const std::string key_salt = crypto::RandomBytes(64);  // xpra's get_salt()
  auto key = crypto::DeriveKey(opt_.aes_key, key_salt, crypto::kDefaultIterations);
  if (!key.ok()) {
    Fail(slot, "encryption error: " + key.error().message);
    return false;
  }
  auto dec = crypto::Decryptor::Create(*key, iv, *padding);
  if (!dec.ok()) {
    Fail(slot, "encryption error: " + dec.error().message);
    return false;
  }
  c.dec = std::move(*dec);
  c.decoder->set_decryptor(c.dec.get());
  hello->set("cipher", "AES");
  hello->set("cipher.iv", std::string_view(iv));
  hello->set("cipher.key_salt", Value::bytes(key_salt));
  hello->set("cipher.key_stretch_iterations", static_cast<int64_t>(crypto::kDefaultIterations));
  hello->set("cipher.padding", crypto::PaddingName(*padding));
  hello->set("cipher.padding.options", TextList({"PKCS#7", "legacy"}));  // xpra's PADDING_OPTIONS
  return true;
}

// The server's parameters for what we send (challenge auth_caps, then its hello), as xpra's
// set_server_encryption(): the encryptor is re-keyed; its padding options steer our next hello.
bool Worker::SetServerCipher(size_t slot, const Caps& caps, const char* where) {
  Conn& c = conns_[slot];
  std::string cipher = caps.get_string("cipher");
  std::string iv = caps.get_string("cipher.iv");
  if (cipher.empty() || iv.empty()) {
    Fail(slot, std::string("encryption error: the server does not use encryption (no cipher in its ") + where + ")");
    return false;
  }
  if (cipher != "AES") {
    Fail(slot, "encryption error: unsupported server cipher '" + cipher + "'");
    return false;
  }
  auto padding = crypto::ParsePadding(caps.get_string("cipher.padding", "legacy"));
  if (!padding.ok()) {
    Fail(slot, "encryption error: unsupported server cipher padding '" + caps.get_string("cipher.padding") + "'");
    return false;
  }
  auto options = caps.get_strings("cipher.padding.options");
  c.server_padding_options = options.empty() ? std::vector<std::string>{"legacy"} : options;
  auto key = crypto::DeriveKey(opt_.aes_key, caps.get_string("cipher.key_salt"),
                               static_cast<int>(caps.get_int("cipher.key_stretch_iterations", 0)));
  if (!key.ok()) {
    Fail(slot, "encryption error: server cipher parameters: " + key.error().message);
    return false;
  }
  auto enc = crypto::Encryptor::Create(*key, iv, *padding);
  if (!enc.ok()) {
    Fail(slot, "encryption error: server cipher parameters: " + enc.error().message);
    return false;
  }
  c.enc = std::move(*enc);
  return true;
}

bool Worker::Send(size_t slot, const Value& packet) {
  Conn& c = conns_[slot];
  if (c.out_pos == c.out.size()) {
    c.out.clear();
    c.out_pos = 0;
  }
  const size_t start = c.out.size();
  if (Status s = EncodePacket(packet, c.send_opts, c.enc.get(), &c.out); !s.ok()) {
    Fail(slot, "cannot encode a packet: " + s.error().message);
    return false;
  }
  if (c.ws) {
    // One masked binary frame per packet, as a client sends it.
    std::string frame;
    ws::AppendMaskedFrame(ws::Opcode::kBinary, std::string_view(c.out).substr(start), c.ws_mask, &frame);
    c.out.resize(start);
    c.out += frame;
  }
  return Flush(slot);
}

bool Worker::Flush(size_t slot) {
  Conn& c = conns_[slot];
  while (c.out_pos < c.out.size()) {
    ssize_t w = RawWrite(c, c.out.data() + c.out_pos, c.out.size() - c.out_pos);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;  // EPOLLOUT resumes
      if (c.state == State::kClosing) {
        SessionEnded(slot);
        return false;
      }
      Fail(slot, "send: " + IoError(c));
      return false;
    }
    c.out_pos += static_cast<size_t>(w);
    counters_.bytes_out.fetch_add(static_cast<uint64_t>(w), std::memory_order_relaxed);
  }
  c.out.clear();
  c.out_pos = 0;
  return true;
}

void Worker::OnEvent(size_t slot, uint32_t events, char* buf) {
  Conn& c = conns_[slot];
  if (c.state == State::kConnecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    OnConnected(slot);
    if (c.state != State::kHelloSent) return;
  }
  if (events & EPOLLOUT) {
    if (!Flush(slot)) return;
  }
  if (c.lower != Lower::kNone) {
    // Any event may move a TLS handshake on (it reads and writes); the upgrade's answer is read.
    if (!AdvanceLower(slot, buf) || conns_[slot].lower != Lower::kNone) return;
    if (c.ws) return;  // ReadWsAnswer read on
  }
  if (c.read_paused) return;  // the timer resumes reading (data waits in the socket)
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ReadSome(slot, buf);
}

// Reads until EAGAIN or the budget runs out; false if the slot was closed.
bool Worker::ReadSome(size_t slot, char* buf) {
  int64_t budget = kReadBudget;
  uint64_t gen = conns_[slot].gen;
  while (budget > 0) {
    Conn& c = conns_[slot];
    ssize_t r = RawRead(c, buf, kReadBuf);
    if (r > 0) {
      counters_.bytes_in.fetch_add(static_cast<uint64_t>(r), std::memory_order_relaxed);
      budget -= r;
      if (c.ws ? !ConsumeWs(slot, buf, static_cast<size_t>(r)) : !Consume(slot, buf, static_cast<size_t>(r))) {
        return false;
      }
      if (conns_[slot].gen != gen || conns_[slot].state == State::kIdle || conns_[slot].state == State::kDone) return false;
      if (opt_.read_pause_ms > 0 && conns_[slot].state == State::kAttached) {
        // A slow reader: one read, then a pause; the sender meets a full socket buffer.
        Conn& p = conns_[slot];
        p.read_paused = true;
        p.read_resume_ns = NowNs() + int64_t{opt_.read_pause_ms} * 1'000'000;
        timers_.Push(p.read_resume_ns, TimerId(slot, kTimerRead), 0);
        return true;
      }
      continue;
    }
    if (r == 0) {
      if (c.state == State::kClosing) {
        SessionEnded(slot);
      } else {
        const char* what = c.state == State::kAttached ? "attached" : "during the handshake";
        Fail(slot, std::string("connection closed by the server (") + what + ")");
      }
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    if (c.state == State::kClosing) {
      SessionEnded(slot);
    } else {
      Fail(slot, "read: " + IoError(c));
    }
    return false;
  }
  Conn& c = conns_[slot];
  if (!c.queued) {
    c.queued = true;
    runnable_.push_back(slot);
  }
  return true;
}

// Splits bytes into frames; stream chunks are checked in place, the rest decoded.
bool Worker::Consume(size_t slot, const char* p, size_t n) {
  while (n > 0) {
    Conn& c = conns_[slot];
    if (c.hdr_len < kHeaderSize) {
      size_t take = std::min(n, kHeaderSize - c.hdr_len);
      std::memcpy(c.hdr + c.hdr_len, p, take);
      c.hdr_len += take;
      p += take;
      n -= take;
      if (c.hdr_len < kHeaderSize) return true;
      auto h = DecodeHeader(std::string_view(c.hdr, kHeaderSize));
      if (!h.ok()) {
        Fail(slot, "protocol error: " + h.error().message);
        return false;
      }
      c.cur = *h;
      c.left = c.cur.wire_payload_size();
      if (c.left > kHardMaxPayload) {
        Fail(slot, "protocol error: frame of " + std::to_string(c.left) + " bytes");
        return false;
      }
      c.fast = c.stream && c.cur.index == kDrawDataIndex && c.cur.level == 0 && !c.cur.encrypted();
      // An encrypted stream chunk is gathered, decrypted into a reused buffer and checked there
      // (the same Decryptor as the decoder's, so the CBC chain stays in frame order).
      c.fast_aes = c.stream && c.dec && c.cur.index == kDrawDataIndex && c.cur.level == 0 && c.cur.encrypted();
      if (c.fast || c.fast_aes) {
        if (c.chunk_ready) {
          Fail(slot, "stream error: two data chunks for one draw packet");
          return false;
        }
        if (c.cur.payload_size < kTrailerSize) {
          Fail(slot, "stream error: data chunk of " + std::to_string(c.cur.payload_size) + " bytes");
          return false;
        }
      }
      if (c.fast) {
        c.fast_crc = 0;
        c.fast_pos = 0;
      } else {
        c.payload.clear();
        c.payload.reserve(c.left);
      }
    }
    size_t take = std::min(n, c.left);
    if (c.fast) {
      c.fast_crc = Crc32c(c.fast_crc, p, take);
      size_t size = c.cur.payload_size;
      size_t trailer_from = size - kTrailerSize;
      // Copy whatever part of [trailer_from, size) this piece covers.
      size_t lo = std::max(c.fast_pos, trailer_from);
      size_t hi = std::min(c.fast_pos + take, size);
      if (lo < hi) std::memcpy(c.trailer + (lo - trailer_from), p + (lo - c.fast_pos), hi - lo);
      c.fast_pos += take;
    } else {
      c.payload.append(p, take);
    }
    p += take;
    n -= take;
    c.left -= take;
    if (c.left > 0) continue;
    c.hdr_len = 0;
    if (c.fast) {
      c.chunk_ready = true;
      c.chunk_size = c.cur.payload_size;
      continue;
    }
    if (c.fast_aes) {
      c.plain.clear();
      if (Status s = c.dec->Decrypt(c.payload, c.cur.payload_size, &c.plain); !s.ok()) {
        Fail(slot, "protocol error: stream chunk: " + s.error().message);
        return false;
      }
      c.fast_crc = Crc32c(0, c.plain.data(), c.plain.size());
      std::memcpy(c.trailer, c.plain.data() + c.plain.size() - kTrailerSize, kTrailerSize);
      c.chunk_ready = true;
      c.chunk_size = c.cur.payload_size;
      continue;
    }
    RawFrame frame{c.cur, std::move(c.payload)};
    c.payload = std::string();
    auto packet = c.decoder->Push(std::move(frame));
    if (!packet.ok()) {
      Fail(slot, "protocol error: " + packet.error().message);
      return false;
    }
    if (!packet->has_value()) continue;
    uint64_t gen = c.gen;
    if (!HandlePacket(slot, **packet)) return false;
    if (conns_[slot].gen != gen) return false;
  }
  return true;
}

bool Worker::HandlePacket(size_t slot, const Value& packet) {
  Conn& c = conns_[slot];
  const List& l = packet.as_list();
  std::string_view type = l[0].as_string();
  if (type == "disconnect") {
    std::string why;
    for (size_t i = 1; i < l.size(); ++i) {
      if (auto s = l[i].to_string()) why += (why.empty() ? "" : ": ") + std::string(*s);
    }
    if (c.state == State::kClosing) {
      // The answer to ours (a real xpra server replies and may keep its socket open for a
      // while): the session is over.
      SessionEnded(slot);
      return false;
    }
    std::string where = c.state == State::kAttached ? "" : " during the handshake";
    Fail(slot, "server disconnected" + where + ": " + (why.empty() ? "no reason given" : why));
    return false;
  }
  if (type == "ping") {
    if (l.size() < 2) return true;
    // The client's answer (client/mixins/network_state.py _process_ping).
    Value sid = l.size() >= 4 ? l[3] : Value("");
    return Send(slot, Value(List{Value("ping_echo"), l[1], Value(0), Value(0), Value(0), Value(-1), std::move(sid)}));
  }
  switch (c.state) {
    case State::kHelloSent:
    case State::kChallengeAnswered:
      if (type == "challenge") return OnChallenge(slot, l);
      if (type == "hello") {
        if (l.size() < 2 || !l[1].is_dict()) {
          Fail(slot, "protocol error: hello without capabilities");
          return false;
        }
        return OnServerHello(slot, l[1]);
      }
      Fail(slot, "protocol error: '" + std::string(type) + "' packet before the server hello");
      return false;
    case State::kAttached:
      if (type == "ping_echo") return OnPingEcho(slot, l);
      if (type == "draw" && c.stream) return OnDraw(slot, packet);
      return true;  // whatever else a real server sends a client
    default:
      return true;
  }
}

bool Worker::OnChallenge(size_t slot, const List& l) {
  Conn& c = conns_[slot];
  counters_.challenges.fetch_add(1, std::memory_order_relaxed);
  if (c.state == State::kChallengeAnswered) {
    Fail(slot, "authentication failed: the server sent a second challenge (wrong password?)");
    return false;
  }
  if (opt_.ep.password.empty()) {
    Fail(slot, "authentication required: the server sent a challenge and the URL has no password");
    return false;
  }
  if (l.size() < 4 || !l[1].is_string() || !l[3].is_string()) {
    Fail(slot, "authentication error: malformed challenge packet");
    return false;
  }
  std::string server_salt = l[1].as_string();
  std::string digest(l[3].as_string().substr(0, l[3].as_string().find(':')));
  std::string salt_digest = l.size() >= 5 && l[4].is_string() ? l[4].as_string() : "xor";
  // As xpra 3.1's client: no password XORed in the clear, no legacy salt digests.
  if (digest == "xor" || digest == "des") {
    Fail(slot, "authentication error: the server requested the '" + digest +
                   "' digest, refusing to send the password without encryption");
    return false;
  }
  if (salt_digest == "xor" || salt_digest == "des") {
    Fail(slot, "authentication error: the server uses the legacy salt digest '" + salt_digest + "'");
    return false;
  }
  if (!opt_.aes_key.empty()) {
    // As xpra's send_challenge_reply(): the challenge's auth caps key what we send from now on.
    if (l.size() < 3 || !l[2].is_dict()) {
      Fail(slot, "encryption error: the server does not use encryption (no cipher in its challenge)");
      return false;
    }
    if (!SetServerCipher(slot, Caps(l[2]), "challenge")) return false;
  }
  std::string client_salt = crypto::RandomBytes(32);
  auto salt = digest::CombineSalts(salt_digest, client_salt, server_salt);
  if (!salt.ok()) {
    Fail(slot, "authentication error: salt digest '" + salt_digest + "': " + salt.error().message);
    return false;
  }
  auto response = digest::ComputeResponse(digest, opt_.ep.password, *salt);
  if (!response.ok()) {
    Fail(slot, "authentication error: digest '" + digest + "': " + response.error().message);
    return false;
  }
  Value hello = BaseHello(opt_, c.uuid, hostname_);
  AddFullHello(&hello, opt_, c.token);
  hello.set("challenge_response", std::string_view(*response));
  size_t pad = std::max<size_t>(32, 512 - std::min<size_t>(512, response->size()));
  hello.set("challenge_padding", Value::bytes(crypto::RandomBytes(pad)));
  hello.set("challenge_client_salt", Value::bytes(client_salt));
  if (!AddCipherCaps(slot, &hello)) return false;
  c.state = State::kChallengeAnswered;
  return Send(slot, Value(List{Value("hello"), std::move(hello)}));
}

bool Worker::OnServerHello(size_t slot, const Value& caps_value) {
  Conn& c = conns_[slot];
  Caps caps(caps_value);
  // The server's hello carries new parameters for what we send (parse_encryption_capabilities).
  if (!opt_.aes_key.empty() && !SetServerCipher(slot, caps, "hello")) return false;
  int64_t now = NowNs();
  counters_.in_flight.fetch_sub(1, std::memory_order_relaxed);
  c.state = State::kAttached;
  shared_->attached_now.fetch_add(1, std::memory_order_relaxed);
  counters_.attaches.fetch_add(1, std::memory_order_relaxed);
  if (opt_.mode != Mode::kHandshake || Measuring()) attach_hist_.Record(now - c.connect_ns);
  c.deadline_ns = 0;
  // Encoder and compressor follow the server's hello, as xpra's client does.
  c.send_opts.encoding = opt_.xpra6                       ? Encoding::kRencodePlus
                         : caps.get_bool("rencode", false) ? Encoding::kRencode
                                                           : Encoding::kBencode;
  auto compressors = caps.get_strings("compressors");
  auto has = [&](const char* n) {
    return caps.get_bool(n, false) || std::find(compressors.begin(), compressors.end(), n) != compressors.end();
  };
  c.send_opts.compressor = has("lz4") ? Compressor::kLz4 : has("zlib") ? Compressor::kZlib : Compressor::kNone;
  c.send_opts.level = c.send_opts.compressor == Compressor::kNone ? 0 : 1;
  switch (opt_.mode) {
    case Mode::kHandshake:
    case Mode::kTlsHandshake:  // (never gets this far: the loop ends after TLS)
      BeginClose(slot);
      return conns_[slot].state != State::kIdle && conns_[slot].state != State::kDone;
    case Mode::kLatency: {
      if (opt_.rate > 0) {
        // Spread the first pings over one period.
        int64_t period = static_cast<int64_t>(1e9 / opt_.rate);
        c.next_ping_ns = now + static_cast<int64_t>(rng_() % static_cast<uint64_t>(std::max<int64_t>(period, 1)));
        timers_.Push(c.next_ping_ns, TimerId(slot, kTimerPing), 0);
        return true;
      }
      SendPing(slot);
      return conns_[slot].state == State::kAttached;
    }
    case Mode::kThroughput: {
      if (!caps.get_bool(kStreamKey, false)) {
        Fail(slot, "the server does not stream (no bench.stream in its hello): throughput mode needs "
                   "xpra-synthetic-server behind the endpoint");
        return false;
      }
      int64_t size = caps.get_int(kStreamSizeKey, 0);
      if (size < static_cast<int64_t>(kMinStreamSize) || size > static_cast<int64_t>(kMaxStreamSize) ||
          (opt_.size > 0 && size != opt_.size)) {
        Fail(slot, "stream error: the server announced bench.stream-size " + std::to_string(size));
        return false;
      }
      c.stream = true;
      c.stream_size = static_cast<uint64_t>(size);
      StartKeepalive(slot, now);
      return true;
    }
    case Mode::kIdle:
      StartKeepalive(slot, now);
      return true;
  }
  return true;
}

void Worker::StartKeepalive(size_t slot, int64_t now) {
  if (opt_.pings <= 0) return;
  Conn& c = conns_[slot];
  c.next_keepalive_ns = now + static_cast<int64_t>(opt_.pings * 1e9);
  timers_.Push(c.next_keepalive_ns, TimerId(slot, kTimerKeepalive), 0);
}

bool Worker::OnDraw(size_t slot, const Value& packet) {
  Conn& c = conns_[slot];
  auto info = ParseDrawPacket(packet);
  if (!info.ok()) {
    Fail(slot, "stream error: " + info.error().message);
    return false;
  }
  uint32_t crc = 0;
  uint64_t size = 0;
  uint64_t tseq = 0, ttoken = 0;
  if (info->inline_data != nullptr) {
    const std::string& d = info->inline_data->as_string();
    if (c.chunk_ready || d.size() < kTrailerSize) {
      Fail(slot, "stream error: unexpected inline draw data");
      return false;
    }
    crc = Crc32c(0, d.data(), d.size());
    size = d.size();
    ParseTrailer(d.data() + d.size() - kTrailerSize, &tseq, &ttoken);
  } else {
    if (!c.chunk_ready) {
      Fail(slot, "stream error: draw packet " + std::to_string(info->seq) + " without its data");
      return false;
    }
    crc = c.fast_crc;
    size = c.chunk_size;
    ParseTrailer(c.trailer, &tseq, &ttoken);
    c.chunk_ready = false;
  }
  std::string what;
  if (info->seq != c.expected_seq) {
    what = "gap: expected packet " + std::to_string(c.expected_seq) + ", got " + std::to_string(info->seq);
  } else if (size != info->size || size != c.stream_size) {
    what = "packet " + std::to_string(info->seq) + " has " + std::to_string(size) + " bytes, expected " +
           std::to_string(c.stream_size);
  } else if (crc != info->checksum) {
    what = "packet " + std::to_string(info->seq) + " is corrupt (checksum mismatch)";
  } else if (tseq != info->seq || ttoken != c.token) {
    what = "packet " + std::to_string(info->seq) + " carries the payload of another packet or connection";
  }
  if (!what.empty()) {
    Fail(slot, "stream error: " + what);
    return false;
  }
  ++c.expected_seq;
  counters_.packets.fetch_add(1, std::memory_order_relaxed);
  if (Measuring()) {
    counters_.payload_bytes.fetch_add(size, std::memory_order_relaxed);
    counters_.window_packets.fetch_add(1, std::memory_order_relaxed);
  }
  return true;
}

void Worker::SendPing(size_t slot) {
  Conn& c = conns_[slot];
  int64_t now = NowNs();
  // As xpra 3.1's client: ["ping", monotonic milliseconds]; we time it in nanoseconds locally.
  c.ping_value = now / 1'000'000;
  c.ping_sent_ns = now;
  c.ping_out = true;
  Send(slot, Value(List{Value("ping"), Value(c.ping_value)}));
}

bool Worker::OnPingEcho(size_t slot, const List& l) {
  Conn& c = conns_[slot];
  int64_t now = NowNs();
  auto echoed = l.size() >= 2 ? l[1].to_int() : std::nullopt;
  if (opt_.mode != Mode::kLatency) return true;
  if (!c.ping_out || !echoed || *echoed != c.ping_value) {
    Fail(slot, "protocol error: ping_echo for a ping we did not send");
    return false;
  }
  c.ping_out = false;
  if (Measuring()) {
    rtt_hist_.Record(now - c.ping_sent_ns);
    counters_.pings.fetch_add(1, std::memory_order_relaxed);
  }
  if (Stopping()) return true;
  if (opt_.rate <= 0) {
    SendPing(slot);
    return conns_[slot].state == State::kAttached;
  }
  int64_t period = static_cast<int64_t>(1e9 / opt_.rate);
  c.next_ping_ns = std::max(c.ping_sent_ns + period, now);
  if (c.next_ping_ns <= now) {
    SendPing(slot);
    return conns_[slot].state == State::kAttached;
  }
  timers_.Push(c.next_ping_ns, TimerId(slot, kTimerPing), 0);
  return true;
}

// Sends our disconnect and waits for the server to close first (no TIME_WAIT on our side).
void Worker::BeginClose(size_t slot) {
  Conn& c = conns_[slot];
  if (c.state != State::kAttached) {
    CloseSlot(slot);
    Retire(slot);
    return;
  }
  c.state = State::kClosing;
  c.stream = false;  // what still arrives is drained, not checked
  c.deadline_ns = NowNs() + kCloseWaitNs;
  timers_.Push(c.deadline_ns, TimerId(slot, kTimerDeadline), 0);
  Send(slot, Value(List{Value("disconnect"), Value("client exit")}));
}

void Worker::SessionEnded(size_t slot) {
  if (opt_.mode == Mode::kHandshake && Measuring()) counters_.sessions.fetch_add(1, std::memory_order_relaxed);
  CloseSlot(slot);
  if (Looping(opt_.mode)) {
    Retire(slot);  // loop again
  } else {
    conns_[slot].state = State::kDone;
  }
}

void Worker::OnTimer(size_t slot, int kind, int64_t deadline) {
  Conn& c = conns_[slot];
  if (kind == kTimerDeadline) {
    if (c.deadline_ns != deadline) return;
    if (c.state == State::kClosing) {
      SessionEnded(slot);  // the server did not close; we do
      return;
    }
    if (c.state == State::kConnecting || c.state == State::kHelloSent || c.state == State::kChallengeAnswered) {
      const char* where = c.state == State::kConnecting ? "connecting" : "waiting for the server hello";
      Fail(slot, "timeout " + std::string(where) + " after " + std::to_string(static_cast<int>(opt_.timeout)) + " s");
    }
    return;
  }
  if (kind == kTimerPing && c.state == State::kAttached && c.next_ping_ns == deadline && !c.ping_out && !Stopping()) {
    SendPing(slot);
    return;
  }
  if (kind == kTimerKeepalive && c.state == State::kAttached && c.next_keepalive_ns == deadline && !Stopping()) {
    // As xpra's client (its `pings` option): ["ping", monotonic ms]; the echo is not timed.
    c.next_keepalive_ns = deadline + static_cast<int64_t>(opt_.pings * 1e9);
    timers_.Push(c.next_keepalive_ns, TimerId(slot, kTimerKeepalive), 0);
    Send(slot, Value(List{Value("ping"), Value(NowNs() / 1'000'000)}));
    return;
  }
  if (kind == kTimerRead && c.read_paused && c.read_resume_ns == deadline) {
    c.read_paused = false;
    if (!c.queued) {
      c.queued = true;
      runnable_.push_back(slot);
    }
  }
}

void Worker::Run() {
  std::vector<char> buf(kReadBuf);
  epoll_event events[256];
  const size_t per_worker_ramp = static_cast<size_t>(
      std::max(1, (opt_.ramp + shared_->opt.threads - 1) / std::max(1, shared_->opt.threads)));
  bool stopping = false;
  int64_t stop_deadline = 0;
  while (true) {
    int64_t now = NowNs();
    int phase = shared_->phase.load(std::memory_order_relaxed);
    if (phase == kStop && !stopping) {
      stopping = true;
      stop_deadline = now + kStopGraceNs;
      for (size_t s = 0; s < conns_.size(); ++s) {
        State st = conns_[s].state;
        if (st == State::kIdle || st == State::kDone || st == State::kClosing) continue;
        BeginClose(s);
      }
    }
    if (stopping) {
      if (live_ == 0) break;
      if (now >= stop_deadline) {
        for (size_t s = 0; s < conns_.size(); ++s) {
          if (conns_[s].state != State::kIdle && conns_[s].state != State::kDone) {
            CloseSlot(s);
            conns_[s].state = State::kDone;
          }
        }
        break;
      }
    } else {
      // Start connections: handshake mode keeps every slot looping; the held modes ramp up
      // (and reconnect a failed connection when --max-errors lets the run go on).
      size_t starts = pending_start_.size();  // a slot failing at once waits for the next turn
      while (starts-- > 0 &&
             (Looping(opt_.mode) || counters_.in_flight.load(std::memory_order_relaxed) < per_worker_ramp)) {
        size_t s = pending_start_.front();
        pending_start_.pop_front();
        if (conns_[s].state == State::kIdle) StartConnect(s);
      }
    }
    int timeout = 100;
    if (!runnable_.empty()) {
      timeout = 0;
    } else if (auto next = timers_.NextDeadline()) {
      timeout = static_cast<int>(std::clamp<int64_t>((*next - now + 999'999) / 1'000'000, 0, 100));
    }
    int n = epoll_wait(epoll_.get(), events, 256, timeout);
    if (n < 0 && errno != EINTR) {
      shared_->AddError(std::string("epoll_wait: ") + strerror(errno));
      break;
    }
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) {
        uint64_t v;
        ssize_t r = read(wake_.get(), &v, sizeof v);
        (void)r;
        continue;
      }
      size_t slot = 0;
      if (Lookup(tag, &slot) == nullptr) continue;
      OnEvent(slot, events[i].events, buf.data());
    }
    now = NowNs();
    while (auto t = timers_.PopDue(now)) {
      uint64_t tag = t->id >> 2;
      size_t slot = 0;
      if (Lookup(tag, &slot) == nullptr) continue;
      OnTimer(slot, static_cast<int>(t->id & 3), t->deadline_ns);
    }
    std::vector<size_t> run;
    run.swap(runnable_);
    for (size_t slot : run) {
      Conn& c = conns_[slot];
      c.queued = false;
      if (c.state == State::kIdle || c.state == State::kDone) continue;
      ReadSome(slot, buf.data());
    }
  }
}

// ---------------------------------------------------------------- main

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: %s MODE tcp|ssl|ws|wss://[USER[:PASS]@]HOST[:PORT]/[DISPLAY] [options]\n"
               "Load client speaking xpra 3.1 (hello, challenge/response, ping) to any xpra endpoint.\n"
               "Modes:\n"
               "  handshake   N loops of connect, hello, challenge/response, server hello, disconnect:\n"
               "              sessions/s and time-to-attached percentiles\n"
               "  latency     N held connections sending ping, timing each ping_echo (p50/p99/p999 us)\n"
               "  throughput  N held connections asking xpra-synthetic-server for its bench stream:\n"
               "              aggregate MB/s, every packet verified (sequence, CRC32C, owner)\n"
               "  idle        N held connections for the duration; with --pid, RSS per connection\n"
               "  tls-handshake  N loops of connect, TLS handshake, close (ssl:// only): handshakes/s;\n"
               "              with --tls-resume each loop resumes its previous session by ticket\n"
               "Options:\n"
               "  --connections=N   connections / loops (default 10)\n"
               "  --duration=S      seconds to measure (default 10); held modes start the clock once\n"
               "                    every connection is attached\n"
               "  --rate=R          latency: pings/s per connection (default 0: next ping on each echo);\n"
               "                    throughput: packets/s per connection asked of the server\n"
               "  --size=B          throughput: payload bytes per packet (default: the server's)\n"
               "  --json FILE       write every figure as JSON\n"
               "  --quiet           no live progress on stderr\n"
               "  --threads=N       worker threads (default: one per CPU)\n"
               "  --pid=PID         sample this process's VmRSS before and after (idle mode reports\n"
               "                    bytes per connection) and its CPU time over the measured window\n"
               "                    (pid_cpu_cores; throughput: MB/s per core of that process)\n"
               "  --max-errors=N    stop the run after N errors (default 1); the exit code is 1 on any\n"
               "  --timeout=S       connect-to-server-hello limit per connection (default 30)\n"
               "  --ramp=N          held modes: connections in handshake at once (default 200)\n"
               "  --xpra6           speak as an xpra 6.x client: rencodeplus + lz4 only (a 3.1 server\n"
               "                    then needs the relay's bridge)\n"
               "  --encryption=AES  AES-CBC as xpra 3.1's client (the first hello plain, then both\n"
               "                    directions encrypted); needs --encryption-keyfile\n"
               "  --encryption-keyfile=FILE  the AES key material (newlines around it are ignored)\n"
               "  --pings=S         throughput, idle: send a ping every S seconds once attached, as xpra's\n"
               "                    client does (default: 5 in throughput mode, as xpra; 0 in idle mode)\n"
               "  --recv-buffer=B   SO_RCVBUF of each connection, bytes (default: the kernel's)\n"
               "  --read-pause-ms=M once attached, read once per connection and pause M ms: a slow reader\n"
               "  --tls-resume      tls-handshake: wait for the server's ticket, resume with it next time\n"
               "  --tls-ciphersuites=S  TLS 1.3 suites to offer (OpenSSL syntax; default OpenSSL's)\n"
               "  --tls-version=V   1.2 or 1.3 only (default: either)\n"
               "  --ssl-ca-certs=F  verify the server's certificate against F (default: no verification)\n"
               "  --ssl-server-hostname=H  SNI name sent (and verified with --ssl-ca-certs)\n"
               "Exit codes: 0 ok, 1 errors (protocol, authentication, stream corruption), 2 usage.\n",
               kProg);
}

std::string Fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Prints a usage error; the exit code for it.
int UsageError(const std::string& m) {
  std::fprintf(stderr, "%s: %s\nrun '%s --help' for usage\n", kProg, m.c_str(), kProg);
  return 2;
}

Expected<Mode> ParseMode(const std::string& mode) {
  if (mode == "handshake") return Mode::kHandshake;
  if (mode == "tls-handshake") return Mode::kTlsHandshake;
  if (mode == "latency") return Mode::kLatency;
  if (mode == "throughput") return Mode::kThroughput;
  if (mode == "idle") return Mode::kIdle;
  return MakeError(ErrorCode::kMalformed, "unknown mode '" + mode + "' (handshake, tls-handshake, latency, throughput, idle)");
}

// --encryption=AES --encryption-keyfile=FILE: the key, stripped as xpra's get_encryption_key().
Expected<std::string> ReadAesKey(const Args& args) {
  const std::string cipher = args.Get("encryption");
  if (cipher != "AES") return MakeError(ErrorCode::kMalformed, "--encryption must be AES (xpra 3.1's only cipher)");
  const std::string keyfile = args.Get("encryption-keyfile");
  if (keyfile.empty()) return MakeError(ErrorCode::kMalformed, "--encryption=AES needs --encryption-keyfile=FILE");
  std::ifstream in(keyfile, std::ios::binary);
  if (!in) return MakeError(ErrorCode::kIo, "cannot read the encryption keyfile " + keyfile);
  std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // As xpra's get_encryption_key(): key.strip(b"\n\r").
  const size_t first = key.find_first_not_of("\r\n");
  key = first == std::string::npos ? std::string() : key.substr(first, key.find_last_not_of("\r\n") - first + 1);
  if (key.empty()) return MakeError(ErrorCode::kMalformed, "the encryption keyfile " + keyfile + " is empty");
  return key;
}

// The numeric options, read and range-checked into *opt.
Status ParseNumbers(const Args& args, Options* opt) {
  auto conns = args.GetInt("connections", 10);
  auto duration = args.GetDouble("duration", 10);
  auto rate = args.GetDouble("rate", 0);
  auto size = args.GetInt("size", 0);
  auto threads = args.GetInt("threads", CpuCount());
  auto pid = args.GetInt("pid", 0);
  auto max_errors = args.GetInt("max-errors", 1);
  auto timeout = args.GetDouble("timeout", 30);
  auto ramp = args.GetInt("ramp", 200);
  auto keepalive = args.GetDouble("pings", opt->mode == Mode::kThroughput ? 5 : 0);
  auto recv_buffer = args.GetInt("recv-buffer", 0);
  auto read_pause = args.GetInt("read-pause-ms", 0);
  for (const Error* e : {conns.ok() ? nullptr : &conns.error(), duration.ok() ? nullptr : &duration.error(),
                         rate.ok() ? nullptr : &rate.error(), size.ok() ? nullptr : &size.error(),
                         threads.ok() ? nullptr : &threads.error(), pid.ok() ? nullptr : &pid.error(),
                         max_errors.ok() ? nullptr : &max_errors.error(), timeout.ok() ? nullptr : &timeout.error(),
                         ramp.ok() ? nullptr : &ramp.error(), keepalive.ok() ? nullptr : &keepalive.error(),
                         recv_buffer.ok() ? nullptr : &recv_buffer.error(),
                         read_pause.ok() ? nullptr : &read_pause.error()}) {
    if (e != nullptr) return *e;
  }
  auto bad = [](const char* m) { return MakeError(ErrorCode::kMalformed, m); };
  if (*conns < 1 || *conns > 1'000'000) return bad("--connections must be within [1, 1000000]");
  if (*duration <= 0) return bad("--duration must be > 0");
  if (*rate < 0) return bad("--rate must be >= 0");
  if (*size != 0 && (*size < static_cast<int64_t>(kMinStreamSize) || *size > static_cast<int64_t>(kMaxStreamSize))) {
    return bad("--size must be within [16, 16777216]");
  }
  if (*threads < 1 || *threads > 256) return bad("--threads must be within [1, 256]");
  if (*max_errors < 1) return bad("--max-errors must be >= 1");
  if (*timeout <= 0) return bad("--timeout must be > 0");
  if (*ramp < 1) return bad("--ramp must be >= 1");
  if (*keepalive < 0) return bad("--pings must be >= 0");
  if (*recv_buffer < 0 || *recv_buffer > (1 << 30)) return bad("--recv-buffer must be within [0, 1 GiB]");
  if (*read_pause < 0 || *read_pause > 60000) return bad("--read-pause-ms must be within [0, 60000]");
  opt->connections = static_cast<int>(*conns);
  opt->duration = *duration;
  opt->rate = *rate;
  opt->size = *size;
  opt->threads = static_cast<int>(std::min<int64_t>(*threads, opt->connections));
  opt->pid = static_cast<int>(*pid);
  opt->max_errors = *max_errors;
  opt->timeout = *timeout;
  opt->ramp = static_cast<int>(*ramp);
  opt->pings = *keepalive;
  opt->recv_buffer = static_cast<int>(*recv_buffer);
  opt->read_pause_ms = static_cast<int>(*read_pause);
  return Status::Ok();
}

// ssl://, wss:// and tls-handshake options into *opt.
Status ParseTlsOptions(const Args& args, Options* opt) {
  auto bad = [](const std::string& m) { return MakeError(ErrorCode::kMalformed, m); };
  const bool tls_option = args.Has("tls-resume") || args.Has("tls-ciphersuites") || args.Has("tls-version") ||
                          args.Has("ssl-ca-certs") || args.Has("ssl-server-hostname");
  if (tls_option && !opt->ep.tls()) return bad("TLS options need an ssl:// or wss:// URL");
  if (opt->mode == Mode::kTlsHandshake && (!opt->ep.tls() || opt->ep.websocket())) {
    return bad("tls-handshake mode needs an ssl:// URL");
  }
  if (args.Has("tls-resume") && opt->mode != Mode::kTlsHandshake) return bad("--tls-resume is for tls-handshake mode");
  if (!opt->aes_key.empty() && opt->ep.scheme != "tcp") return bad("--encryption=AES is for tcp:// URLs");
  opt->tls_resume = args.Has("tls-resume");
  opt->tls_ciphersuites = args.Get("tls-ciphersuites");
  opt->tls_ca = args.Get("ssl-ca-certs");
  opt->tls_server_name = args.Get("ssl-server-hostname");
  const std::string v = args.Get("tls-version");
  if (v == "1.2") {
    opt->tls_version = TLS1_2_VERSION;
  } else if (v == "1.3") {
    opt->tls_version = TLS1_3_VERSION;
  } else if (!v.empty()) {
    return bad("--tls-version must be 1.2 or 1.3");
  }
  return Status::Ok();
}

// The command line into *opt; -1 to go on, else the exit code (0 after --help).
int ParseOptions(int argc, char** argv, Options* opt) {
  Args args(argc, argv,
            {"connections", "duration", "rate", "size", "json", "threads", "pid", "max-errors", "timeout", "ramp",
             "encryption", "encryption-keyfile", "pings", "recv-buffer", "read-pause-ms", "tls-ciphersuites",
             "tls-version", "ssl-ca-certs", "ssl-server-hostname"},
            {"help", "quiet", "tls-resume", "xpra6"});
  if (args.Has("help")) {
    Usage(stdout);
    return 0;
  }
  if (!args.problem().empty()) return UsageError(args.problem());
  if (args.positional().size() != 2) return UsageError("expected MODE and URL");
  auto mode = ParseMode(args.positional()[0]);
  if (!mode.ok()) return UsageError(mode.error().message);
  opt->mode = *mode;
  auto ep = ParseUrl(args.positional()[1]);
  if (!ep.ok()) return UsageError(ep.error().message);
  opt->ep = *ep;
  if (Status s = ParseNumbers(args, opt); !s.ok()) return UsageError(s.error().message);
  opt->rate_given = args.Has("rate");
  opt->json = args.Get("json");
  opt->quiet = args.Has("quiet");
  opt->xpra6 = args.Has("xpra6");
  if (args.Has("encryption") || args.Has("encryption-keyfile")) {
    auto key = ReadAesKey(args);
    if (!key.ok()) return UsageError(key.error().message);
    opt->aes_key = std::move(*key);
  }
  if (Status s = ParseTlsOptions(args, opt); !s.ok()) return UsageError(s.error().message);
  return -1;
}

// Enough file descriptors for the connections, and a readable --pid; -1 to go on.
int CheckResources(const Options& opt) {
  signal(SIGPIPE, SIG_IGN);
  uint64_t fd_limit = RaiseFdLimit();
  if (static_cast<uint64_t>(opt.connections) + 4 * static_cast<uint64_t>(opt.threads) + 16 > fd_limit) {
    return UsageError("--connections=" + std::to_string(opt.connections) + " needs more file descriptors than the " +
                      std::to_string(fd_limit) + " allowed");
  }
  if (opt.pid != 0 && !ReadRssBytes(opt.pid)) return UsageError("cannot read /proc/" + std::to_string(opt.pid) + "/status");
  return -1;
}

Expected<std::vector<std::unique_ptr<Worker>>> MakeWorkers(const Options& opt, Shared* shared) {
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < opt.threads; ++t) {
    size_t slots = static_cast<size_t>((opt.connections - t + opt.threads - 1) / opt.threads);
    auto w = std::make_unique<Worker>(t, shared, slots);
    if (Status s = w->Init(); !s.ok()) return s.error();
    workers.push_back(std::move(w));
  }
  return workers;
}

std::atomic<bool> g_interrupted{false};

// SIGINT/SIGTERM end the run early (its figures are still reported).
void CatchInterrupts() {
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_interrupted.store(true); };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// The sum of one counter over the workers.
uint64_t Sum(const std::vector<std::unique_ptr<Worker>>& workers, std::atomic<uint64_t> Counters::*member) {
  uint64_t s = 0;
  for (const auto& w : workers) s += (w->counters().*member).load(std::memory_order_relaxed);
  return s;
}

// What the run's main loop saw: times, why it stopped, the --pid process's figures.
struct RunOutcome {
  int64_t t_start = 0;
  int64_t t_measure = 0;  // when the measured window opened (0: never)
  int64_t t_end = 0;
  std::string stop_reason = "duration reached";
  bool ramp_failed = false;
  uint64_t held_at_end = 0;
  std::optional<uint64_t> rss_before, rss_attached, rss_after;
  std::optional<double> cpu_measure, cpu_end;  // --pid's CPU seconds when the window opens / closes
};

// The once-a-second progress line (stderr).
class Progress {
 public:
  Progress(const Options& opt, const Shared& shared, const std::vector<std::unique_ptr<Worker>>& workers, int64_t t0)
      : opt_(opt), shared_(shared), workers_(workers), t_start_(t0), last_(t0) {}
  // Starts the per-second rates from the counts now (the measured window opens).
  void Reset() {
    last_sessions_ = Sum(workers_, &Counters::sessions);
    last_pings_ = Sum(workers_, &Counters::pings);
    last_bytes_ = Sum(workers_, &Counters::payload_bytes);
  }
  void MaybePrint(int64_t now) {
    if (opt_.quiet || now - last_ < 1'000'000'000) return;
    double dt = static_cast<double>(now - last_) / 1e9;
    last_ = now;
    uint64_t sessions = Sum(workers_, &Counters::sessions), pings = Sum(workers_, &Counters::pings),
             bytes = Sum(workers_, &Counters::payload_bytes);
    double at = static_cast<double>(now - t_start_) / 1e9;
    std::string line = Fmt("[%6.1fs] ", at) + ModeName(opt_.mode) +
                       (shared_.phase.load() == kRamp ? " (ramping)" : "") + "  attached " +
                       std::to_string(shared_.attached_now.load()) + "/" + std::to_string(opt_.connections);
    switch (opt_.mode) {
      case Mode::kHandshake:
      case Mode::kTlsHandshake:
        line = Fmt("[%6.1fs] ", at) + ModeName(opt_.mode) + "  sessions " + std::to_string(sessions) +
               Fmt(" (%.0f/s)", static_cast<double>(sessions - last_sessions_) / dt) + "  in-flight " +
               std::to_string(Sum(workers_, &Counters::in_flight));
        break;
      case Mode::kLatency:
        line += "  pings " + std::to_string(pings) + Fmt(" (%.0f/s)", static_cast<double>(pings - last_pings_) / dt);
        break;
      case Mode::kThroughput:
        line += Fmt("  %.1f MB/s", static_cast<double>(bytes - last_bytes_) / dt / 1e6) + "  packets " +
                std::to_string(Sum(workers_, &Counters::packets));
        break;
      case Mode::kIdle:
        if (opt_.pid != 0) {
          if (auto r = ReadRssBytes(opt_.pid)) line += Fmt("  rss %.1f MB", static_cast<double>(*r) / 1e6);
        }
        break;
    }
    line += "  errors " + std::to_string(shared_.errors.load());
    std::fprintf(stderr, "%s\n", line.c_str());
    last_sessions_ = sessions;
    last_pings_ = pings;
    last_bytes_ = bytes;
  }

 private:
  const Options& opt_;
  const Shared& shared_;
  const std::vector<std::unique_ptr<Worker>>& workers_;
  int64_t t_start_;
  int64_t last_;
  uint64_t last_sessions_ = 0, last_pings_ = 0, last_bytes_ = 0;
};

// Runs the workers: ramps up (held modes), measures for --duration, stops them.
RunOutcome Run(const Options& opt, Shared& shared, const std::vector<std::unique_ptr<Worker>>& workers) {
  RunOutcome out;
  if (opt.pid != 0) out.rss_before = ReadRssBytes(opt.pid);
  out.t_start = NowNs();
  if (Looping(opt.mode)) {
    shared.phase.store(kMeasure);
    out.t_measure = out.t_start;
    if (opt.pid != 0) out.cpu_measure = ReadCpuSeconds(opt.pid);
  }
  std::vector<std::thread> threads;
  for (const auto& w : workers) threads.emplace_back([w = w.get()] { w->Run(); });
  Progress progress(opt, shared, workers, out.t_start);
  while (true) {
    usleep(20 * 1000);
    int64_t now = NowNs();
    if (g_interrupted.load()) {
      out.stop_reason = "interrupted";
      break;
    }
    if (shared.errors.load() >= static_cast<uint64_t>(opt.max_errors)) {
      out.stop_reason = "error limit reached";
      if (shared.phase.load() == kRamp) out.ramp_failed = true;
      break;
    }
    if (shared.phase.load() == kRamp) {
      if (shared.attached_now.load() >= static_cast<uint64_t>(opt.connections)) {
        out.t_measure = now;
        if (opt.pid != 0) {
          out.rss_attached = ReadRssBytes(opt.pid);
          out.cpu_measure = ReadCpuSeconds(opt.pid);
        }
        progress.Reset();
        shared.phase.store(kMeasure);
        for (const auto& w : workers) w->Wake();
        if (!opt.quiet) {
          std::fprintf(stderr, "[%6.1fs] %s: all %d connections attached, measuring for %.1f s\n",
                       static_cast<double>(now - out.t_start) / 1e9, ModeName(opt.mode), opt.connections,
                       opt.duration);
        }
      }
    } else if (static_cast<double>(now - out.t_measure) / 1e9 >= opt.duration) {
      break;
    }
    progress.MaybePrint(now);
  }
  out.t_end = NowNs();
  if (opt.pid != 0) {
    out.rss_after = ReadRssBytes(opt.pid);
    out.cpu_end = ReadCpuSeconds(opt.pid);
  }
  out.held_at_end = shared.attached_now.load();
  shared.phase.store(kStop);
  for (const auto& w : workers) w->Wake();
  for (auto& t : threads) t.join();
  return out;
}

// The figures, as a table (rows) and as JSON at once.
class Report {
 public:
  Report() { j_.BeginObject(); }
  void Str(const std::string& k, const std::string& v) {
    rows_.emplace_back(k, v);
    j_.String(k, v);
  }
  void Int(const std::string& k, uint64_t v) {
    rows_.emplace_back(k, std::to_string(v));
    j_.Int(k, static_cast<int64_t>(v));
  }
  void Num(const std::string& k, double v, const char* f = "%.2f") {
    rows_.emplace_back(k, Fmt(f, v));
    j_.Double(k, v);
  }
  void Hist(const std::string& name, const Histogram& h) {
    auto us = [](int64_t ns) { return static_cast<double>(ns) / 1e3; };
    j_.BeginObject(name);
    j_.Int("count", static_cast<int64_t>(h.count()));
    j_.Double("min", us(h.min()));
    j_.Double("p50", us(h.Percentile(0.50)));
    j_.Double("p90", us(h.Percentile(0.90)));
    j_.Double("p99", us(h.Percentile(0.99)));
    j_.Double("p999", us(h.Percentile(0.999)));
    j_.Double("max", us(h.max()));
    j_.Double("mean", h.mean() / 1e3);
    j_.EndObject();
    rows_.emplace_back(name + " (count)", std::to_string(h.count()));
    for (auto [label, q] : {std::pair{"p50", 0.5}, {"p99", 0.99}, {"p999", 0.999}}) {
      rows_.emplace_back(name + " " + label, Fmt("%.1f", us(h.Percentile(q))));
    }
    rows_.emplace_back(name + " min/mean/max", Fmt("%.1f", us(h.min())) + " / " + Fmt("%.1f", h.mean() / 1e3) +
                                                   " / " + Fmt("%.1f", us(h.max())));
  }
  // The error reasons (JSON only) in first-seen order.
  void Reasons(Shared& shared) {
    std::lock_guard<std::mutex> lock(shared.mu);
    j_.BeginArray("error_reasons");
    for (const auto& why : shared.order) {
      j_.BeginObject();
      j_.String("reason", why);
      j_.Int("count", static_cast<int64_t>(shared.reasons[why]));
      j_.EndObject();
    }
    j_.EndArray();
  }
  // Prints the table; writes the JSON to `json` (when given). False when that failed.
  bool Write(const Options& opt, const std::string& json) {
    j_.EndObject();
    size_t width = 0;
    for (auto& r : rows_) width = std::max(width, r.first.size());
    std::printf("%s %s %s\n", kProg, ModeName(opt.mode), opt.ep.Describe().c_str());
    for (auto& r : rows_) std::printf("  %-*s  %s\n", static_cast<int>(width), r.first.c_str(), r.second.c_str());
    std::fflush(stdout);
    if (json.empty()) return true;
    std::ofstream f(json);
    f << j_.str() << "\n";
    if (!f) {
      std::fprintf(stderr, "%s: cannot write %s\n", kProg, json.c_str());
      return false;
    }
    return true;
  }

 private:
  std::vector<std::pair<std::string, std::string>> rows_;
  JsonWriter j_;
};

// What the --pid process used: memory per held connection, CPU over the window.
void ReportPid(const Options& opt, const RunOutcome& run, double window, uint64_t payload, Report* r) {
  r->Int("pid", static_cast<uint64_t>(opt.pid));
  if (run.rss_before) r->Int("rss_before_bytes", *run.rss_before);
  if (run.rss_attached) r->Int("rss_attached_bytes", *run.rss_attached);
  if (run.rss_after) r->Int("rss_after_bytes", *run.rss_after);
  if (run.rss_before && run.rss_after && run.held_at_end > 0) {
    r->Num("rss_bytes_per_connection",
           (static_cast<double>(*run.rss_after) - static_cast<double>(*run.rss_before)) /
               static_cast<double>(run.held_at_end),
           "%.0f");
  }
  // CPU the process used during the measured window (utime + stime of all its threads).
  if (run.cpu_measure && run.cpu_end && window > 0) {
    const double cpu = *run.cpu_end - *run.cpu_measure;
    r->Num("pid_cpu_seconds", cpu, "%.2f");
    r->Num("pid_cpu_cores", cpu / window, "%.3f");
    if (opt.mode == Mode::kThroughput && cpu > 0) {
      r->Num("mb_per_s_per_pid_core", static_cast<double>(payload) / cpu / 1e6, "%.1f");
    }
  }
}

// Prints the figures and returns the exit code: 1 on errors, on a handshake run without a
// session, or a held run interrupted before every connection was attached.
int ReportAndExit(const Options& opt, Shared& shared, const std::vector<std::unique_ptr<Worker>>& workers,
                  const RunOutcome& run) {
  Histogram attach, rtt;
  for (const auto& w : workers) {
    attach.Merge(w->attach_hist());
    rtt.Merge(w->rtt_hist());
  }
  auto sum = [&](std::atomic<uint64_t> Counters::*member) { return Sum(workers, member); };
  double window = run.t_measure > 0 ? static_cast<double>(run.t_end - run.t_measure) / 1e9 : 0;
  double total = static_cast<double>(run.t_end - run.t_start) / 1e9;
  uint64_t errors = shared.errors.load();
  uint64_t sessions = sum(&Counters::sessions), pings = sum(&Counters::pings),
           payload = sum(&Counters::payload_bytes), packets = sum(&Counters::packets),
           wpackets = sum(&Counters::window_packets);
  Report r;
  r.Str("mode", ModeName(opt.mode));
  r.Str("target", opt.ep.Describe());
  r.Str("encryption", opt.aes_key.empty() ? "none" : "AES");
  if (opt.ep.tls()) {
    std::lock_guard<std::mutex> lock(shared.mu);
    r.Str("tls", shared.tls_seen.empty() ? "no handshake completed" : shared.tls_seen);
  }
  r.Int("connections", static_cast<uint64_t>(opt.connections));
  r.Int("threads", static_cast<uint64_t>(opt.threads));
  r.Num("duration_s", window);
  r.Num("elapsed_s", total);
  r.Str("stopped", run.stop_reason);
  r.Int("connects", sum(&Counters::connects));
  r.Int("attached", sum(&Counters::attaches));
  r.Int("challenges", sum(&Counters::challenges));
  switch (opt.mode) {
    case Mode::kHandshake:
      r.Int("sessions", sessions);
      r.Num("sessions_per_s", window > 0 ? static_cast<double>(sessions) / window : 0, "%.1f");
      r.Hist("time_to_attached_us", attach);
      break;
    case Mode::kTlsHandshake: {
      const uint64_t resumed = sum(&Counters::tls_resumed);
      r.Int("handshakes", sessions);
      r.Num("handshakes_per_s", window > 0 ? static_cast<double>(sessions) / window : 0, "%.1f");
      r.Int("resumed", resumed);
      r.Num("resumed_fraction", sessions > 0 ? static_cast<double>(resumed) / static_cast<double>(sessions) : 0,
            "%.3f");
      break;
    }
    case Mode::kLatency:
      r.Int("pings", pings);
      r.Num("pings_per_s", window > 0 ? static_cast<double>(pings) / window : 0, "%.1f");
      r.Hist("rtt_us", rtt);
      r.Hist("time_to_attached_us", attach);
      break;
    case Mode::kThroughput:
      r.Int("packets", wpackets);
      r.Int("packets_verified", packets);
      r.Int("payload_bytes", payload);
      r.Num("mb_per_s", window > 0 ? static_cast<double>(payload) / window / 1e6 : 0, "%.1f");
      r.Num("packets_per_s", window > 0 ? static_cast<double>(wpackets) / window : 0, "%.1f");
      r.Int("wire_bytes_in", sum(&Counters::bytes_in));
      r.Hist("time_to_attached_us", attach);
      break;
    case Mode::kIdle:
      r.Int("held", run.held_at_end);
      r.Hist("time_to_attached_us", attach);
      break;
  }
  if (opt.pid != 0) ReportPid(opt, run, window, payload, &r);
  r.Int("errors", errors);
  r.Reasons(shared);
  if (!r.Write(opt, opt.json)) return 1;
  if (errors > 0) {
    std::lock_guard<std::mutex> lock(shared.mu);
    std::fprintf(stderr, "%s: %llu error(s)%s:\n", kProg, static_cast<unsigned long long>(errors),
                 run.ramp_failed ? " before every connection was attached" : "");
    for (const auto& why : shared.order) {
      std::fprintf(stderr, "  %s (x%llu)\n", why.c_str(), static_cast<unsigned long long>(shared.reasons[why]));
    }
    return 1;
  }
  if (Looping(opt.mode) && sessions == 0 && run.stop_reason != "interrupted") {
    std::fprintf(stderr, "%s: no session completed in %.1f s (%llu still in the handshake at the end)\n", kProg,
                 window, static_cast<unsigned long long>(sum(&Counters::connects) - sum(&Counters::attaches)));
    return 1;
  }
  if (!Looping(opt.mode) && run.t_measure == 0) {
    std::fprintf(stderr, "%s: interrupted before every connection was attached\n", kProg);
    return 1;
  }
  return 0;
}

int Main(int argc, char** argv) {
  Options opt;
  if (int rc = ParseOptions(argc, argv, &opt); rc >= 0) return rc;
  if (int rc = CheckResources(opt); rc >= 0) return rc;
  Shared shared(opt);
  std::unique_ptr<SSL_CTX, SslCtxFree> tls_ctx;
  if (opt.ep.tls()) {
    auto ctx = MakeTlsContext(opt);
    if (!ctx.ok()) return UsageError(ctx.error().message);
    tls_ctx = std::move(*ctx);
    shared.tls_ctx = tls_ctx.get();
  }
  auto workers = MakeWorkers(opt, &shared);
  if (!workers.ok()) {
    std::fprintf(stderr, "%s: %s\n", kProg, workers.error().message.c_str());
    return 1;
  }
  CatchInterrupts();
  RunOutcome run = Run(opt, shared, *workers);
  return ReportAndExit(opt, shared, *workers, run);
}

}  // namespace
}  // namespace xr::bench

int main(int argc, char** argv) { return xr::bench::Main(argc, argv); }
