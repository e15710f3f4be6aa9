#pragma once
// Session: one relayed connection's protocol state machine, free of I/O.
//
//   client hello -> [challenge -> client hello with response] -> authenticate (worker thread)
//   -> select target -> connect -> hello to server [-> answer server challenge]
//   -> server hello rewritten to the client -> relay until either side closes.
//
// The reactor feeds it bytes and events and carries out what it asks through SessionIo.
// Every error ends with an xpra "disconnect" packet to the client and one log line.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "auth/auth_module.h"
#include "codec/bridge.h"
#include "codec/cipher.h"
#include "codec/cipher6.h"
#include "codec/decode_limits.h"
#include "codec/frame_reader.h"
#include "codec/packet.h"
#include "codec/value.h"
#include "engine/hello.h"
#include "engine/limits.h"
#include "engine/stats.h"
#include "session_registry/session_registry.h"

namespace xr::engine {

// xpra 3.1's disconnect reasons (xpra/util.py).
namespace reason {
inline constexpr const char* kLoginTimeout = "login timeout";
inline constexpr const char* kProtocolError = "protocol error";
inline constexpr const char* kVersionError = "version error";
inline constexpr const char* kAuthenticationError = "authentication error";
inline constexpr const char* kServerError = "server error";
inline constexpr const char* kSessionNotFound = "session not found error";
inline constexpr const char* kConnectionError = "connection error";
inline constexpr const char* kDone = "done";
inline constexpr const char* kServerShutdown = "server shutdown";
inline constexpr const char* kIdleTimeout = "idle timeout";
inline constexpr const char* kClientPingTimeout = "client ping timeout";
// Not one of xpra's constants: the words its client uses when the server stops answering pings
// ("server ping timeout - waited 60 seconds without a response"). Like every reason holding
// "timeout" (but "idle timeout"), xpra's client shows it as an error.
inline constexpr const char* kServerPingTimeout = "server ping timeout";
// What xpra's proxy tells the server when the client's connection drops.
inline constexpr const char* kClientConnectionLost = "client connection lost";
}  // namespace reason

// The metrics label a failed login gets from the xpra disconnect reason it ended with: one of
// "authentication", "login-timeout", "protocol", "version", "session-not-found", "server-error",
// "connection-error", "shutdown", "other" (never the peer's words).
const char* LoginFailureLabel(std::string_view xpra_reason);

// Settings shared by every session of one listener; immutable while sessions run.
struct SessionConfig {
  std::shared_ptr<auth::AuthModule> auth;  // thread-safe; called on worker threads
  registry::RegistryOptions registry;
  bool aes = false;           // require AES-CBC on the client leg
  std::string aes_key;        // key material (keyfile contents); empty: none configured
  ProxyIdentity identity;
  FrameLimits client_limits;  // max packet size and pending chunks from the client
  FrameLimits server_limits{kHardMaxPayload, 3};  // the same from the session's server
  DecodeLimits decode_limits;
  // Before authentication (the pre-login budget): the largest frame from the client, wire and
  // decoded (also each server frame before the server's hello), and the values one decoded
  // packet may hold. A real xpra 3.1.3 hello: 22,659 bytes of zlib, 67,247 decoded, 6,017
  // values; these defaults leave 15x.
  size_t max_login_packet = size_t{1} << 20;
  size_t max_login_elements = 100000;
  int64_t login_timeout_ms = 30000;             // client connect -> relaying
  int64_t server_timeout_ms = 20000;            // target connect + server hello
};

// The xpra generation each target was last found to speak (the bridge, issue 17), shared by the
// relay's sessions: a login to a target known to be of the other generation than its client
// sends its hello in the right one at once. Thread-safe; at most kMaxTargets entries (cleared
// when full: each target then costs one reconnect again).
class GenerationMemory {
 public:
  static constexpr size_t kMaxTargets = 4096;
  // The generation `target` answered in last; false when unknown.
  bool Find(const std::string& target, bridge::Generation* g) const;
  void Remember(const std::string& target, bridge::Generation g);

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, bridge::Generation> known_;
};
GenerationMemory& GlobalGenerationMemory();

// What a session uses beyond its own connection, injected (tests give each session its own):
// the admission state shared by the relay's sessions (per-address caps, login back-off), the
// counters it adds to, the monotonic clock in milliseconds, and the relay-wide pre-login
// budgets (the memory all unauthenticated connections hold, PBKDF2 iterations per second).
struct SessionEnv {
  Admission* admission = nullptr;
  RelayCounters* counters = nullptr;
  std::function<int64_t()> now_ms;
  LoginMemory* login_memory = &GlobalLoginMemory();
  KdfBudget* kdf = &GlobalKdfBudget();
  GenerationMemory* generations = &GlobalGenerationMemory();
};

// What the blocking part of authentication produces (on a worker thread).
struct AuthOutcome {
  bool ok = false;
  std::string username;
  registry::Target target;
  std::vector<std::pair<std::string, std::string>> session_options;
  std::string client_reason;  // xpra reason sent to the client when !ok
  std::string detail;         // readable detail for the client (no secrets)
  std::string log_detail;     // detail for the log only (no secrets)
  bool limited = false;       // refused by a shared limit (kLimited): not a failed login
  // Set once the module let the user in: tells it the session ended (AuthModule::SessionEnded)
  // when the last owner lets go, the Session or, if the client left meanwhile, this outcome.
  std::shared_ptr<void> session_hold;
};

// The seam between the state machine and the reactor (a fake in unit tests).
class SessionIo {
 public:
  virtual ~SessionIo() = default;
  // Queues wire bytes for the client leg; sent in order.
  virtual void SendToClient(std::string bytes) = 0;
  // Queues wire bytes for the server leg; sent in order (after the connect completes).
  virtual void SendToServer(std::string bytes) = 0;
  // Runs `job` off the reactor (it may block); its result arrives via Session::OnAuthDone.
  virtual void RunAuth(std::function<AuthOutcome()> job) = 0;
  // Starts a non-blocking connect; the result arrives via OnServerConnected / OnServerConnectFailed.
  virtual void ConnectServer(const registry::Target& target) = 0;
  // Drops the server leg (its socket and anything queued for it) and connects to `target` again,
  // as ConnectServer. Called only from OnServerData / OnServerClosed (no receive in flight on
  // that leg); false when the leg cannot be dropped now (a send still in flight).
  virtual bool ReconnectServer(const registry::Target&) { return false; }
  // From now on both legs' bytes bypass the session and are copied straight across.
  virtual void StartPassthrough() = 0;
  // Arms the deadline `ms` from now (0 disarms); OnTimeout is called when it passes.
  virtual void SetDeadline(int64_t ms) = 0;
  // Flushes what is queued to both legs, then closes them. `log_reason` goes to the log only.
  virtual void Close(std::string_view log_reason) = 0;
  // The session has started relaying (the instance gets its control endpoint).
  virtual void Relaying() {}
  // The client leg's socket (-1 when there is none): a control socket's takeover passes a
  // duplicate to the main thread.
  virtual int client_fd() const { return -1; }
  // Runs `job` off the reactor (CPU-heavy work: AES key derivation); the function it returns
  // then runs on the reactor thread, unless the connection has gone by then. False when the
  // job could not be queued (it never runs). Default: both at once, on this thread.
  virtual bool RunOffReactor(std::function<std::function<void()>()> job) {
    job()();
    return true;
  }
  // Encrypted frames toward the client are padded to `block` bytes from the next frame on
  // (xpra 6.x AES: 16 for CBC, 0 for CTR; xpra 3.1's 32 until then), for the reactor's
  // follower of that stream.
  virtual void SetClientCipherBlock(size_t) {}
};

// What a connection's reactor calls on the protocol logic behind the client leg: a relay
// Session, or a ControlSession on a control socket.
class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  // Arms the first deadline.
  virtual void Start() = 0;
  // Bytes from the client; the client closed or failed.
  virtual void OnClientData(std::string_view bytes) = 0;
  virtual void OnClientClosed(std::string_view why) = 0;
  // Bytes from the server; the server closed or failed (relay sessions only).
  virtual void OnServerData(std::string_view) {}
  virtual void OnServerClosed(std::string_view) {}
  // Results of RunAuth / ConnectServer (relay sessions only).
  virtual void OnAuthDone(AuthOutcome) {}
  virtual void OnServerConnected() {}
  virtual void OnServerConnectFailed(std::string_view) {}
  // The deadline set through SessionIo passed.
  virtual void OnTimeout() = 0;
  // Ends with an xpra disconnect packet `reason` (+ detail) to the client, then closes.
  virtual void Disconnect(std::string_view reason, std::string_view detail, std::string_view log_detail = {}) = 0;
  // Queues an xpra disconnect packet for the server while relaying (it does not close).
  virtual void TellServer(std::string_view, std::string_view) {}
  // Whether bytes are being relayed (for counters).
  virtual bool relaying() const { return false; }
  // True while the client's frames wait for the session (auth, connect, server handshake) and
  // more than a small bound of them is held: the reactor stops reading the client until
  // SessionIo::Relaying() (back-pressure, not a buffer).
  virtual bool client_backlogged() const { return false; }
};

class Session final : public ClientHandler {
 public:
  enum class State {
    kClientHello,     // waiting for the client's first hello
    kChallengeSent,   // waiting for the hello carrying the challenge response
    kAuthenticating,  // auth + target selection running on a worker
    kConnecting,      // connecting to the target
    kServerHello,     // hello sent to the server, waiting for its hello (or challenge)
    kRelay,           // relaying (passthrough, or frame by frame when AES is on)
    kClosed,
  };

  // `peer` is the client's address for logs ("127.0.0.1:5555"); `id` the connection number.
  Session(uint64_t id, std::string peer, std::shared_ptr<const SessionConfig> config, SessionIo* io, SessionEnv env);
  ~Session() override;

  // Starts the login timer.
  void Start() override;
  // Bytes from the client / server leg.
  void OnClientData(std::string_view bytes) override;
  void OnServerData(std::string_view bytes) override;
  // The client / server closed its side or failed (`why` for the log).
  void OnClientClosed(std::string_view why) override;
  void OnServerClosed(std::string_view why) override;
  // Results of the requests made through SessionIo.
  void OnAuthDone(AuthOutcome outcome) override;
  void OnServerConnected() override;
  void OnServerConnectFailed(std::string_view why) override;
  void OnTimeout() override;
  // Ends the session with an xpra disconnect packet `reason` (+ detail) to the client.
  void Disconnect(std::string_view reason, std::string_view detail, std::string_view log_detail = {}) override;
  // While relaying: a disconnect packet `reason` (+ detail) for the server, in its encoding.
  void TellServer(std::string_view reason, std::string_view detail) override;
  bool relaying() const override { return state_ == State::kRelay; }
  bool client_backlogged() const override;

  State state() const { return state_; }
  uint64_t id() const { return id_; }
  const std::string& peer() const { return peer_; }
  // The client's address once a PROXY protocol header named it (before Start: the address
  // back-off, limits and logs use).
  void SetPeer(std::string peer) { peer_ = std::move(peer); }
  const std::string& username() const { return username_; }
  const registry::Target& target() const { return target_; }
  // AES on the client leg (xpra 3.1's or 6.x's).
  bool encrypted() const { return encryptor_ != nullptr || encryptor6_ != nullptr; }
  // The client leg is encrypted below the session (TLS, wss): xor digests become acceptable.
  void SetTransportEncrypted(bool on) { transport_encrypted_ = on; }
  // The client's kernel credentials (SO_PEERCRED, unix-socket binds), handed to the auth module.
  void SetPeerCredentials(int64_t uid, int64_t gid, int64_t pid) { peer_cred_ = {uid, gid, pid}; }
  Encoding client_encoding() const { return client_encoding_; }
  const std::string& display() const { return display_; }
  // While the client and its server are of different xpra generations (issue 17): a dict for
  // `xpra info :proxy-N` ("description" = "bridging rencode+zlib <-> rencodeplus+lz4", packets
  // bridged each way, chunks, dropped); None otherwise.
  Value BridgeInfo() const;
  bool bridging() const { return bridge_ != nullptr; }

 private:
  void HandleClientPacket(Value packet);
  void HandleClientHello(const Value& caps);
  Status SetupClientCipher(const Caps& caps);
  Value NewCipherCaps();
  // xpra 5.0+ AES (an "encryption" dict in the hello): checks the client's parameters, charges
  // the key-derivation budget, then derives its key and the relay's next receive key off the
  // reactor (RunKeys6, at most KdfBudget's slots at once); the login goes on in OnKeys6.
  void StartKeys6();
  void RunKeys6();
  struct Keys6;
  void OnKeys6(const std::shared_ptr<Keys6>& keys);
  // The hello (first or challenge reply) was accepted: challenge, or authenticate.
  void ContinueLogin();
  Status EncryptFrames6(std::string* wire);
  void SendChallenge();
  // For modules that need the password (pam, ldap): "xor" as the digest, or a disconnect that
  // says why (plain link: use ssl:// or AES; client without xor). False when disconnected.
  bool ChooseClearPasswordDigest(const Caps& caps, bool link_encrypted);
  void StartAuth(const Caps& caps);
  void HandleServerPacket(Value packet);
  void AnswerServerChallenge(const Value& packet);
  // Encodes the hello for the server (with the keys of the dict `extra`, if any) and sends it;
  // false when it could not (the session is then disconnected with the reason).
  bool SendHelloToServer(const Value* extra);
  void HandleServerHello(const Value& caps);
  void SendToClientPacket(const Value& packet);
  // Appends the frame's wire bytes for the client (encrypted when AES is on) to *out.
  Status EncryptFrameToClient(const FrameHeader& h, std::string_view plain, std::string* out);
  // xpra 6.x takes no frame of 4 MiB or more before its hello is accepted: a client whose first
  // header is rencodeplus gets the same cap before login, whatever --max-login-packet-size says.
  void CapXpra6LoginFrames(std::string_view bytes);
  Status DrainClientFrames();
  Status DrainServerFrames();
  Status RelayServerFrames();
  void ForwardFrame(const RawFrame& frame, bool to_server);
  // Bridge (codec/bridge.h): the server answered in the other generation (a frame without or
  // with the rencodeplus bit, or 6.x's unframed refusal): connect again speaking its generation
  // (remembered for the target once it answers in it). False when it was tried already or cannot
  // be done (the caller then fails as before).
  bool RetryServerGeneration(std::string_view why);
  // Translates one plain client frame for the server and queues it (bridged sessions).
  Status BridgeToServer(const FrameHeader& h, std::string_view payload);
  // Logs a packet type the bridge dropped: the first of each type, then every 1,000th.
  void NoteDropped(const std::string& type, bool to_server);
  // The server's stream broke the limits or the protocol: both ends are told, the session ends.
  void ServerFailed(const Error& e);
  void Fail(std::string_view reason, const Error& e);
  // Charges what this unauthenticated connection holds to the relay-wide login memory
  // (LoginMemory); false when that would go over its budget. Charge(0) releases it.
  bool ChargeLoginMemory(size_t bytes);
  // The key-derivation budget for `iterations` before authentication (KdfBudget).
  Status TakeKdf(int iterations);
  // The user name back-off is keyed on ("" when the auth module ignores user names).
  std::string BackoffUser() const;
  // Counts this connection's login once in the relay's metrics (xpra_relay_logins_total).
  void CountLogin(bool ok, const char* reason);

  const uint64_t id_;
  std::string peer_;
  std::shared_ptr<const SessionConfig> config_;
  SessionIo* io_;
  SessionEnv env_;
  State state_ = State::kClientHello;
  // What only the login needs: freed when a plain session switches to passthrough (an idle
  // relayed connection then keeps ~700 bytes less). AES sessions keep it: they go on
  // reading, decoding and re-framing both streams.
  struct Handshake {
    explicit Handshake(const SessionConfig& c);
    FrameReader client_reader;
    FrameReader server_reader;
    PacketDecoder client_decoder;
    PacketDecoder server_decoder;
    std::vector<std::string> cipher_padding_options;  // from the hello that asked for AES
    Value cipher_caps;                             // sent in the challenge
    // xpra 6.x AES: the client's parameters of its latest hello; the relay's next receive
    // parameters ({"encryption": ...}) and their decryptor, installed when they are announced
    // (challenge or hello); the iterations the first hello was charged for.
    crypto6::Params peer6;
    Value cipher6_caps;
    std::unique_ptr<crypto6::Decryptor> next_decryptor6;
    int charged6_iterations = 0;
    Value client_caps;           // latest client hello
    std::string server_salt;
    std::string digest;
    std::string salt_digest;
    std::vector<std::pair<std::string, std::string>> session_options;
    std::vector<std::string> pending_to_server;  // client frames received before relaying
    std::string first_client_header;  // the first 8 bytes from the client (6.x: its frame cap)
    std::string pending_to_client;               // server packets that came before its hello
    std::string server_frames_since_main;        // chunk frames of the packet being read
    size_t caps_bytes = 0;  // estimated memory of client_caps
  };
  std::unique_ptr<Handshake> hs_;
  std::string display_;  // what the client asked for

  Encoding client_encoding_ = Encoding::kRencode;
  Encoding server_encoding_ = Encoding::kRencode;
  // The generation the server is taken to speak (the client's, unless the target is known to
  // speak the other), and whether a reconnect in the other one was made already.
  bridge::Generation server_generation_ = bridge::Generation::k3;
  bool server_generation_retried_ = false;
  bool server_main_frame_seen_ = false;
  bool server_answered_ = false;  // a byte came from the server since the (last) connect
  // Set from the server's hello when the generations differ: both directions' translators.
  struct Bridge {
    bridge::Translator to_server;
    bridge::Translator to_client;
    std::vector<std::pair<std::string, uint64_t>> drops;  // per type, bounded (kMaxDropTypes)
  };
  std::unique_ptr<Bridge> bridge_;

  std::unique_ptr<crypto::Encryptor> encryptor_;  // relay -> client
  bool transport_encrypted_ = false;                // the client leg is TLS (SetTransportEncrypted)
  struct PeerCred {
    int64_t uid = -1, gid = -1, pid = -1;
  } peer_cred_;                                      // SetPeerCredentials; -1: not a unix peer
  std::unique_ptr<crypto::Decryptor> decryptor_;  // client -> relay
  std::unique_ptr<crypto6::Encryptor> encryptor6_;  // relay -> a 6.x client
  std::unique_ptr<crypto6::Decryptor> decryptor6_;  // a 6.x client -> relay
  // The 6.x key derivation of the latest hello: none, waiting for a slot, running on a worker.
  enum class KeyJob : uint8_t { kNone, kWaiting, kRunning };
  KeyJob key_job_ = KeyJob::kNone;

  std::string username_;
  registry::Target target_;
  bool server_challenge_answered_ = false;
  bool authenticated_ = false;
  bool auth_deferred_ = false;  // waiting for a verification slot of its source (MayVerify)
  bool verifying_ = false;      // Admission::Attempt made, Finished not yet
  std::shared_ptr<void> session_hold_;  // AuthOutcome::session_hold, released with the session
  int64_t login_deadline_ms_ = 0;
  size_t login_memory_ = 0;  // charged to env_.login_memory until authenticated
  bool login_counted_ = false;  // CountLogin done
};

const char* SessionStateName(Session::State s);

}  // namespace xr::engine
