#include "engine/session.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "codec/cipher6.h"
#include "codec/digest.h"
#include "codec/header.h"
#include "engine/limits.h"
#include "engine/log.h"
#include "engine/relay_metrics.h"
#include "engine/stats.h"
#include "session_registry/user_sessions.h"

namespace xr::engine {
namespace {

constexpr size_t kSaltBytes = 64;
constexpr int kCipherIterations = 1000;
constexpr size_t kMaxPendingToServer = 64;
// Client bytes held while the session is not relaying yet, past which the client is not read.
constexpr size_t kMaxHeldBeforeRelay = 256 * 1024;
// How often a login waiting for a verification slot of its source asks again (MayVerify).
constexpr int64_t kAuthRetryMs = 20;
// The client's half of the combined salt: xpra's client sends as many bytes as our salt (64).
constexpr size_t kMinClientSalt = 16;
constexpr size_t kMaxClientSalt = 256;

// What a decoded value keeps allocated, roughly (for the login memory budget).
size_t ApproxBytes(const Value& v) {
  size_t n = sizeof(Value);
  if (v.is_string()) {
    n += v.as_string().capacity();
  } else if (v.is_list()) {
    for (const Value& x : v.as_list()) n += ApproxBytes(x);
  } else if (v.is_dict()) {
    for (const auto& [k, x] : v.as_dict()) n += ApproxBytes(k) + ApproxBytes(x);
  }
  return n;
}

FrameLimits LoginFrameLimits(const FrameLimits& leg, size_t max_login_packet) {
  return FrameLimits{std::min(leg.max_payload, max_login_packet), leg.max_pending_chunks};
}

DecodeLimits LoginDecodeLimits(const SessionConfig& c) {
  DecodeLimits d = c.decode_limits;
  d.max_elements = std::min(d.max_elements, c.max_login_elements);
  d.max_string_size = std::min(d.max_string_size, c.max_login_packet);
  return d;
}

std::string LogUser(const std::string& user) { return user.empty() ? "-" : log::Sanitize(user); }

// The encoding we answer a peer with: rencode if it can read it, else bencode.
Encoding ChooseEncoding(const Caps& caps, Encoding used) {
  if (used == Encoding::kRencodePlus) return used;  // xpra 6.x speaks nothing else
  if (caps.get_bool("rencode", used == Encoding::kRencode)) return Encoding::kRencode;
  if (caps.get_bool("bencode", true)) return Encoding::kBencode;
  return used;
}

// A value of the client's start-new-session dict as words for "--KEY=WORD" (strings, numbers,
// booleans, lists of those); false when it holds anything else or a control character.
bool StartWords(const Value& v, std::vector<std::string>* out) {
  if (v.is_list()) {
    for (const Value& x : v.as_list()) {
      if (x.is_list() || !StartWords(x, out)) return false;
    }
    return true;
  }
  std::string w;
  if (v.is_string()) {
    w = v.as_string();
  } else if (v.is_int()) {
    w = std::to_string(v.as_int());
  } else if (v.kind() == Value::Kind::kBool) {
    w = v.as_bool() ? "yes" : "no";
  } else {
    return false;
  }
  if (w.size() > registry::kMaxStartValueBytes) return false;
  for (unsigned char c : w) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  out->push_back(std::move(w));
  return true;
}

// The hello's "start-new-session" (xpra's `xpra start tcp://USER@HOST/ --start=CMD`): mode,
// display and the allowed xpra options, at most kMaxStartOptions words; the rest is dropped.
registry::StartRequest StartRequestFrom(const Caps& caps) {
  registry::StartRequest req;
  const Value* sns = caps.get("start-new-session");
  if (sns == nullptr || !sns->is_dict()) return req;
  req.requested = true;
  for (const auto& [k, v] : sns->as_dict()) {
    if (!k.is_string()) continue;
    const std::string& key = k.as_string();
    if (key == "mode") {
      if (v.is_string() && v.as_string() == "start-desktop") req.mode = "start-desktop";
    } else if (key == "display") {
      std::string d = v.is_string() ? v.as_string() : (v.is_int() ? std::to_string(v.as_int()) : "");
      if (!d.empty() && d.front() == ':') d.erase(0, 1);
      if (!d.empty() && d.size() <= 9 && std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        req.display = ":" + d;
      }
    } else if (registry::IsAllowedStartOption(key)) {
      std::vector<std::string> words;
      if (!StartWords(v, &words)) continue;
      for (std::string& w : words) {
        if (req.options.size() >= registry::kMaxStartOptions) break;
        req.options.emplace_back(key, std::move(w));
      }
    }
  }
  return req;
}

// Bridge: the format the relay writes to a server of generation `g` before its hello tells more.
bridge::WireFormat DefaultFormat(bridge::Generation g) {
  return g == bridge::Generation::k6 ? bridge::WireFormat{Encoding::kRencodePlus, Compressor::kLz4}
                                     : bridge::WireFormat{Encoding::kRencode, Compressor::kZlib};
}
// Distinct packet types whose drops are counted one by one (the rest under "other").
constexpr size_t kMaxDropTypes = 32;

}  // namespace

bool GenerationMemory::Find(const std::string& target, bridge::Generation* g) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = known_.find(target);
  if (it == known_.end()) return false;
  *g = it->second;
  return true;
}

void GenerationMemory::Remember(const std::string& target, bridge::Generation g) {
  std::lock_guard<std::mutex> lock(mu_);
  if (known_.size() >= kMaxTargets && known_.find(target) == known_.end()) known_.clear();
  known_[target] = g;
}

GenerationMemory& GlobalGenerationMemory() {
  static auto* m = new GenerationMemory();  // never destroyed: sessions may outlive static teardown
  return *m;
}

const char* LoginFailureLabel(std::string_view why) {
  if (why == reason::kAuthenticationError) return "authentication";
  if (why == reason::kLoginTimeout) return "login-timeout";
  if (why == reason::kProtocolError) return "protocol";
  if (why == reason::kVersionError) return "version";
  if (why == reason::kSessionNotFound) return "session-not-found";
  if (why == reason::kServerError) return "server-error";
  if (why == reason::kConnectionError) return "connection-error";
  if (why == reason::kServerShutdown) return "shutdown";
  return "other";
}

void Session::CountLogin(bool ok, const char* reason) {
  if (login_counted_) return;
  login_counted_ = true;
  RelayMetricsSet::Get().Login(ok, reason);
}

const char* SessionStateName(Session::State s) {
  switch (s) {
    case Session::State::kClientHello: return "client-hello";
    case Session::State::kChallengeSent: return "challenge-sent";
    case Session::State::kAuthenticating: return "authenticating";
    case Session::State::kConnecting: return "connecting";
    case Session::State::kServerHello: return "server-hello";
    case Session::State::kRelay: return "relay";
    case Session::State::kClosed: return "closed";
  }
  return "?";
}

Session::Session(uint64_t id, std::string peer, std::shared_ptr<const SessionConfig> config, SessionIo* io,
                 SessionEnv env)
    : id_(id),
      peer_(std::move(peer)),
      config_(std::move(config)),
      io_(io),
      env_(std::move(env)),
      hs_(std::make_unique<Handshake>(*config_)) {}

Session::Handshake::Handshake(const SessionConfig& c)
    : client_reader(LoginFrameLimits(c.client_limits, c.max_login_packet)),
      server_reader(LoginFrameLimits(c.server_limits, c.max_login_packet)),
      client_decoder(LoginFrameLimits(c.client_limits, c.max_login_packet), LoginDecodeLimits(c)),
      server_decoder(LoginFrameLimits(c.server_limits, c.max_login_packet), c.decode_limits) {}

Session::~Session() {
  ChargeLoginMemory(0);
  // Closed while its password was being checked: counted as a failure (no free retries by
  // hanging up).
  if (verifying_) env_.admission->Finished(AddressOf(peer_), BackoffUser(), true, env_.now_ms());
}

bool Session::ChargeLoginMemory(size_t bytes) {
  if (bytes == login_memory_) return true;
  if (!env_.login_memory->Recharge(login_memory_, bytes)) return false;
  login_memory_ = bytes;
  return true;
}

Status Session::TakeKdf(int iterations) {
  if (authenticated_ || env_.kdf->Take(iterations, env_.now_ms())) return Status::Ok();
  return MakeError(ErrorCode::kTooLarge, "the relay is too busy to set up encryption now, try again shortly");
}

bool Session::client_backlogged() const {
  if (!hs_ || (state_ != State::kAuthenticating && state_ != State::kConnecting && state_ != State::kServerHello)) {
    return false;
  }
  size_t held = hs_->client_reader.buffered();
  for (const std::string& f : hs_->pending_to_server) held += f.size();
  return held >= kMaxHeldBeforeRelay;
}

std::string Session::BackoffUser() const { return config_->auth->per_user() ? username_ : std::string(); }

void Session::Start() {
  login_deadline_ms_ = env_.now_ms() + config_->login_timeout_ms;
  io_->SetDeadline(config_->login_timeout_ms);
}

void Session::Fail(std::string_view why, const Error& e) {
  TellServer(reason::kProtocolError, "the client sent invalid data: " + e.message);  // while relaying
  Disconnect(reason::kProtocolError, e.message, why);
}

void Session::Disconnect(std::string_view why, std::string_view detail, std::string_view log_detail) {
  if (state_ == State::kClosed) return;
  XR_INFO("conn", "conn={} peer={} user={} state={} disconnect: {}{}{}{}", id_, peer_, LogUser(username_),
          SessionStateName(state_), log::Sanitize(why), detail.empty() ? "" : ": ", log::Sanitize(detail, 512),
          log_detail.empty() ? std::string() : fmt::format(" ({})", log::Sanitize(log_detail, 512)));
  if (state_ != State::kRelay) CountLogin(false, LoginFailureLabel(why));
  List packet{Value("disconnect"), Value(why)};
  if (!detail.empty()) packet.emplace_back(detail);
  SendToClientPacket(Value(std::move(packet)));
  state_ = State::kClosed;
  io_->Close(why);
}

void Session::TellServer(std::string_view why, std::string_view detail) {
  if (state_ != State::kRelay) return;
  List packet{Value("disconnect"), Value(why)};
  if (!detail.empty()) packet.emplace_back(detail);
  std::string wire;
  EncodeOptions opts;
  opts.encoding = server_encoding_;
  if (Status s = EncodePacket(Value(std::move(packet)), opts, nullptr, &wire); !s.ok()) {
    XR_ERROR("conn", "conn={} cannot encode a packet for the server: {}", id_, s.error().message);
    return;
  }
  io_->SendToServer(std::move(wire));
}

// ---------------------------------------------------------------- client leg

void Session::OnClientData(std::string_view bytes) {
  if (state_ == State::kClosed || !hs_) return;
  CapXpra6LoginFrames(bytes);
  hs_->client_reader.Feed(bytes);
  if (Status s = DrainClientFrames(); !s.ok()) {
    Fail("bad data from client", s.error());
    return;
  }
  if (state_ == State::kClosed || authenticated_ || !hs_) return;
  // The pre-login budget, relay-wide: what this connection holds before it authenticated.
  size_t held = hs_->client_reader.buffered() + hs_->client_decoder.pending_bytes() + hs_->caps_bytes;
  for (const std::string& f : hs_->pending_to_server) held += f.size();
  if (!ChargeLoginMemory(held)) {
    Disconnect(reason::kServerError, "the relay holds too much login data now, try again shortly",
               fmt::format("login memory budget: {} bytes in use, {} more wanted", env_.login_memory->used(),
                           held - login_memory_));
  }
}

void Session::CapXpra6LoginFrames(std::string_view bytes) {
  std::string& first = hs_->first_client_header;
  if (first.size() >= kHeaderSize) return;
  first.append(bytes.substr(0, kHeaderSize - first.size()));
  if (first.size() < kHeaderSize) return;
  // Before this header is parsed: its frame and every later one before login is held to 6.x's cap.
  if (auto h = DecodeHeader(first); h.ok() && (h->flags & flags::kRencodePlus) != 0 &&
                                    hs_->client_reader.max_payload() >= kXpra6MaxFirstPayload) {
    hs_->client_reader.set_max_payload(kXpra6MaxFirstPayload - 1);
  }
}

Status Session::DrainClientFrames() {
  // While a hello's keys are derived the frames wait in the reader (bounded by the login limits).
  while (state_ != State::kClosed && key_job_ == KeyJob::kNone) {
    auto next = hs_->client_reader.Next();
    if (!next.ok()) return next.error();
    if (!next->has_value()) return Status::Ok();
    RawFrame frame = std::move(**next);
    if (frame.header.encrypted()) {
      if (!decryptor_ && !decryptor6_) {
        return MakeError(ErrorCode::kMalformed, "encrypted packet but no encryption was negotiated");
      }
      std::string plain;
      Status s = decryptor6_ ? decryptor6_->Decrypt(frame.payload, frame.header.payload_size, &plain)
                             : decryptor_->Decrypt(frame.payload, frame.header.payload_size, &plain);
      if (!s.ok()) return MakeError(ErrorCode::kMalformed, "decryption failed (wrong key?): " + s.error().message);
      frame.payload = std::move(plain);
      frame.header.payload_size = static_cast<uint32_t>(frame.payload.size());  // 6.x: its iv no longer counts
      frame.header.flags &= static_cast<uint8_t>(~flags::kCipher);
    } else if ((decryptor_ || decryptor6_) && state_ != State::kClientHello) {
      return MakeError(ErrorCode::kMalformed, "unencrypted packet on an encrypted connection");
    }
    switch (state_) {
      case State::kClientHello:
      case State::kChallengeSent: {
        auto packet = hs_->client_decoder.Push(std::move(frame));
        if (!packet.ok()) return packet.error();
        if (packet->has_value()) {
          client_encoding_ = hs_->client_decoder.last_encoding();
          HandleClientPacket(std::move(**packet));
        }
        break;
      }
      case State::kAuthenticating:
      case State::kConnecting:
      case State::kServerHello:
        if (hs_->pending_to_server.size() >= kMaxPendingToServer) {
          return MakeError(ErrorCode::kTooLarge, "too many packets before the session was ready");
        }
        hs_->pending_to_server.push_back(SerializeFrame(frame.header, frame.payload));
        break;
      case State::kRelay:
        if (bridge_) {
          if (Status s = BridgeToServer(frame.header, frame.payload); !s.ok()) return s;
          break;
        }
        io_->SendToServer(SerializeFrame(frame.header, frame.payload));
        break;
      case State::kClosed:
        break;
    }
  }
  return Status::Ok();
}

void Session::HandleClientPacket(Value packet) {
  const List& items = packet.as_list();
  std::string_view type = items[0].as_string();
  if (type == "disconnect") {
    std::string why = items.size() > 1 && items[1].is_string() ? items[1].as_string() : "";
    XR_INFO("conn", "conn={} peer={} client disconnected during login: {}", id_, peer_, log::Sanitize(why));
    CountLogin(false, "client-closed");
    state_ = State::kClosed;
    io_->Close("client disconnect");
    return;
  }
  if (type != "hello") {
    Disconnect(reason::kProtocolError, fmt::format("expected a hello packet, got '{}'", log::Sanitize(type)));
    return;
  }
  if (items.size() < 2 || !items[1].is_dict()) {
    Disconnect(reason::kProtocolError, "hello packet without capabilities");
    return;
  }
  HandleClientHello(items[1]);
}

void Session::HandleClientHello(const Value& caps_value) {
  Caps caps(caps_value);
  hs_->client_caps = caps_value;
  hs_->caps_bytes = ApproxBytes(hs_->client_caps);
  if (state_ == State::kClientHello) {
    username_ = caps.get_string("username");
    // xpra 3.1 asks with version_request, 5.0+ with request="version".
    if (caps.get_bool("version_request") || caps.get_string("request") == "version") {
      SendToClientPacket(Value(List{Value("hello"), Value(Dict{{Value("version"), Value(std::string_view(config_->identity.version))}})}));
      XR_INFO("conn", "conn={} peer={} version request answered", id_, peer_);
      state_ = State::kClosed;
      io_->Close("version sent");
      return;
    }
    if (!caps.has("version")) {
      Disconnect(reason::kVersionError, "the client did not send its version");
      return;
    }
    // stop, exit, print, ... never reach a session; the harmless ones go on after login.
    if (auto request = HelloRequest(caps_value); !request.ok()) {
      Disconnect(reason::kProtocolError, request.error().message);
      return;
    }
    // xpra 5.0+ asks for AES in an "encryption" dict (3.1's flat cipher keys take precedence).
    if (caps.get_string("cipher").empty() && !caps.get_string("encryption.cipher").empty()) {
      StartKeys6();
      return;
    }
    if (Status s = SetupClientCipher(caps); !s.ok()) {
      Disconnect(reason::kAuthenticationError, s.error().message);
      return;
    }
    ContinueLogin();
    return;
  }
  // kChallengeSent: this hello must carry the response.
  if (!caps.has("challenge_response")) {
    Disconnect(reason::kAuthenticationError, "no challenge response in the client's hello");
    return;
  }
  if (encryptor_) {
    if (Status s = SetupClientCipher(caps); !s.ok()) {
      Disconnect(reason::kAuthenticationError, s.error().message);
      return;
    }
  }
  if (encryptor6_) {
    StartKeys6();  // the reply re-keys the client's receive side; authenticates after
    return;
  }
  StartAuth(caps);
}

void Session::ContinueLogin() {
  if (state_ == State::kClientHello && config_->auth->requires_challenge()) {
    SendChallenge();
    return;
  }
  StartAuth(Caps(hs_->client_caps));
}

Status Session::SetupClientCipher(const Caps& caps) {
  std::string cipher = caps.get_string("cipher");
  std::string iv = caps.get_string("cipher.iv");
  if (cipher.empty() || iv.empty()) {
    if (config_->aes) return MakeError(ErrorCode::kAuthFailed, "missing encryption tokens: this relay requires AES encryption");
    if (encryptor_) return MakeError(ErrorCode::kAuthFailed, "missing encryption tokens in the client's hello");
    return Status::Ok();
  }
  if (cipher != "AES") return MakeError(ErrorCode::kUnsupported, "unsupported cipher: " + log::Sanitize(cipher));
  if (config_->aes_key.empty()) return MakeError(ErrorCode::kAuthFailed, "encryption key is missing");
  std::string padding_name = caps.get_string("cipher.padding", "legacy");
  crypto::Padding padding;
  if (padding_name == "PKCS#7") {
    padding = crypto::Padding::kPkcs7;
  } else if (padding_name == "legacy") {
    padding = crypto::Padding::kLegacy;
  } else {
    return MakeError(ErrorCode::kUnsupported, "unsupported padding: " + log::Sanitize(padding_name));
  }
  // xpra's client makes new receive parameters for every hello it sends (challenge replies
  // included) and resets its decryptor, so the relay re-keys its sending side each time.
  const int64_t iterations = caps.get_int("cipher.key_stretch_iterations");
  if (iterations < crypto::kMinIterations || iterations > crypto::kMaxIterations) {
    return MakeError(ErrorCode::kMalformed, fmt::format("key stretch iterations outside [{}, {}]",
                                                        crypto::kMinIterations, crypto::kMaxIterations));
  }
  // Charged once per connection, for both keys (the client's and ours); a re-key in the
  // challenge reply is not charged again (the refusal could not be read by then).
  if (!encryptor_) {
    if (Status s = TakeKdf(static_cast<int>(iterations) + kCipherIterations); !s.ok()) return s;
  }
  auto key = crypto::DeriveKey(config_->aes_key, caps.get_string("cipher.key_salt"), static_cast<int>(iterations));
  if (!key.ok()) return key.error();
  auto enc = crypto::Encryptor::Create(*key, iv, padding);
  if (!enc.ok()) return enc.error();
  encryptor_ = std::move(*enc);
  if (decryptor_) return Status::Ok();  // the client's sending side is already keyed
  hs_->cipher_padding_options = caps.get_strings("cipher.padding.options");
  if (hs_->cipher_padding_options.empty()) hs_->cipher_padding_options.push_back(padding_name);
  hs_->cipher_caps = NewCipherCaps();
  if (hs_->cipher_caps.is_none()) return MakeError(ErrorCode::kInternal, "cannot set up the receive cipher");
  return Status::Ok();
}

// What a worker derives for one 6.x hello: the client's receive key (the relay encrypts with it)
// and the relay's next receive key, each made into its cipher there.
struct Session::Keys6 {
  Status status = Status::Ok();
  crypto6::Params own;
  std::unique_ptr<crypto6::Encryptor> enc;
  std::unique_ptr<crypto6::Decryptor> dec;
};

void Session::StartKeys6() {
  if (!config_->aes || config_->aes_key.empty()) {
    Disconnect(reason::kAuthenticationError,
               "AES encryption is not enabled on this port of the relay: connect without --encryption, or with TLS "
               "(ssl:// or wss://)");
    return;
  }
  auto peer = crypto6::ParseParams(hs_->client_caps);
  if (!peer.ok()) {
    Disconnect(reason::kAuthenticationError, "invalid AES parameters: " + peer.error().message);
    return;
  }
  if (state_ == State::kClientHello) {
    // The whole login's derivations before authentication, charged at once: the client's key
    // and the relay's, again for the challenge reply (whose refusal could not be read).
    const int64_t per_hello = int64_t{peer->iterations} + crypto6::kDefaultIterations;
    const int64_t hellos = config_->auth->requires_challenge() ? 2 : 1;
    if (Status s = TakeKdf(static_cast<int>(per_hello * hellos)); !s.ok()) {
      Disconnect(reason::kServerError, s.error().message, "key derivation budget (--max-kdf-iterations)");
      return;
    }
    hs_->charged6_iterations = peer->iterations;
    const size_t block = crypto6::CipherBlock(peer->framing);
    hs_->client_reader.set_cipher_block(block);  // the client sends with the relay's parameters: same framing
    io_->SetClientCipherBlock(block);
  } else if (peer->iterations > hs_->charged6_iterations || peer->framing.mode != hs_->peer6.framing.mode ||
             peer->framing.stream != hs_->peer6.framing.stream) {
    Disconnect(reason::kAuthenticationError,
               "the AES parameters of the challenge reply differ from the first hello's (mode, stream or more key "
               "stretching)");
    return;
  }
  hs_->peer6 = std::move(*peer);
  key_job_ = KeyJob::kWaiting;
  RunKeys6();
}

void Session::RunKeys6() {
  if (!env_.kdf->TakeSlot()) {
    // Every derivation slot is busy (a burst of AES logins): ask again shortly, within the login time.
    io_->SetDeadline(std::max<int64_t>(1, std::min<int64_t>(kAuthRetryMs, login_deadline_ms_ - env_.now_ms())));
    return;
  }
  key_job_ = KeyJob::kRunning;
  io_->SetDeadline(std::max<int64_t>(1, login_deadline_ms_ - env_.now_ms()));  // not a retry's 20 ms
  // Given back when the worker is done with it, or with the job if it never runs.
  struct Slot {
    explicit Slot(KdfBudget* k) : kdf(k) {}
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { kdf->GiveSlot(); }
    KdfBudget* kdf;
  };
  auto slot = std::make_shared<Slot>(env_.kdf);
  auto config = config_;
  crypto6::Params peer = hs_->peer6;
  crypto6::Params own = crypto6::NewParams(peer);
  bool queued = io_->RunOffReactor([this, config, peer, own, slot]() mutable -> std::function<void()> {
    auto keys = std::make_shared<Keys6>();
    keys->own = own;
    auto derive = [&]() -> Status {
      auto ck = crypto6::DeriveKey(config->aes_key, peer.key_salt, peer.key_hash, peer.key_size, peer.iterations);
      if (!ck.ok()) return ck.error();
      auto ok = crypto6::DeriveKey(config->aes_key, own.key_salt, own.key_hash, own.key_size, own.iterations);
      if (!ok.ok()) return ok.error();
      auto enc = crypto6::Encryptor::Create(*ck, peer.iv, peer.framing);
      if (!enc.ok()) return enc.error();
      auto dec = crypto6::Decryptor::Create(*ok, own.iv, own.framing);
      if (!dec.ok()) return dec.error();
      OPENSSL_cleanse(ck->data(), ck->size());
      OPENSSL_cleanse(ok->data(), ok->size());
      keys->enc = std::move(*enc);
      keys->dec = std::move(*dec);
      return Status::Ok();
    };
    keys->status = derive();
    slot.reset();  // the slot is free once the work is done, not when the reactor gets to it
    return [this, keys]() { OnKeys6(keys); };
  });
  if (!queued) {
    key_job_ = KeyJob::kNone;
    Disconnect(reason::kServerError, "the relay is too busy to set up encryption now, try again", "worker queue full");
  }
}

void Session::OnKeys6(const std::shared_ptr<Keys6>& keys) {
  if (key_job_ != KeyJob::kRunning) return;
  key_job_ = KeyJob::kNone;
  if (state_ == State::kClosed || !hs_) return;
  if (!keys->status.ok()) {
    Disconnect(reason::kServerError, "cannot set up encryption", keys->status.error().message);
    return;
  }
  // The client keyed its receive side when it sent the hello: everything from now on is encrypted.
  encryptor6_ = std::move(keys->enc);
  hs_->next_decryptor6 = std::move(keys->dec);
  hs_->cipher6_caps = Value(Dict{{Value("encryption"), crypto6::ParamsDict(keys->own)}});
  io_->SetDeadline(std::max<int64_t>(1, login_deadline_ms_ - env_.now_ms()));
  XR_DEBUG("auth", "conn={} AES-{} keys ready (stream={}, {} iterations)", id_, crypto6::ModeName(hs_->peer6.mode),
           hs_->peer6.framing.stream, hs_->peer6.iterations);
  ContinueLogin();
  if (state_ == State::kClosed || !hs_) return;
  if (Status s = DrainClientFrames(); !s.ok()) Fail("bad data from client", s.error());
}

// Encrypts every frame of `wire` (plain frames as EncodePacket wrote them) as 6.x does.
Status Session::EncryptFrames6(std::string* wire) {
  std::string out;
  for (std::string_view rest = *wire; !rest.empty();) {
    auto h = DecodeHeader(rest);
    if (!h.ok() || rest.size() < kHeaderSize + h->payload_size) return MakeError(ErrorCode::kInternal, "bad frame");
    if (Status s = EncryptFrameToClient(*h, rest.substr(kHeaderSize, h->payload_size), &out); !s.ok()) return s;
    rest.remove_prefix(kHeaderSize + h->payload_size);
  }
  *wire = std::move(out);
  return Status::Ok();
}

// New receive parameters for the client leg (xpra's new_cipher_caps): resets the decryptor.
Value Session::NewCipherCaps() {
  const std::vector<std::string>& options = hs_->cipher_padding_options;
  bool pkcs7 = std::find(options.begin(), options.end(), "PKCS#7") != options.end();
  crypto::Padding padding = pkcs7 ? crypto::Padding::kPkcs7 : crypto::Padding::kLegacy;
  std::string iv = crypto::RandomIv();
  std::string key_salt = crypto::RandomBytes(kSaltBytes);
  auto key = crypto::DeriveKey(config_->aes_key, key_salt, kCipherIterations);
  if (!key.ok()) return Value();
  auto dec = crypto::Decryptor::Create(*key, iv, padding);
  if (!dec.ok()) return Value();
  decryptor_ = std::move(*dec);
  Value out{Dict{}};
  out.set("cipher", "AES");
  out.set("cipher.iv", std::string_view(iv));
  out.set("cipher.key_salt", Value::bytes(key_salt));
  out.set("cipher.key_stretch_iterations", kCipherIterations);
  out.set("cipher.padding", pkcs7 ? "PKCS#7" : "legacy");
  out.set("cipher.padding.options", List{Value("PKCS#7"), Value("legacy")});
  return out;
}

void Session::SendChallenge() {
  Caps caps(hs_->client_caps);
  bool link_encrypted = encrypted() || transport_encrypted_;
  if (config_->auth->needs_password()) {
    // pam, ldap: the module needs the password itself, so only the xor digest will do.
    if (!ChooseClearPasswordDigest(caps, link_encrypted)) return;
  } else {
    hs_->digest = digest::ChooseDigest(caps.get_strings("digest").empty() ? std::vector<std::string>{"hmac"}
                                                                       : caps.get_strings("digest"),
                                       link_encrypted);
    if (hs_->digest.empty()) {
      Disconnect(reason::kAuthenticationError, "no supported digest: the relay needs hmac (or xor over an encrypted link)");
      return;
    }
  }
  // Never "xor" as the salt digest: the client's salt XOR ours lets the client choose the
  // combined salt (and replay a response); an hmac of both does not.
  std::vector<std::string> salt_digests = caps.get_strings("salt-digest");
  hs_->salt_digest = digest::ChooseDigest(salt_digests, false);
  if (hs_->salt_digest.empty()) {
    Disconnect(reason::kAuthenticationError, "no supported salt digest: the relay needs an hmac salt digest");
    return;
  }
  hs_->server_salt = crypto::RandomBytes(kSaltBytes);
  Value auth_caps = hs_->cipher_caps.is_dict() ? hs_->cipher_caps : Value("");
  if (encryptor6_) auth_caps = std::move(hs_->cipher6_caps);  // 6.x: {"encryption": {...}}
  SendToClientPacket(Value(List{Value("challenge"), Value::bytes(hs_->server_salt), auth_caps,
                                Value(std::string_view(hs_->digest)), Value(std::string_view(hs_->salt_digest)),
                                Value(std::string_view(config_->auth->prompt()))}));
  // The client encrypts with what the challenge announced from its next packet on.
  if (encryptor6_) decryptor6_ = std::move(hs_->next_decryptor6);
  hs_->cipher6_caps = Value();
  state_ = State::kChallengeSent;
  XR_DEBUG("auth", "conn={} challenge sent: digest={} salt-digest={}", id_, hs_->digest, hs_->salt_digest);
}

bool Session::ChooseClearPasswordDigest(const Caps& caps, bool link_encrypted) {
  const std::string module(config_->auth->name());
  if (!link_encrypted) {
    Disconnect(reason::kAuthenticationError,
               module + " authentication needs your password itself, which is never sent over an unencrypted "
                        "link: connect with ssl:// (or wss://), or use AES encryption (--encryption=AES)",
               "clear-password module on an unencrypted link");
    return false;
  }
  for (const std::string& d : caps.get_strings("digest")) {
    if (d == "xor") {
      hs_->digest = "xor";
      return true;
    }
  }
  Disconnect(reason::kAuthenticationError,
             module + " authentication needs the password itself (the xor digest), which your client does not offer");
  return false;
}

void Session::StartAuth(const Caps& caps) {
  // Back-off after failed logins, checked before verifying so it gives no password oracle.
  int64_t wait = env_.admission->BackoffMs(AddressOf(peer_), BackoffUser(), env_.now_ms());
  if (wait > 0) {
    Disconnect(reason::kAuthenticationError,
               fmt::format("too many failed logins, try again in {} seconds", (wait + 999) / 1000),
               "login back-off");
    return;
  }
  auth::AuthRequest req;
  req.username = username_;
  req.digest = hs_->digest;
  req.peer = peer_;
  req.peer_uid = peer_cred_.uid;
  req.peer_gid = peer_cred_.gid;
  req.peer_pid = peer_cred_.pid;
  req.source = SourceOf(AddressOf(peer_));
  req.backoff_user = BackoffUser();
  const AdmissionConfig policy = env_.admission->config();
  req.free_failures = policy.free_failures;
  req.failure_window_ms = policy.failure_window_ms;
  req.max_backoff_ms = policy.max_backoff_ms;
  if (config_->auth->requires_challenge()) {
    req.response = caps.get_string("challenge_response");
    std::string client_salt = caps.get_string("challenge_client_salt");
    if (client_salt.size() < kMinClientSalt || client_salt.size() > kMaxClientSalt) {
      Disconnect(reason::kAuthenticationError, "invalid challenge salt",
                 fmt::format("client salt of {} bytes, outside [{}, {}]", client_salt.size(), kMinClientSalt,
                             kMaxClientSalt));
      return;
    }
    auto salt = digest::CombineSalts(hs_->salt_digest, client_salt, hs_->server_salt);
    if (!salt.ok()) {
      Disconnect(reason::kAuthenticationError, "invalid challenge salt", salt.error().message);
      return;
    }
    req.salt = std::move(*salt);
  }
  // Verifications in flight count as failures until they end: a burst of parallel guesses sees
  // itself. Over the free ones this one waits (retried from OnTimeout), within the login time.
  if (!env_.admission->MayVerify(AddressOf(peer_), BackoffUser())) {
    auth_deferred_ = true;
    io_->SetDeadline(std::max<int64_t>(1, std::min<int64_t>(kAuthRetryMs, login_deadline_ms_ - env_.now_ms())));
    return;
  }
  auth_deferred_ = false;
  io_->SetDeadline(std::max<int64_t>(1, login_deadline_ms_ - env_.now_ms()));
  state_ = State::kAuthenticating;
  std::string display = RequestedDisplay(hs_->client_caps);
  display_ = display;
  registry::StartRequest start = StartRequestFrom(caps);
  env_.admission->Attempt(AddressOf(peer_), BackoffUser());
  verifying_ = true;
  auto config = config_;
  io_->RunAuth([config, req = std::move(req), display, start = std::move(start)]() -> AuthOutcome {
    AuthOutcome out;
    auto result = config->auth->Authenticate(req);
    if (!result.ok()) {
      out.client_reason = reason::kAuthenticationError;
      out.detail = "authentication failed";
      out.log_detail = result.error().message;
      const ErrorCode code = result.error().code;
      if (code == ErrorCode::kIo || code == ErrorCode::kTimeout) {
        // The checker (PAM stack, directory, command) could not answer: not a wrong password.
        out.client_reason = reason::kServerError;
        out.detail = "authentication service unavailable, try again later";
      }
      if (code == ErrorCode::kLimited) {
        // A limit shared by the relays of a cluster (back-off, sessions per user): not a failure.
        out.detail = result.error().message;
        out.limited = true;
      }
      return out;
    }
    out.username = result->username.empty() ? req.username : result->username;
    out.session_hold = std::shared_ptr<void>(nullptr, [config, user = out.username](void*) {
      config->auth->SessionEnded(user);
    });
    auto target = registry::SelectUserTarget(result->sessions, out.username, display, start, config->registry);
    if (!target.ok()) {
      out.client_reason = reason::kSessionNotFound;
      out.detail = target.error().message;
      return out;
    }
    out.target = std::move(*target);
    if (out.target.session_index < result->sessions.size()) {
      out.session_options = result->sessions[out.target.session_index].session_options;
    }
    out.ok = true;
    return out;
  });
}

void Session::OnAuthDone(AuthOutcome outcome) {
  if (state_ != State::kAuthenticating) return;
  // A wrong password is a failure; anything else (session not found, ...) had the right one.
  const bool failed = !outcome.ok && outcome.client_reason == reason::kAuthenticationError && !outcome.limited;
  verifying_ = false;
  env_.admission->Finished(AddressOf(peer_), BackoffUser(), failed, env_.now_ms());
  if (!outcome.ok) {
    if (failed) env_.counters->auth_failures++;
    Disconnect(outcome.client_reason, outcome.detail, outcome.log_detail);
    return;
  }
  authenticated_ = true;
  session_hold_ = std::move(outcome.session_hold);
  ChargeLoginMemory(0);
  hs_->client_reader.set_max_payload(config_->client_limits.max_payload);
  username_ = outcome.username;
  target_ = std::move(outcome.target);
  hs_->session_options = std::move(outcome.session_options);
  XR_INFO("conn", "conn={} peer={} authenticated as {}, connecting to {}", id_, peer_, LogUser(username_),
          target_.describe());
  state_ = State::kConnecting;
  io_->SetDeadline(config_->server_timeout_ms);
  io_->ConnectServer(target_);
}

// ---------------------------------------------------------------- server leg

void Session::OnServerConnected() {
  if (state_ != State::kConnecting) return;
  server_encoding_ = ChooseEncoding(Caps(hs_->client_caps), client_encoding_);
  if (!server_generation_retried_) {  // else RetryServerGeneration chose it
    server_generation_ = bridge::GenerationOf(client_encoding_);
    env_.generations->Find(target_.describe(), &server_generation_);
  }
  if (server_generation_ != bridge::GenerationOf(client_encoding_)) {
    server_encoding_ = DefaultFormat(server_generation_).encoding;
  }
  server_main_frame_seen_ = false;
  server_answered_ = false;
  if (!SendHelloToServer(nullptr)) return;
  state_ = State::kServerHello;
}

bool Session::SendHelloToServer(const Value* extra) {
  Value hello = MakeServerHello(hs_->client_caps, hs_->session_options, config_->identity);
  if (!target_.username.empty()) hello.set("username", std::string_view(target_.username));
  if (extra != nullptr) {
    for (const auto& [k, v] : extra->as_dict()) hello.set(k.as_string(), v);
  }
  std::string wire;
  EncodeOptions opts;
  opts.encoding = server_encoding_;
  if (server_generation_ != bridge::GenerationOf(client_encoding_)) {
    // Bridge: the hello as the server's generation writes it, offering what the relay reads.
    hello = server_generation_ == bridge::Generation::k6 ? bridge::HelloTo6(hello) : bridge::HelloTo3(hello);
    bridge::SetFormatCaps(server_generation_, &hello);
    bridge::WireFormat f = DefaultFormat(server_generation_);
    opts.encoding = f.encoding;
    opts.compressor = f.compressor;
    opts.level = 1;
    opts.flush = server_generation_ == bridge::Generation::k6;
  }
  if (Status s = EncodePacket(Value(List{Value("hello"), std::move(hello)}), opts, nullptr, &wire); !s.ok()) {
    Disconnect(reason::kServerError, "cannot encode the hello for the server", s.error().message);
    return false;
  }
  io_->SendToServer(std::move(wire));
  return true;
}

void Session::OnServerConnectFailed(std::string_view why) {
  if (state_ != State::kConnecting) return;
  Disconnect(reason::kConnectionError,
             fmt::format("cannot connect to the session at {}: {}", target_.display.empty() ? target_.describe() : target_.display, why),
             target_.describe());
}

void Session::OnServerData(std::string_view bytes) {
  if (state_ == State::kClosed || !hs_) return;
  if (state_ == State::kServerHello && !server_answered_ && !bytes.empty()) {
    server_answered_ = true;
    // Not an xpra frame at all: xpra 6.x refuses a hello it has no decoder for with a line of
    // text ("invalid packet encoding"), so the hello goes again in 6.x's encoding (once).
    if (bytes[0] != kHeaderMagic &&
        RetryServerGeneration(fmt::format("it answered with text, not an xpra frame ('{}')",
                                          log::Sanitize(bytes.substr(0, 80), 80)))) {
      return;
    }
  }
  hs_->server_reader.Feed(bytes);
  if (Status s = DrainServerFrames(); !s.ok()) ServerFailed(s.error());
  if (state_ == State::kRelay && !encrypted() && !bridge_) hs_.reset();  // plain: the reactor relays from now on
}

void Session::ServerFailed(const Error& e) {
  TellServer(reason::kProtocolError, e.message);
  Disconnect(reason::kServerError, "invalid data from the session's server: " + e.message);
}

Status Session::DrainServerFrames() {
  while (state_ != State::kClosed) {
    if (state_ == State::kRelay) return RelayServerFrames();  // relaying, or the hello was just handled
    auto next = hs_->server_reader.Next();
    if (!next.ok()) return next.error();
    if (!next->has_value()) return Status::Ok();
    RawFrame frame = std::move(**next);
    if (frame.header.encrypted()) return MakeError(ErrorCode::kMalformed, "encrypted packet from the server");
    if (state_ != State::kServerHello) return MakeError(ErrorCode::kMalformed, "server sent data before the hello");
    if (frame.header.index == 0 && !server_main_frame_seen_) {
      server_main_frame_seen_ = true;
      bridge::Generation answered = bridge::GenerationOfFlags(frame.header.flags);
      if (answered != server_generation_) {
        // It could not read our hello (xpra 3.1 and 6.x share no encoder): speak its generation.
        if (RetryServerGeneration(fmt::format("it answered in xpra {}'s encoding", bridge::GenerationName(answered)))) {
          return Status::Ok();
        }
        return MakeError(ErrorCode::kMalformed, fmt::format("the session's server answered in xpra {}'s encoding to a hello in its own",
                                                            bridge::GenerationName(answered)));
      }
      env_.generations->Remember(target_.describe(), answered);
    }
    // Keep the wire bytes: a packet that is not part of the handshake (a real server pings
    // every client, even one it has not sent its hello to yet) goes to the client after it.
    hs_->server_frames_since_main += SerializeFrame(frame.header, frame.payload);
    bool main_packet = frame.header.index == 0;
    auto packet = hs_->server_decoder.Push(std::move(frame));
    if (!packet.ok()) return packet.error();
    if (packet->has_value()) HandleServerPacket(std::move(**packet));
    if (main_packet) hs_->server_frames_since_main.clear();
  }
  return Status::Ok();
}

void Session::HandleServerPacket(Value packet) {
  const List& items = packet.as_list();
  std::string_view type = items[0].as_string();
  if (type == "challenge") {
    AnswerServerChallenge(packet);
    return;
  }
  if (type == "disconnect") {
    std::string why = items.size() > 1 && items[1].is_string() ? items[1].as_string() : "disconnected";
    std::string detail;
    for (size_t i = 2; i < items.size(); ++i) {
      if (items[i].is_string()) detail += (detail.empty() ? "" : ", ") + items[i].as_string();
    }
    Disconnect(why, detail, "disconnected by the session's server");
    return;
  }
  if (type == "hello" && items.size() >= 2 && items[1].is_dict()) {
    HandleServerHello(items[1]);
    return;
  }
  if (type == "hello") {
    Disconnect(reason::kServerError, "invalid hello from the session's server");
    return;
  }
  constexpr size_t kMaxEarlyBytes = 1 << 20;
  if (hs_->pending_to_client.size() + hs_->server_frames_since_main.size() > kMaxEarlyBytes) {
    Disconnect(reason::kServerError, "the session's server sent too much before its hello");
    return;
  }
  XR_DEBUG("conn", "conn={} '{}' from the server before its hello: passed on after it", id_, type);
  hs_->pending_to_client += hs_->server_frames_since_main;
}

void Session::AnswerServerChallenge(const Value& packet) {
  const List& items = packet.as_list();
  if (items.size() >= 4 && items[3].is_string() && items[3].as_string() == "xor") {
    // xor sends the password itself (XOR a salt the server chose) over this plain leg.
    Disconnect(reason::kAuthenticationError,
               "the session's server asked for the password in clear (xor digest) over an unencrypted connection",
               "refused to answer an xor challenge from the session's server");
    return;
  }
  // As xpra's proxy: the password in the target URI first, then the entry's session options.
  std::string password = !target_.password.empty() ? target_.password : SessionPassword(hs_->session_options);
  if (password.empty()) {
    Disconnect(reason::kAuthenticationError,
               "the session's server requires authentication but no password is configured for this session");
    return;
  }
  if (server_challenge_answered_ || items.size() < 4 || !items[1].is_string() || !items[3].is_string()) {
    Disconnect(reason::kAuthenticationError, "invalid or repeated challenge from the session's server");
    return;
  }
  server_challenge_answered_ = true;
  std::string server_salt = items[1].as_string();
  std::string digest = items[3].as_string();
  std::string salt_digest = items.size() > 4 && items[4].is_string() ? items[4].as_string() : "xor";
  size_t len = salt_digest == "xor" ? server_salt.size() : 32;
  if (salt_digest == "xor" && (len < 16 || len > 256)) {
    Disconnect(reason::kAuthenticationError, "the session's server sent an invalid salt");
    return;
  }
  std::string client_salt = crypto::RandomBytes(len);
  auto salt = digest::CombineSalts(salt_digest, client_salt, server_salt);
  if (!salt.ok()) {
    Disconnect(reason::kAuthenticationError, "unsupported salt digest from the session's server: " + salt_digest);
    return;
  }
  auto response = digest::ComputeResponse(digest, password, *salt);
  if (!response.ok()) {
    Disconnect(reason::kAuthenticationError, "unsupported digest from the session's server: " + digest);
    return;
  }
  Value answer{Dict{}};
  answer.set("challenge_response", std::string_view(*response));
  answer.set("challenge_client_salt", Value::bytes(client_salt));
  if (SendHelloToServer(&answer)) XR_DEBUG("auth", "conn={} answered the server's {} challenge", id_, digest);
}

void Session::HandleServerHello(const Value& caps) {
  // From its hello on, the server's frames may be as large as --max-server-packet-size.
  hs_->server_reader.set_max_payload(config_->server_limits.max_payload);
  Value cipher_caps;
  if (encryptor_) {
    cipher_caps = NewCipherCaps();
    if (cipher_caps.is_none()) {
      Disconnect(reason::kServerError, "cannot set up encryption");
      return;
    }
  } else if (encryptor6_) {
    // 6.x: the receive parameters derived with the client's last hello, announced now.
    if (!hs_->cipher6_caps.is_dict() || !hs_->next_decryptor6) {
      Disconnect(reason::kServerError, "cannot set up encryption", "no AES parameters to announce");
      return;
    }
    cipher_caps = std::move(hs_->cipher6_caps);
  }
  Value hello = MakeClientHello(caps, config_->identity, encrypted() ? &cipher_caps : nullptr);
  const bridge::Generation client_gen = bridge::GenerationOf(client_encoding_);
  if (server_generation_ != client_gen) {
    size_t max_server = config_->server_limits.max_payload;
    size_t max_client = config_->client_limits.max_payload;
    bridge_ = std::make_unique<Bridge>(Bridge{
        bridge::Translator(client_gen, bridge::FormatFor(server_generation_, caps), max_client, config_->decode_limits),
        bridge::Translator(server_generation_, bridge::FormatFor(client_gen, hs_->client_caps), max_server,
                           config_->decode_limits),
        {}});
    hello = bridge_->to_client.TranslateHello(hello);
    XR_INFO("conn", "conn={} peer={} bridging xpra {} client <-> xpra {} server: {} <-> {}", id_, peer_,
            bridge::GenerationName(client_gen), bridge::GenerationName(server_generation_),
            bridge::FormatName(bridge_->to_client.to()), bridge::FormatName(bridge_->to_server.to()));
  }
  SendToClientPacket(Value(List{Value("hello"), std::move(hello)}));
  if (state_ == State::kClosed) return;
  if (encryptor6_) decryptor6_ = std::move(hs_->next_decryptor6);
  // Packets the server sent before its hello (pings), after it, as frames.
  if (!hs_->pending_to_client.empty()) {
    std::string early;
    early.swap(hs_->pending_to_client);
    FrameReader split(FrameLimits{kHardMaxPayload, 3});
    split.Feed(early);
    while (true) {
      auto f = split.Next();
      if (!f.ok() || !f->has_value()) break;
      std::string out;
      if (bridge_) {
        std::string dropped;
        auto sink = [&](const FrameHeader& h, std::string_view p) { return EncryptFrameToClient(h, p, &out); };
        if (!bridge_->to_client.Translate((**f).header, (**f).payload, sink, &dropped).ok()) continue;
        if (!dropped.empty()) NoteDropped(dropped, false);
        if (!out.empty()) io_->SendToClient(std::move(out));
        continue;
      }
      if (EncryptFrameToClient((**f).header, (**f).payload, &out).ok()) io_->SendToClient(std::move(out));
    }
  }
  state_ = State::kRelay;
  CountLogin(true, "authenticated");
  io_->SetDeadline(0);
  io_->Relaying();
  XR_INFO("conn", "conn={} peer={} user={} relaying to {} (client {}{}{})", id_, peer_, LogUser(username_),
          target_.describe(), EncodingName(client_encoding_), encrypted() ? ", AES" : "",
          encryptor6_ ? std::string("-") + crypto6::ModeName(encryptor6_->framing().mode) +
                            (encryptor6_->framing().stream ? "" : " per-packet iv")
                      : std::string());
  if (bridge_) {
    // The client's frames that waited for the session, translated (each a whole frame).
    std::vector<std::string> pending;
    pending.swap(hs_->pending_to_server);
    for (const std::string& frame : pending) {
      auto h = DecodeHeader(frame);
      if (!h.ok()) continue;
      if (Status s = BridgeToServer(*h, std::string_view(frame).substr(kHeaderSize)); !s.ok()) {
        Fail("bad data from client", s.error());
        return;
      }
    }
  }
  for (auto& frame : hs_->pending_to_server) io_->SendToServer(std::move(frame));
  hs_->pending_to_server.clear();
  if (!encrypted() && !bridge_) {
    // Plain on both legs: hand the rest of both streams to the reactor's passthrough.
    std::string client_rest = hs_->client_reader.TakeBuffered();
    std::string server_rest;
    while (true) {
      auto next = hs_->server_reader.Next();
      Status s = next.ok() ? Status::Ok() : Status(next.error());
      if (!s.ok()) {
        // A frame over the limits came with the hello: what precedes it goes on, it does not.
        io_->SendToClient(std::move(server_rest));
        ServerFailed(s.error());
        return;
      }
      if (!next->has_value()) break;
      server_rest += SerializeFrame((**next).header, (**next).payload);
    }
    server_rest += hs_->server_reader.TakeBuffered();
    // Passthrough first, so the reactor's frame trackers see the buffered rest too (it may
    // end inside a frame).
    io_->StartPassthrough();
    if (!client_rest.empty()) io_->SendToServer(std::move(client_rest));
    if (!server_rest.empty()) io_->SendToClient(std::move(server_rest));
    // Nothing of the handshake is needed any more: OnServerData frees it once the frame
    // being handled is done with (an idle relayed connection keeps only what `xpra info
    // :proxy-N` reports).
    return;
  }
  // AES or bridge: keep transforming frame by frame; process what is already buffered.
  if (Status s = DrainServerFrames(); !s.ok()) {
    ServerFailed(s.error());
    return;
  }
  if (Status s = DrainClientFrames(); !s.ok()) Fail("bad data from client", s.error());
}

// AES client leg, relaying: every complete server frame is encrypted straight from the frame
// reader's buffer (no copy of the payload) into one wire buffer for the whole batch, so the
// client gets one send per batch, not one per frame (a stream packet is a 64 KiB chunk frame
// followed by a small draw packet frame, usually received together).
Status Session::RelayServerFrames() {
  std::string batch;
  Status status = Status::Ok();
  while (true) {
    auto next = hs_->server_reader.NextView();
    if (!next.ok()) {
      status = next.error();
      break;
    }
    if (!next->has_value()) break;
    const FrameView& frame = **next;
    if (frame.header.encrypted()) {
      status = MakeError(ErrorCode::kMalformed, "encrypted packet from the server");
      break;
    }
    if (bridge_) {
      std::string dropped;
      auto sink = [&](const FrameHeader& h, std::string_view p) { return EncryptFrameToClient(h, p, &batch); };
      if (Status s = bridge_->to_client.Translate(frame.header, frame.payload, sink, &dropped); !s.ok()) {
        status = s;
        break;
      }
      if (!dropped.empty()) NoteDropped(dropped, false);
      continue;
    }
    if (Status s = EncryptFrameToClient(frame.header, frame.payload, &batch); !s.ok()) {
      status = s;
      break;
    }
  }
  // Frames encrypted before an error still go out, ahead of the disconnect packet.
  if (!batch.empty()) io_->SendToClient(std::move(batch));
  return status;
}

// ---------------------------------------------------------------- output

Status Session::EncryptFrameToClient(const FrameHeader& h, std::string_view plain, std::string* out) {
  // Room for this frame, and when it starts a batch a little more for the small frames that
  // usually follow (a draw packet after its pixel chunk), so appending them does not move it.
  constexpr size_t kBatchSlack = 1024;
  const size_t start = out->size();
  if (encryptor6_) {
    // 6.x: the size is known once encrypted (a per-packet iv counts in it): header written after.
    out->reserve(start + kHeaderSize + crypto6::kIvSize + plain.size() + 16 + (start == 0 ? kBatchSlack : 0));
    out->resize(start + kHeaderSize);
    uint32_t size = 0;
    if (Status s = encryptor6_->Encrypt(plain, out, &size); !s.ok()) {
      out->resize(start);
      return s;
    }
    FrameHeader eh = h;
    eh.flags |= flags::kCipher;
    eh.payload_size = size;
    EncodeHeader(eh, out->data() + start);
    return Status::Ok();
  }
  if (!encryptor_) {
    // Plain (a bridged session): header and payload appended in place (no temporary frame: a
    // 64 KiB chunk is copied once), with room for the small frames that usually follow it.
    char head[kHeaderSize];
    EncodeHeader(h, head);
    out->reserve(start + kHeaderSize + plain.size() + (start == 0 ? kBatchSlack : 0));
    out->append(head, kHeaderSize);
    out->append(plain);
    return Status::Ok();
  }
  out->reserve(start + kHeaderSize + crypto::PaddedSize(plain.size()) + (start == 0 ? kBatchSlack : 0));
  FrameHeader eh = h;
  eh.flags |= flags::kCipher;
  eh.payload_size = static_cast<uint32_t>(plain.size());
  out->resize(start + kHeaderSize);
  EncodeHeader(eh, out->data() + start);
  if (Status s = encryptor_->Encrypt(plain, out); !s.ok()) {
    out->resize(start);
    return s;
  }
  return Status::Ok();
}

void Session::SendToClientPacket(const Value& packet) {
  std::string wire;
  EncodeOptions opts;
  opts.encoding = client_encoding_;
  if (Status s = EncodePacket(packet, opts, encryptor_.get(), &wire); !s.ok()) {
    XR_ERROR("conn", "conn={} cannot encode a packet for the client: {}", id_, s.error().message);
    return;
  }
  if (encryptor6_) {
    if (Status s = EncryptFrames6(&wire); !s.ok()) {
      XR_ERROR("conn", "conn={} cannot encrypt a packet for the client: {}", id_, s.error().message);
      return;
    }
  }
  io_->SendToClient(std::move(wire));
}

// ---------------------------------------------------------------- events

void Session::OnClientClosed(std::string_view why) {
  if (state_ == State::kClosed) return;
  XR_INFO("conn", "conn={} peer={} user={} client closed the connection ({}) in state {}", id_, peer_,
          LogUser(username_), why, SessionStateName(state_));
  // As xpra's proxy: the server hears why its client went away (it logs the reason).
  TellServer(reason::kClientConnectionLost, fmt::format("the client's connection to the relay ended: {}", why));
  if (state_ != State::kRelay) CountLogin(false, "client-closed");
  state_ = State::kClosed;
  io_->Close("client closed");
}

void Session::OnServerClosed(std::string_view why) {
  if (state_ == State::kClosed) return;
  if (state_ == State::kRelay) {
    // Frames already queued for the client go out first; then it learns the session ended.
    Disconnect(reason::kServerShutdown, "the session's server closed the connection", why);
    return;
  }
  Disconnect(reason::kConnectionError, "the session's server closed the connection during the handshake", why);
}

// ---------------------------------------------------------------- bridge

bool Session::RetryServerGeneration(std::string_view why) {
  if (server_generation_retried_ || !hs_) return false;
  bridge::Generation other =
      server_generation_ == bridge::Generation::k6 ? bridge::Generation::k3 : bridge::Generation::k6;
  server_generation_retried_ = true;
  hs_->server_reader = FrameReader(LoginFrameLimits(config_->server_limits, config_->max_login_packet));
  hs_->server_decoder = PacketDecoder(LoginFrameLimits(config_->server_limits, config_->max_login_packet), config_->decode_limits);
  hs_->pending_to_client.clear();
  hs_->server_frames_since_main.clear();
  server_challenge_answered_ = false;
  XR_INFO("conn", "conn={} peer={} the session's server did not take a hello in xpra {}'s encoding ({}): connecting again in xpra {}'s",
          id_, peer_, bridge::GenerationName(server_generation_), why, bridge::GenerationName(other));
  server_generation_ = other;  // remembered for the target once the server answers in it
  state_ = State::kConnecting;
  if (!io_->ReconnectServer(target_)) {
    state_ = State::kServerHello;
    return false;
  }
  return true;
}

Status Session::BridgeToServer(const FrameHeader& h, std::string_view payload) {
  std::string out;
  std::string dropped;
  auto sink = [&](const FrameHeader& oh, std::string_view p) {
    out.append(SerializeFrame(oh, p));
    return Status::Ok();
  };
  if (Status s = bridge_->to_server.Translate(h, payload, sink, &dropped); !s.ok()) return s;
  if (!dropped.empty()) NoteDropped(dropped, true);
  if (!out.empty()) io_->SendToServer(std::move(out));
  return Status::Ok();
}

void Session::NoteDropped(const std::string& type, bool to_server) {
  std::string key = log::Sanitize(type, 64);
  auto& drops = bridge_->drops;
  auto it = std::find_if(drops.begin(), drops.end(), [&](const auto& d) { return d.first == key; });
  if (it == drops.end()) {
    if (drops.size() >= kMaxDropTypes) {
      key = "other";
      it = std::find_if(drops.begin(), drops.end(), [&](const auto& d) { return d.first == key; });
    }
    if (it == drops.end()) {
      drops.emplace_back(key, 0);
      it = drops.end() - 1;
    }
  }
  uint64_t n = ++it->second;
  if (n == 1 || n % 1000 == 0) {
    XR_INFO("conn", "conn={} bridge: '{}' from the {} has no counterpart in xpra {}: dropped ({} so far)", id_, key,
            to_server ? "client" : "server",
            bridge::GenerationName(to_server ? bridge_->to_server.to_generation() : bridge_->to_client.to_generation()), n);
  }
}

Value Session::BridgeInfo() const {
  if (!bridge_) return Value();
  Value info{Dict{}};
  info.set("description", fmt::format("bridging {} <-> {}", bridge::FormatName(bridge_->to_client.to()),
                                      bridge::FormatName(bridge_->to_server.to())));
  info.set("client-generation", bridge::GenerationName(bridge_->to_server.from()));
  info.set("server-generation", bridge::GenerationName(bridge_->to_client.from()));
  info.set("packets-to-server", static_cast<long long>(bridge_->to_server.packets()));
  info.set("packets-to-client", static_cast<long long>(bridge_->to_client.packets()));
  info.set("chunks-to-server", static_cast<long long>(bridge_->to_server.chunks()));
  info.set("chunks-to-client", static_cast<long long>(bridge_->to_client.chunks()));
  info.set("dropped", static_cast<long long>(bridge_->to_server.dropped() + bridge_->to_client.dropped()));
  Value drops{Dict{}};
  for (const auto& [type, n] : bridge_->drops) drops.set(type, static_cast<long long>(n));
  info.set("dropped-types", std::move(drops));
  return info;
}

void Session::OnTimeout() {
  if (key_job_ == KeyJob::kWaiting && hs_ && state_ != State::kClosed && env_.now_ms() < login_deadline_ms_) {
    RunKeys6();  // a derivation slot may be free now
    return;
  }
  if (auth_deferred_ && hs_ && (state_ == State::kClientHello || state_ == State::kChallengeSent) &&
      env_.now_ms() < login_deadline_ms_) {
    StartAuth(Caps(hs_->client_caps));  // waits again, refuses, or starts the verification
    return;
  }
  switch (state_) {
    case State::kClientHello:
    case State::kChallengeSent:
    case State::kAuthenticating:
      Disconnect(reason::kLoginTimeout, "no complete login within the time allowed");
      break;
    case State::kConnecting:
    case State::kServerHello:
      Disconnect(reason::kConnectionError,
                 fmt::format("the session at {} did not answer in time", target_.describe()));
      break;
    case State::kRelay:
    case State::kClosed:
      break;
  }
}

}  // namespace xr::engine
