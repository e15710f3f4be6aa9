// Drives engine::Session step by step through a recording SessionIo: real codec on both
// sides, a real multifile auth module on a temp file, every error path.
#include "engine/session.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <optional>

#include "auth/factory.h"
#include "engine/limits.h"
#include "codec/cipher.h"
#include "codec/cipher6.h"
#include "codec/digest.h"
#include "codec/frame_reader.h"
#include "codec/header.h"
#include "codec/packet.h"

using namespace xr;
using namespace xr::engine;

namespace {

struct FakeIo : SessionIo {
  std::string to_client, to_server;
  std::vector<std::function<AuthOutcome()>> auth_jobs;
  std::optional<registry::Target> connect_target;
  bool passthrough = false;
  int64_t deadline = -1;
  std::string closed;  // log reason; empty while open
  int client_sends = 0;
  void SendToClient(std::string b) override {
    to_client += b;
    ++client_sends;
  }
  void SendToServer(std::string b) override { to_server += b; }
  void RunAuth(std::function<AuthOutcome()> job) override { auth_jobs.push_back(std::move(job)); }
  void ConnectServer(const registry::Target& t) override { connect_target = t; }
  int reconnects = 0;
  bool ReconnectServer(const registry::Target& t) override {
    ++reconnects;
    connect_target = t;
    to_server.clear();  // the old leg's queue goes with it
    return true;
  }
  void StartPassthrough() override { passthrough = true; }
  void SetDeadline(int64_t ms) override { deadline = ms; }
  void Close(std::string_view why) override { closed = std::string(why); }
  // Off-reactor jobs (6.x key derivation) wait here until the test runs them (RunOffJobs).
  std::vector<std::function<std::function<void()>()>> off_jobs;
  bool off_queue_full = false;
  size_t client_cipher_block = 32;
  bool RunOffReactor(std::function<std::function<void()>()> job) override {
    if (off_queue_full) return false;
    off_jobs.push_back(std::move(job));
    return true;
  }
  void SetClientCipherBlock(size_t block) override { client_cipher_block = block; }
};

// Decodes every packet in a byte stream (optionally decrypting frames first).
struct Reader {
  FrameReader frames{FrameLimits{}};
  PacketDecoder decoder{FrameLimits{}, DecodeLimits{}};
  crypto::Decryptor* dec = nullptr;
  crypto6::Decryptor* dec6 = nullptr;  // xpra 6.x: every frame must be encrypted once it is set
  std::vector<Value> Read(std::string& bytes) {
    frames.Feed(bytes);
    bytes.clear();
    std::vector<Value> out;
    while (true) {
      auto f = frames.Next();
      REQUIRE(f.ok());
      if (!f->has_value()) break;
      RawFrame frame = std::move(**f);
      if (dec6 != nullptr) REQUIRE(frame.header.encrypted());
      if (frame.header.encrypted()) {
        REQUIRE((dec != nullptr || dec6 != nullptr));
        std::string plain;
        REQUIRE((dec6 != nullptr ? dec6->Decrypt(frame.payload, frame.header.payload_size, &plain)
                                 : dec->Decrypt(frame.payload, frame.header.payload_size, &plain))
                    .ok());
        frame.payload = plain;
        frame.header.payload_size = static_cast<uint32_t>(plain.size());  // 6.x: without its iv
        frame.header.flags &= static_cast<uint8_t>(~flags::kCipher);
      }
      auto p = decoder.Push(std::move(frame));
      REQUIRE(p.ok());
      if (p->has_value()) out.push_back(std::move(**p));
    }
    return out;
  }
};

std::string Wire(const Value& packet, crypto::Encryptor* enc = nullptr, Encoding e = Encoding::kRencode) {
  std::string out;
  EncodeOptions o;
  o.encoding = e;
  REQUIRE(EncodePacket(packet, o, enc, &out).ok());
  return out;
}

Value ClientHello(std::string_view user, std::string_view display = "") {
  Value caps{Dict{}};
  caps.set("version", "3.1.3");
  caps.set("username", user);
  if (!display.empty()) caps.set("display", display);
  caps.set("rencode", true);
  caps.set("bencode", true);
  caps.set("lz4", true);
  caps.set("digest", List{Value("hmac"), Value("hmac+sha1"), Value("hmac+sha256"), Value("xor")});
  caps.set("salt-digest", List{Value("xor"), Value("hmac+sha256")});
  caps.set("aliases", Dict{{Value("hello"), Value(1)}});
  caps.set("challenge", true);
  return caps;
}

std::string TempFile(const std::string& content) {
  char path[] = "/tmp/xr-session-test-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  close(fd);
  return path;
}

// The cipher keys of a client hello asking for AES with these receive parameters.
Value CipherCaps(std::string_view iv, const std::string& key_salt, std::string_view padding,
                 bool with_options = true) {
  Value c{Dict{}};
  c.set("cipher", "AES");
  c.set("cipher.iv", iv);
  c.set("cipher.key_salt", Value::bytes(key_salt));
  c.set("cipher.key_stretch_iterations", 1000);
  c.set("cipher.padding", padding);
  if (with_options) c.set("cipher.padding.options", List{Value(padding)});
  return c;
}

// Adds every key of `extra` to the dict `caps`.
void Merge(Value& caps, const Value& extra) {
  for (const auto& [k, v] : extra.as_dict()) caps.set(k.as_string(), v);
}

struct Fixture {
  std::string users;
  std::shared_ptr<SessionConfig> config = std::make_shared<SessionConfig>();
  FakeIo io;
  std::unique_ptr<Session> session;
  Reader client_reader;   // what the client receives
  Reader server_reader;   // what the server receives

  // Each fixture's sessions get their own admission state and counters unless a test shares one.
  Admission own_admission;
  RelayCounters counters;
  Admission* admission = &own_admission;
  LoginMemory own_login_memory{size_t{256} << 20};
  LoginMemory* login_memory = &own_login_memory;
  KdfBudget kdf{200000};
  Encoding encoding = Encoding::kRencode;  // what Login() and Respond() send with (kRencodePlus: a 6.x client)

  GenerationMemory generations;  // the targets' xpra generations, this fixture's own
  SessionEnv Env() { return SessionEnv{admission, &counters, NowMs, login_memory, &kdf, &generations}; }

  explicit Fixture(const std::string& auth_extra = "", bool aes = false, Admission* shared = nullptr,
                   LoginMemory* shared_memory = nullptr) {
    if (shared != nullptr) admission = shared;
    if (shared_memory != nullptr) login_memory = shared_memory;
    users = TempFile(
        "foo|bar|1000|1000|tcp://127.0.0.1:15200/200,tcp://127.0.0.1:15201/201|||\n"
        "solo|pw|1000|1000|tcp://127.0.0.1:15300/||password=serverpw\n"
        "bridged|pw|1000|1000|tcp://127.0.0.1:15400/|||\n");
    auto m = auth::CreateAuthModule("multifile,filename=" + users + auth_extra);
    REQUIRE(m.ok());
    config->auth = std::shared_ptr<auth::AuthModule>(std::move(*m));
    config->identity = ProxyIdentity{"0.1.0-test", "relayhost"};
    config->aes = aes;
    if (aes) config->aes_key = "secret-key";
    session = std::make_unique<Session>(7, "127.0.0.1:5555", config, &io, Env());
    session->Start();
  }
  ~Fixture() {
    session.reset();  // before the admission state, counters and budgets it uses
    ::unlink(users.c_str());
  }

  // The packets the client has received since last call.
  std::vector<Value> ClientGot() { return client_reader.Read(io.to_client); }
  std::vector<Value> ServerGot() { return server_reader.Read(io.to_server); }

  // Runs the queued auth job as the worker pool would.
  void RunAuthJobs() {
    auto jobs = std::move(io.auth_jobs);
    io.auth_jobs.clear();
    for (auto& j : jobs) session->OnAuthDone(j());
  }

  // Runs the queued off-reactor jobs as a worker would, then their results as the reactor would.
  void RunOffJobs() {
    auto jobs = std::move(io.off_jobs);
    io.off_jobs.clear();
    for (auto& j : jobs) j()();
  }

  // The second hello answering the challenge in `challenge` for `password`.
  Value ResponseHello(const Value& challenge, std::string_view user, std::string_view password,
                      std::string_view display = "") {
    const List& c = challenge.as_list();
    std::string server_salt = c[1].as_string();
    std::string digest = c[3].as_string();
    std::string salt_digest = c[4].as_string();
    std::string client_salt = crypto::RandomBytes(salt_digest == "xor" ? server_salt.size() : 32);
    auto salt = digest::CombineSalts(salt_digest, client_salt, server_salt);
    REQUIRE(salt.ok());
    auto response = digest::ComputeResponse(digest, password, *salt);
    REQUIRE(response.ok());
    Value caps = ClientHello(user, display);
    caps.set("challenge_response", std::string_view(*response));
    caps.set("challenge_client_salt", Value::bytes(client_salt));
    return caps;
  }

  // Answers the challenge in `challenge` for `password` and sends the second hello.
  void Respond(const Value& challenge, std::string_view user, std::string_view password,
               std::string_view display = "", crypto::Encryptor* enc = nullptr,
               const Value* extra_caps = nullptr) {
    Value caps = ResponseHello(challenge, user, password, display);
    if (extra_caps != nullptr) Merge(caps, *extra_caps);
    session->OnClientData(Wire(Value(List{Value("hello"), caps}), enc, encoding));
  }

  Value ExpectOne(std::vector<Value> packets, std::string_view type) {
    REQUIRE(packets.size() == 1);
    REQUIRE(packets[0].is_list());
    CHECK(packets[0].as_list()[0].as_string() == type);
    return packets[0];
  }

  void ExpectDisconnect(std::string_view reason, std::string_view detail_part = "") {
    auto packets = ClientGot();
    REQUIRE(!packets.empty());
    const List& d = packets.back().as_list();
    REQUIRE(d[0].as_string() == "disconnect");
    CHECK(d[1].as_string() == reason);
    if (!detail_part.empty()) {
      REQUIRE(d.size() >= 3);
      CHECK(d[2].as_string().find(detail_part) != std::string::npos);
    }
    CHECK(!io.closed.empty());
    CHECK(session->state() == Session::State::kClosed);
  }

  // Hello, challenge, response and the auth job, as a client logging in with these credentials.
  void Login(std::string_view user, std::string_view password, std::string_view display) {
    session->OnClientData(Wire(Value(List{Value("hello"), ClientHello(user, display)}), nullptr, encoding));
    Value challenge = ExpectOne(ClientGot(), "challenge");
    Respond(challenge, user, password, display);
    RunAuthJobs();
  }

  // Full login of foo up to the connect request.
  void LoginFoo(std::string_view display = "200") { Login("foo", "bar", display); }
};

}  // namespace

TEST_CASE("login timer starts with the session") {
  Fixture f;
  CHECK(f.io.deadline == 30000);
  CHECK(f.session->state() == Session::State::kClientHello);
}

TEST_CASE("challenge: strongest hmac the client offers, 64-byte salt, xor not over plain links") {
  Fixture f;
  f.session->OnClientData(Wire(Value(List{Value("hello"), ClientHello("foo")})));
  Value c = f.ExpectOne(f.ClientGot(), "challenge");
  const List& l = c.as_list();
  CHECK(l[1].as_string().size() == 64);
  CHECK(l[3].as_string() == "hmac+sha256");
  CHECK(l[4].as_string() == "hmac+sha256");
  CHECK(f.session->state() == Session::State::kChallengeSent);
}

TEST_CASE("happy path: challenge, auth, target, server hello rewritten, passthrough") {
  Fixture f;
  f.LoginFoo("200");
  REQUIRE(f.io.connect_target.has_value());
  CHECK(f.io.connect_target->port == 15200);
  CHECK(f.session->state() == Session::State::kConnecting);
  CHECK(f.session->username() == "foo");

  f.session->OnServerConnected();
  Value hello = f.ExpectOne(f.ServerGot(), "hello");
  Caps sc(hello.as_list()[1]);
  CHECK(sc.get_bool("proxy"));
  CHECK(sc.get_string("proxy.hostname") == "relayhost");
  CHECK_FALSE(sc.has("challenge_response"));
  CHECK_FALSE(sc.has("challenge"));
  CHECK_FALSE(sc.has("aliases"));
  CHECK(sc.get_bool("lz4"));  // compression caps pass through: frames are not recompressed
  CHECK(sc.get_string("username") == "foo");

  Value server_caps{Dict{}};
  server_caps.set("version", "3.1.3");
  server_caps.set("aliases", Dict{{Value("draw"), Value(3)}});
  server_caps.set("rencode", true);
  std::string wire = Wire(Value(List{Value("hello"), server_caps}));
  // A packet right behind the hello must reach the client too.
  wire += Wire(Value(List{Value("ping"), Value(123)}));
  f.session->OnServerData(wire);
  CHECK(f.io.passthrough);
  CHECK(f.session->state() == Session::State::kRelay);
  CHECK(f.io.deadline == 0);
  auto got = f.ClientGot();
  REQUIRE(got.size() == 2);
  Caps cc(got[0].as_list()[1]);
  CHECK_FALSE(cc.has("aliases"));
  CHECK(cc.get_bool("proxy"));
  CHECK(cc.get_string("version") == "3.1.3");
  CHECK(got[1].as_list()[0].as_string() == "ping");
}

TEST_CASE("split delivery: the client hello arriving one byte at a time") {
  Fixture f;
  std::string wire = Wire(Value(List{Value("hello"), ClientHello("foo")}));
  for (char c : wire) f.session->OnClientData(std::string_view(&c, 1));
  f.ExpectOne(f.ClientGot(), "challenge");
}

TEST_CASE("bencoded client gets bencoded answers") {
  Fixture f;
  f.session->OnClientData(Wire(Value(List{Value("hello"), ClientHello("foo")}), nullptr, Encoding::kBencode));
  CHECK(f.session->client_encoding() == Encoding::kBencode);
  f.ExpectOne(f.ClientGot(), "challenge");
  CHECK(f.client_reader.decoder.last_encoding() == Encoding::kBencode);
}

TEST_CASE("wrong password: authentication error, nothing connected") {
  Fixture f;
  f.Login("foo", "wrong", "");
  f.ExpectDisconnect(reason::kAuthenticationError, "authentication failed");
  CHECK_FALSE(f.io.connect_target.has_value());
}

TEST_CASE("unknown user: the same client-facing error as a wrong password") {
  Fixture f;
  f.Login("nobody", "bar", "");
  f.ExpectDisconnect(reason::kAuthenticationError, "authentication failed");
}

TEST_CASE("unknown display: session not found, with the choices") {
  Fixture f;
  f.LoginFoo("300");
  f.ExpectDisconnect(reason::kSessionNotFound, ":300");
}

TEST_CASE("several sessions and no display: asks the user to pick") {
  Fixture f;
  f.Login("foo", "bar", "");
  f.ExpectDisconnect(reason::kSessionNotFound, "specify a display");
}

TEST_CASE("first packet is not a hello: protocol error") {
  Fixture f;
  f.session->OnClientData(Wire(Value(List{Value("ping"), Value(1)})));
  f.ExpectDisconnect(reason::kProtocolError, "expected a hello");
}

TEST_CASE("garbage bytes: protocol error") {
  Fixture f;
  f.session->OnClientData("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  f.ExpectDisconnect(reason::kProtocolError);
}

TEST_CASE("frame claiming 4 GiB: protocol error naming the limit") {
  Fixture f;
  std::string h(kHeaderSize, '\0');
  EncodeHeader(FrameHeader{flags::kRencode, 0, 0, 0xffffffffu}, h.data());
  f.session->OnClientData(h);
  f.ExpectDisconnect(reason::kProtocolError, "limit");
}

TEST_CASE("hello without version: version error") {
  Fixture f;
  Value caps = ClientHello("foo");
  caps.erase_if([](std::string_view k) { return k == "version"; });
  f.session->OnClientData(Wire(Value(List{Value("hello"), caps})));
  f.ExpectDisconnect(reason::kVersionError);
}

TEST_CASE("second hello without a response: authentication error") {
  Fixture f;
  f.session->OnClientData(Wire(Value(List{Value("hello"), ClientHello("foo")})));
  f.ExpectOne(f.ClientGot(), "challenge");
  f.session->OnClientData(Wire(Value(List{Value("hello"), ClientHello("foo")})));
  f.ExpectDisconnect(reason::kAuthenticationError, "no challenge response");
}

TEST_CASE("client offering only xor over a plain link is refused") {
  Fixture f;
  Value caps = ClientHello("foo");
  caps.set("digest", List{Value("xor")});
  f.session->OnClientData(Wire(Value(List{Value("hello"), caps})));
  f.ExpectDisconnect(reason::kAuthenticationError, "digest");
}

TEST_CASE("client offering only xor over a TLS client leg gets an xor challenge, salt digest still hmac") {
  Fixture f;
  f.session->SetTransportEncrypted(true);  // what the connection does for ssl and wss legs
  Value caps = ClientHello("foo");
  caps.set("digest", List{Value("xor")});
  f.session->OnClientData(Wire(Value(List{Value("hello"), caps})));
  Value c = f.ExpectOne(f.ClientGot(), "challenge");
  CHECK(c.as_list()[3].as_string() == "xor");
  CHECK(c.as_list()[4].as_string() == "hmac+sha256");
  CHECK(f.session->state() == Session::State::kChallengeSent);
}

TEST_CASE("timeouts in every login state") {
  SUBCASE("waiting for the hello") {
    Fixture f;
    f.session->OnTimeout();
    f.ExpectDisconnect(reason::kLoginTimeout);
  }
  SUBCASE("waiting for the response") {
    Fixture f;
    f.session->OnClientData(Wire(Value(List{Value("hello"), ClientHello("foo")})));
    f.ClientGot();
    f.session->OnTimeout();
    f.ExpectDisconnect(reason::kLoginTimeout);
  }
  SUBCASE("waiting for the server") {
    Fixture f;
    f.LoginFoo();
    f.session->OnServerConnected();
    f.session->OnTimeout();
    f.ExpectDisconnect(reason::kConnectionError, "did not answer");
  }
}

TEST_CASE("dead target: connection error naming the session") {
  Fixture f;
  f.LoginFoo();
  f.session->OnServerConnectFailed("Connection refused");
  f.ExpectDisconnect(reason::kConnectionError, "Connection refused");
}

TEST_CASE("server closes during the handshake") {
  Fixture f;
  f.LoginFoo();
  f.session->OnServerConnected();
  f.session->OnServerClosed("end of stream");
  f.ExpectDisconnect(reason::kConnectionError, "closed");
}

TEST_CASE("server disconnect during the handshake is passed on with its reason") {
  Fixture f;
  f.LoginFoo();
  f.session->OnServerConnected();
  f.session->OnServerData(Wire(Value(List{Value("disconnect"), Value("session busy"), Value("try later")})));
  f.ExpectDisconnect("session busy", "try later");
}

TEST_CASE("server challenge answered with the session's password") {
  Fixture f;
  f.Login("solo", "pw", "");
  REQUIRE(f.io.connect_target.has_value());
  f.session->OnServerConnected();
  f.ServerGot();
  std::string server_salt = crypto::RandomBytes(64);
  f.session->OnServerData(Wire(Value(List{Value("challenge"), Value::bytes(server_salt), Value(""),
                                          Value("hmac+sha256"), Value("hmac+sha256"), Value("password")})));
  Value hello = f.ExpectOne(f.ServerGot(), "hello");
  Caps caps(hello.as_list()[1]);
  std::string client_salt = caps.get_string("challenge_client_salt");
  auto salt = digest::CombineSalts("hmac+sha256", client_salt, server_salt);
  REQUIRE(salt.ok());
  CHECK(digest::VerifyResponse("hmac+sha256", "serverpw", *salt, caps.get_string("challenge_response")));
  CHECK_FALSE(digest::VerifyResponse("hmac+sha256", "pw", *salt, caps.get_string("challenge_response")));
}

TEST_CASE("server challenge without a configured password: authentication error") {
  Fixture f;
  f.LoginFoo();
  f.session->OnServerConnected();
  f.session->OnServerData(Wire(Value(List{Value("challenge"), Value::bytes(std::string(64, 'x')), Value(""),
                                          Value("hmac+sha256"), Value("hmac+sha256")})));
  f.ExpectDisconnect(reason::kAuthenticationError, "no password");
}

TEST_CASE("version request is answered without authentication") {
  Fixture f;
  Value caps{Dict{}};
  caps.set("version_request", true);
  f.session->OnClientData(Wire(Value(List{Value("hello"), caps})));
  Value hello = f.ExpectOne(f.ClientGot(), "hello");
  CHECK(Caps(hello.as_list()[1]).get_string("version") == "0.1.0-test");
  CHECK(!f.io.closed.empty());
}

TEST_CASE("client disconnect during login closes quietly") {
  Fixture f;
  f.session->OnClientData(Wire(Value(List{Value("disconnect"), Value("client exit")})));
  CHECK(!f.io.closed.empty());
  CHECK(f.ClientGot().empty());
}

// The client's keys of an AES session, as xpra's client holds them.
struct AesClient {
  std::unique_ptr<crypto::Decryptor> in, in2;
  std::unique_ptr<crypto::Encryptor> out, out2;  // out2: after the server hello
};

// Logs foo in over AES up to relaying (frame by frame); checks each step on the way.
AesClient AttachAes(Fixture& f) {
  // Client side keys, as xpra's client sets them up before its first hello.
  std::string client_iv = crypto::RandomIv();
  std::string client_salt = crypto::RandomBytes(32);
  auto ckey = crypto::DeriveKey("secret-key", client_salt, 1000);
  REQUIRE(ckey.ok());
  auto client_in_r = crypto::Decryptor::Create(*ckey, client_iv, crypto::Padding::kPkcs7);
  REQUIRE(client_in_r.ok());
  f.client_reader.dec = client_in_r->get();
  Value caps = ClientHello("foo", "200");
  Merge(caps, CipherCaps(client_iv, client_salt, "PKCS#7"));
  f.session->OnClientData(Wire(Value(List{Value("hello"), caps})));
  CHECK(f.session->encrypted());
  Value challenge = f.ExpectOne(f.ClientGot(), "challenge");
  Caps auth_caps(challenge.as_list()[2]);
  REQUIRE(auth_caps.get_string("cipher") == "AES");
  auto skey = crypto::DeriveKey("secret-key", auth_caps.get_string("cipher.key_salt"),
                                static_cast<int>(auth_caps.get_int("cipher.key_stretch_iterations")));
  REQUIRE(skey.ok());
  auto client_out = crypto::Encryptor::Create(*skey, auth_caps.get_string("cipher.iv"), crypto::Padding::kPkcs7);
  REQUIRE(client_out.ok());
  // Like xpra's client, the reply hello carries new receive parameters and the client resets
  // its decryptor to them.
  std::string iv2 = crypto::RandomIv();
  std::string salt2 = crypto::RandomBytes(32);
  Value cipher2 = CipherCaps(iv2, salt2, "legacy", /*with_options=*/false);
  auto key2 = crypto::DeriveKey("secret-key", salt2, 1000);
  auto client_in2 = crypto::Decryptor::Create(*key2, iv2, crypto::Padding::kLegacy);
  REQUIRE(client_in2.ok());
  f.client_reader.dec = client_in2->get();
  f.Respond(challenge, "foo", "bar", "200", client_out->get(), &cipher2);
  f.RunAuthJobs();
  REQUIRE(f.io.connect_target.has_value());
  f.session->OnServerConnected();
  Value to_server_hello = f.ExpectOne(f.ServerGot(), "hello");  // Caps only refers to it
  Caps to_server(to_server_hello.as_list()[1]);
  CHECK_FALSE(to_server.has("cipher"));  // the server leg stays plain
  Value server_caps{Dict{}};
  server_caps.set("version", "3.1.3");
  f.session->OnServerData(Wire(Value(List{Value("hello"), server_caps})));
  CHECK_FALSE(f.io.passthrough);  // AES: frame by frame
  Value hello = f.ExpectOne(f.ClientGot(), "hello");
  Caps hc(hello.as_list()[1]);
  REQUIRE(hc.get_string("cipher") == "AES");
  // The client re-keys its sending side from the hello's parameters.
  auto nkey = crypto::DeriveKey("secret-key", hc.get_string("cipher.key_salt"),
                                static_cast<int>(hc.get_int("cipher.key_stretch_iterations")));
  auto client_out2 = crypto::Encryptor::Create(*nkey, hc.get_string("cipher.iv"), crypto::Padding::kPkcs7);
  REQUIRE(client_out2.ok());
  return AesClient{std::move(*client_in_r), std::move(*client_in2), std::move(*client_out), std::move(*client_out2)};
}

TEST_CASE("AES: challenge encrypted with the client's parameters, relay frames re-encrypted") {
  Fixture f("", /*aes=*/true);
  AesClient keys = AttachAes(f);
  auto& client_out2 = keys.out2;
  f.session->OnClientData(Wire(Value(List{Value("ping"), Value(42)}), client_out2.get()));
  Value ping = f.ExpectOne(f.ServerGot(), "ping");
  CHECK(ping.as_list()[1].as_int() == 42);
  f.session->OnServerData(Wire(Value(List{Value("draw"), Value::bytes(std::string(70000, 'p'))})));
  Value draw = f.ExpectOne(f.ClientGot(), "draw");
  CHECK(draw.as_list()[1].as_string().size() == 70000);

  // Frames that complete in one read go to the client as one send, in order; a frame split
  // over reads goes out once it is whole.
  std::string chunk = SerializeFrame(FrameHeader{0, 0, 2, 65536}, std::string(65536, 'c'));
  std::string two = chunk + Wire(Value(List{Value("draw"), Value(1), Value("")}));
  f.io.client_sends = 0;
  f.session->OnServerData(two.substr(0, 30000));
  CHECK(f.io.client_sends == 0);
  f.session->OnServerData(two.substr(30000));
  CHECK(f.io.client_sends == 1);
  Value joined = f.ExpectOne(f.ClientGot(), "draw");
  CHECK(joined.as_list()[2].as_string() == std::string(65536, 'c'));  // the chunk put in place
  f.io.client_sends = 0;
  f.session->OnServerData(Wire(Value(List{Value("ping"), Value(1)})) + Wire(Value(List{Value("ping"), Value(2)})) +
                          Wire(Value(List{Value("ping"), Value(3)})));
  CHECK(f.io.client_sends == 1);
  auto pings = f.ClientGot();
  REQUIRE(pings.size() == 3);
  for (int i = 0; i < 3; ++i) CHECK(pings[i].as_list()[1].as_int() == i + 1);

  // A bad frame after good ones: the good ones still reach the client, then the disconnect.
  f.session->OnServerData(Wire(Value(List{Value("ping"), Value(4)})) +
                          SerializeFrame(FrameHeader{flags::kCipher, 0, 0, 5}, std::string(32, 'x')));
  auto last = f.ClientGot();
  REQUIRE(last.size() == 2);
  CHECK(last[0].as_list()[0].as_string() == "ping");
  CHECK(last[1].as_list()[0].as_string() == "disconnect");
  CHECK(f.session->state() == Session::State::kClosed);
}

TEST_CASE("AES required but the client sends no cipher: authentication error") {
  Fixture f("", /*aes=*/true);
  f.session->OnClientData(Wire(Value(List{Value("hello"), ClientHello("foo")})));
  f.ExpectDisconnect(reason::kAuthenticationError, "encryption");
}

TEST_CASE("AES: a wrong key shows up as a protocol error, not a crash") {
  Fixture f("", /*aes=*/true);
  Value caps = ClientHello("foo", "200");
  Merge(caps, CipherCaps(crypto::RandomIv(), crypto::RandomBytes(32), "PKCS#7"));
  f.session->OnClientData(Wire(Value(List{Value("hello"), caps})));
  f.io.to_client.clear();
  auto wrong = crypto::DeriveKey("not-the-key", "salt", 1000);
  auto enc = crypto::Encryptor::Create(*wrong, crypto::RandomIv(), crypto::Padding::kPkcs7);
  REQUIRE(enc.ok());
  f.session->OnClientData(Wire(Value(List{Value("hello"), ClientHello("foo")}), enc->get()));
  CHECK(f.session->state() == Session::State::kClosed);
  CHECK(!f.io.closed.empty());
}

TEST_CASE("failed logins back off: no verification attempt while blocked") {
  Admission admission(AdmissionConfig{0, 2, 600000, 300000});  // shared by these logins
  for (int i = 0; i < 3; ++i) {
    Fixture f("", false, &admission);
    f.Login("foo", "wrong", "");
    f.ExpectDisconnect(reason::kAuthenticationError, "authentication failed");
  }
  // Even the right password is not checked now.
  Fixture f("", false, &admission);
  f.session->OnClientData(Wire(Value(List{Value("hello"), ClientHello("foo", "200")})));
  Value c = f.ExpectOne(f.ClientGot(), "challenge");
  f.Respond(c, "foo", "bar", "200");
  CHECK(f.io.auth_jobs.empty());
  f.ExpectDisconnect(reason::kAuthenticationError, "try again in");
}

// Issue 13: verifications in flight count; one over the free failures waits (not refused) and
// starts when a slot frees, within the login time.
TEST_CASE("back-off: a login over the in-flight limit waits, then is verified") {
  Admission admission(AdmissionConfig{0, 1, 600000, 300000});  // 2 verifications in flight at most
  std::vector<std::unique_ptr<Fixture>> running;
  for (int i = 0; i < 2; ++i) {
    running.push_back(std::make_unique<Fixture>("", false, &admission));
    Fixture& f = *running.back();
    f.session->OnClientData(Wire(Value(List{Value("hello"), ClientHello("foo", "200")})));
    f.Respond(f.ExpectOne(f.ClientGot(), "challenge"), "foo", "bar", "200");
    REQUIRE(f.io.auth_jobs.size() == 1);  // verifying
  }
  Fixture third("", false, &admission);
  third.session->OnClientData(Wire(Value(List{Value("hello"), ClientHello("foo", "200")})));
  third.Respond(third.ExpectOne(third.ClientGot(), "challenge"), "foo", "bar", "200");
  CHECK(third.io.auth_jobs.empty());  // waits for a slot ...
  CHECK(third.io.closed.empty());     // ... without being refused
  CHECK(third.io.deadline > 0);
  CHECK(third.io.deadline <= 20);     // it asks again shortly
  third.session->OnTimeout();
  CHECK(third.io.auth_jobs.empty());  // still no slot
  running[0]->RunAuthJobs();          // the first succeeds: a slot frees
  CHECK(running[0]->session->state() == Session::State::kConnecting);
  third.session->OnTimeout();
  REQUIRE(third.io.auth_jobs.size() == 1);
  third.RunAuthJobs();
  CHECK(third.session->state() == Session::State::kConnecting);
}

TEST_CASE("pre-login budget: the memory of all unauthenticated connections has one bound") {
  LoginMemory memory(300000);  // room for two hellos of ~120 KB, not three
  Value caps = ClientHello("foo");
  caps.set("x", std::string(120000, 'x'));
  std::vector<std::unique_ptr<Fixture>> fixtures;
  for (int i = 0; i < 3; ++i) {
    fixtures.push_back(std::make_unique<Fixture>("", false, nullptr, &memory));
    fixtures.back()->session->OnClientData(Wire(Value(List{Value("hello"), caps})));
  }
  CHECK(fixtures[0]->ExpectOne(fixtures[0]->ClientGot(), "challenge").is_list());
  CHECK(fixtures[1]->ExpectOne(fixtures[1]->ClientGot(), "challenge").is_list());
  fixtures[2]->ExpectDisconnect(reason::kServerError, "holds too much login data");
  CHECK(memory.used() > 240000);
  fixtures[0].reset();  // a connection that goes releases its share
  fixtures[1].reset();
  CHECK(memory.used() == 0);
}

TEST_CASE("challenge rules: no xor salt digest, client salts of sane length") {
  Fixture f;
  Value caps = ClientHello("foo");
  caps.set("salt-digest", List{Value("xor")});
  f.session->OnClientData(Wire(Value(List{Value("hello"), caps})));
  f.ExpectDisconnect(reason::kAuthenticationError, "no supported salt digest");

  Fixture g;
  g.session->OnClientData(Wire(Value(List{Value("hello"), ClientHello("foo", "200")})));
  Value c = g.ExpectOne(g.ClientGot(), "challenge");
  Value big_salt{Dict{}};
  big_salt.set("challenge_client_salt", Value::bytes(std::string(4096, 's')));
  g.Respond(c, "foo", "bar", "200", nullptr, &big_salt);
  CHECK(g.io.auth_jobs.empty());
  g.ExpectDisconnect(reason::kAuthenticationError, "invalid challenge salt");
}

TEST_CASE("hello requests: stop is refused before authentication") {
  Fixture f;
  Value caps = ClientHello("foo");
  caps.set("request", "stop");
  f.session->OnClientData(Wire(Value(List{Value("hello"), caps})));
  f.ExpectDisconnect(reason::kProtocolError, "does not pass 'stop'");
}

TEST_CASE("pre-login budget: a hello of more values than --max-login-elements is refused") {
  Fixture f;
  Value caps = ClientHello("foo");
  caps.set("x", List(200000, Value(0)));  // 200,000 values, over the 100,000 default
  f.session->OnClientData(Wire(Value(List{Value("hello"), caps})));
  f.ExpectDisconnect(reason::kProtocolError, "more than 100000 elements");
}

TEST_CASE("the session's server: an xor challenge on the plain leg is refused") {
  Fixture f("", false);
  f.LoginFoo();
  f.session->OnServerConnected();
  f.ServerGot();
  f.session->OnServerData(Wire(Value(List{Value("challenge"), Value::bytes(std::string(32, 's')), Value(""),
                                          Value("xor"), Value("hmac+sha256")})));
  f.ExpectDisconnect(reason::kAuthenticationError, "xor");
}

TEST_CASE("a server ping before its hello reaches the client after the hello") {
  Fixture f;
  f.LoginFoo();
  f.session->OnServerConnected();
  f.ServerGot();
  Value server_caps{Dict{}};
  server_caps.set("version", "3.1.3");
  f.session->OnServerData(Wire(Value(List{Value("ping"), Value(1234), Value(5678)})));
  CHECK(f.session->state() == Session::State::kServerHello);
  CHECK(f.ClientGot().empty());
  f.session->OnServerData(Wire(Value(List{Value("hello"), server_caps})));
  auto got = f.ClientGot();
  REQUIRE(got.size() == 2);
  CHECK(got[0].as_list()[0].as_string() == "hello");
  CHECK(got[1].as_list()[0].as_string() == "ping");
  CHECK(got[1].as_list()[1].as_int() == 1234);
  CHECK(f.session->state() == Session::State::kRelay);
}

namespace {

// foo logged in and relaying in passthrough (plain legs); what either side got so far is read.
void AttachPlain(Fixture& f) {
  f.LoginFoo();
  f.session->OnServerConnected();
  f.ServerGot();
  Value server_caps{Dict{}};
  server_caps.set("version", "3.1.3");
  f.session->OnServerData(Wire(Value(List{Value("hello"), server_caps})));
  REQUIRE(f.session->state() == Session::State::kRelay);
  f.ClientGot();
}

}  // namespace

TEST_CASE("relaying: the client going away is told to the server, with why") {
  Fixture f;
  AttachPlain(f);
  f.session->OnClientClosed("end of stream");
  Value d = f.ExpectOne(f.ServerGot(), "disconnect");
  CHECK(d.as_list()[1].as_string() == reason::kClientConnectionLost);
  CHECK(d.as_list()[2].as_string().find("end of stream") != std::string::npos);
  CHECK(!f.io.closed.empty());
}

TEST_CASE("before relaying, a client going away is not told to the server") {
  Fixture f;
  f.LoginFoo();
  f.session->OnServerConnected();
  f.ServerGot();
  f.session->OnClientClosed("end of stream");
  CHECK(f.ServerGot().empty());
  CHECK(!f.io.closed.empty());
}

TEST_CASE("TellServer: a disconnect packet for the server, only while relaying") {
  Fixture f;
  f.session->TellServer(reason::kClientPingTimeout, "early");
  CHECK(f.io.to_server.empty());
  AttachPlain(f);
  f.session->TellServer(reason::kClientPingTimeout, "the client sent nothing for 90 s");
  Value d = f.ExpectOne(f.ServerGot(), "disconnect");
  CHECK(d.as_list()[1].as_string() == "client ping timeout");
  CHECK(d.as_list()[2].as_string() == "the client sent nothing for 90 s");
  CHECK(f.io.closed.empty());  // telling is not closing
}

TEST_CASE("the server's packet size limit applies from its first frame") {
  Fixture f;
  f.config->server_limits.max_payload = 4096;
  f.session = std::make_unique<Session>(8, "127.0.0.1:5555", f.config, &f.io, f.Env());
  f.session->Start();
  f.LoginFoo();
  f.session->OnServerConnected();
  f.ServerGot();
  FrameHeader big;
  big.flags = flags::kRencode;
  big.payload_size = 4097;
  char h[kHeaderSize];
  EncodeHeader(big, h);
  f.session->OnServerData(std::string(h, kHeaderSize));
  f.ExpectDisconnect(reason::kServerError, "invalid data from the session's server");
}

TEST_CASE("AES relay: more than 3 chunks before their main packet, from either side, end the session") {
  SUBCASE("from the server") {
    Fixture f("", /*aes=*/true);
    AesClient keys = AttachAes(f);
    std::string chunks;
    for (uint8_t i = 1; i <= 3; ++i) chunks += SerializeFrame(FrameHeader{0, 0, i, 4}, "abcd");
    f.session->OnServerData(chunks);
    CHECK(f.session->state() == Session::State::kRelay);  // 3 are allowed
    f.session->OnServerData(SerializeFrame(FrameHeader{0, 0, 4, 4}, "abcd"));
    CHECK(f.session->state() == Session::State::kClosed);
    CHECK(!f.io.closed.empty());
  }
  SUBCASE("from the client") {
    Fixture f("", /*aes=*/true);
    AesClient keys = AttachAes(f);
    std::string out;
    for (uint8_t i = 1; i <= 4; ++i) {
      FrameHeader h{flags::kCipher, 0, i, 4};
      out.resize(kHeaderSize);
      EncodeHeader(h, out.data());
      REQUIRE(keys.out2->Encrypt("abcd", &out).ok());
      f.session->OnClientData(out);
      CHECK(f.session->state() == (i <= 3 ? Session::State::kRelay : Session::State::kClosed));
    }
    f.ExpectDisconnect(reason::kProtocolError, "more than 3 chunks");
    // The server is told too, after the 3 chunks it got (its disconnect is plain rencode).
    CHECK(f.io.to_server.find("the client sent invalid data: more than 3 chunks") != std::string::npos);
  }
}

// ------------------------------------------------ modules that need the password (issue 15)

namespace {

// A real exec module with password=stdin (needs_password): the script allows "right-pw" only.
std::shared_ptr<auth::AuthModule> ClearPasswordModule(std::string* script_path) {
  *script_path = TempFile("#!/bin/sh\nIFS= read -r pw\n[ \"$pw\" = right-pw ]\n");
  REQUIRE(chmod(script_path->c_str(), 0700) == 0);
  auto m = auth::CreateAuthModule("exec,password=stdin,command=" + *script_path);
  REQUIRE(m.ok());
  return std::shared_ptr<auth::AuthModule>(std::move(*m));
}

// Fault injection: a checker that cannot answer (a PAM stack or directory down).
struct UnavailableModule : auth::AuthModule {
  std::string_view name() const override { return "pam"; }
  bool needs_password() const override { return true; }
  Expected<auth::AuthResult> Authenticate(const auth::AuthRequest&) override {
    return MakeError(ErrorCode::kTimeout, "PAM service 'xpra' did not answer within 10000 ms");
  }
};

}  // namespace

TEST_CASE("password modules: a plain link is refused before any challenge, with the ssl:// / AES advice") {
  Fixture f;
  std::string script;
  f.config->auth = ClearPasswordModule(&script);
  f.session->OnClientData(Wire(Value(List{Value("hello"), ClientHello("foo")})));
  f.ExpectDisconnect(reason::kAuthenticationError, "connect with ssl:// (or wss://), or use AES encryption");
  CHECK(f.io.auth_jobs.empty());
  ::unlink(script.c_str());
}

TEST_CASE("password modules over TLS: an xor challenge, and the password reaches the module") {
  for (const char* password : {"right-pw", "wrong-pw"}) {
    CAPTURE(password);
    Fixture f;
    std::string script;
    f.config->auth = ClearPasswordModule(&script);
    f.session->SetTransportEncrypted(true);
    f.session->OnClientData(Wire(Value(List{Value("hello"), ClientHello("foo")})));
    Value challenge = f.ExpectOne(f.ClientGot(), "challenge");
    CHECK(challenge.as_list()[3].as_string() == "xor");
    CHECK(challenge.as_list()[4].as_string() != "xor");  // the salt digest stays an hmac
    f.Respond(challenge, "foo", password);
    f.RunAuthJobs();
    if (std::string_view(password) == "right-pw") {
      // Authenticated: the module's entry has no displays and no socket dir holds foo's sessions.
      f.ExpectDisconnect(reason::kSessionNotFound);
    } else {
      f.ExpectDisconnect(reason::kAuthenticationError, "authentication failed");
    }
    ::unlink(script.c_str());
  }
}

TEST_CASE("password modules: a client without the xor digest is told so") {
  Fixture f;
  std::string script;
  f.config->auth = ClearPasswordModule(&script);
  f.session->SetTransportEncrypted(true);
  Value caps = ClientHello("foo");
  caps.set("digest", List{Value("hmac+sha256")});
  f.session->OnClientData(Wire(Value(List{Value("hello"), caps})));
  f.ExpectDisconnect(reason::kAuthenticationError, "xor digest");
  ::unlink(script.c_str());
}

TEST_CASE("a checker that cannot answer: 'authentication service unavailable', not a failed login") {
  Fixture f;
  f.config->auth = std::make_shared<UnavailableModule>();
  f.session->SetTransportEncrypted(true);
  f.session->OnClientData(Wire(Value(List{Value("hello"), ClientHello("foo")})));
  Value challenge = f.ExpectOne(f.ClientGot(), "challenge");
  f.Respond(challenge, "foo", "pw");
  f.RunAuthJobs();
  f.ExpectDisconnect(reason::kServerError, "authentication service unavailable");
  CHECK(f.counters.auth_failures.load() == 0);
}

TEST_CASE("xpra 5.0+ version request (request=version) is answered without authentication") {
  Fixture f;
  Value caps{Dict{}};
  caps.set("request", "version");
  f.session->OnClientData(Wire(Value(List{Value("hello"), caps}), nullptr, Encoding::kRencodePlus));
  Value hello = f.ExpectOne(f.ClientGot(), "hello");
  CHECK(Caps(hello.as_list()[1]).get_string("version") == "0.1.0-test");
  CHECK(!f.io.closed.empty());
  CHECK(f.io.auth_jobs.empty());
}

// A frame header announcing `size` bytes of payload with these flags, and no payload yet.
std::string BareHeader(uint8_t flags, uint32_t size) {
  char h[kHeaderSize];
  EncodeHeader(FrameHeader{flags, 0, 0, size}, h);
  return std::string(h, kHeaderSize);
}

TEST_CASE("xpra 6.x client: no frame of 4 MiB or more before login, whatever --max-login-packet-size says") {
  for (Encoding e : {Encoding::kRencodePlus, Encoding::kRencode}) {
    CAPTURE(EncodingName(e));
    Fixture f;
    f.config->max_login_packet = size_t{16} << 20;
    f.session = std::make_unique<Session>(8, "127.0.0.1:5555", f.config, &f.io, f.Env());
    f.session->Start();
    f.session->OnClientData(Wire(Value(List{Value("hello"), ClientHello("foo")}), nullptr, e));
    f.ExpectOne(f.ClientGot(), "challenge");
    const uint8_t flag = e == Encoding::kRencodePlus ? flags::kRencodePlus : flags::kRencode;
    f.session->OnClientData(BareHeader(flag, static_cast<uint32_t>(kXpra6MaxFirstPayload)));
    if (e == Encoding::kRencodePlus) {
      f.ExpectDisconnect(reason::kProtocolError, "limit");
    } else {
      // xpra 3.1 takes up to 16 MiB before its hello: the relay waits for the rest of the frame.
      CHECK(f.io.closed.empty());
      CHECK(f.session->state() == Session::State::kChallengeSent);
    }
  }
}

TEST_CASE("xpra 6.x client: its first frame too is held under 4 MiB, split anywhere; after login the leg's limit") {
  for (size_t split : {size_t{1}, size_t{3}, kHeaderSize}) {
    CAPTURE(split);
    Fixture f;
    f.config->max_login_packet = size_t{16} << 20;
    f.session = std::make_unique<Session>(8, "127.0.0.1:5555", f.config, &f.io, f.Env());
    f.session->Start();
    std::string h = BareHeader(flags::kRencodePlus | flags::kFlush, static_cast<uint32_t>(kXpra6MaxFirstPayload));
    f.session->OnClientData(h.substr(0, split));
    if (split < kHeaderSize) {
      CHECK(f.io.closed.empty());
      f.session->OnClientData(h.substr(split));
    }
    f.ExpectDisconnect(reason::kProtocolError, "4194303 byte limit");
  }
  Fixture f;
  f.config->max_login_packet = size_t{16} << 20;
  f.session = std::make_unique<Session>(8, "127.0.0.1:5555", f.config, &f.io, f.Env());
  f.session->Start();
  f.encoding = Encoding::kRencodePlus;
  f.LoginFoo();
  f.session->OnServerConnected();
  f.session->OnServerData(Wire(Value(List{Value("hello"), Value(Dict{})}), nullptr, Encoding::kRencodePlus));
  REQUIRE(f.session->state() == Session::State::kRelay);
  f.session->OnClientData(BareHeader(flags::kRencodePlus, static_cast<uint32_t>(kXpra6MaxFirstPayload)));
  CHECK(f.io.closed.empty());
}

TEST_CASE("xpra 6.x server: the relay's hello is rencodeplus, under 4 MiB, and a 6.x challenge is answered") {
  Fixture f;
  f.encoding = Encoding::kRencodePlus;
  f.Login("solo", "pw", "");
  REQUIRE(f.io.connect_target.has_value());
  f.session->OnServerConnected();
  auto first = DecodeHeader(f.io.to_server);
  REQUIRE(first.ok());
  CHECK((first->flags & flags::kEncoderMask) == flags::kRencodePlus);
  CHECK(first->payload_size < kXpra6MaxFirstPayload);
  f.ServerGot();
  // As xpra 6.5.3's server sends it: 64-byte salt, hmac+sha512 for both digests.
  std::string server_salt = crypto::RandomBytes(64);
  f.session->OnServerData(Wire(Value(List{Value("challenge"), Value::bytes(server_salt), Value(""),
                                          Value("hmac+sha512"), Value("hmac+sha512"), Value("password")}),
                               nullptr, Encoding::kRencodePlus));
  Value hello = f.ExpectOne(f.ServerGot(), "hello");
  Caps caps(hello.as_list()[1]);
  std::string client_salt = caps.get_string("challenge_client_salt");
  CHECK(client_salt.size() == 32);  // 6.x: 32 bytes with an hmac salt digest
  auto salt = digest::CombineSalts("hmac+sha512", client_salt, server_salt);
  REQUIRE(salt.ok());
  CHECK(digest::VerifyResponse("hmac+sha512", "serverpw", *salt, caps.get_string("challenge_response")));
}

// A 6.5.3 client's AES state: it receives with `recv` (what its hellos announce) and sends with
// what the relay announced (challenge, hello), as client/base/aes.py does.
struct Client6 {
  crypto6::Params recv;
  std::unique_ptr<crypto6::Decryptor> dec;
  std::unique_ptr<crypto6::Encryptor> enc;
  Reader reader;
  std::string key = "secret-key";

  Client6(crypto6::Mode mode, bool stream, int iterations = 1000) {
    recv.mode = mode;
    recv.framing = crypto6::Framing{mode, false, stream};
    recv.iterations = iterations;
    NewReceive();
    reader.frames.set_cipher_block(crypto6::CipherBlock(recv.framing));
  }
  // New receive parameters (every hello the client sends carries new ones).
  void NewReceive() {
    recv.iv = crypto::RandomIv();
    recv.key_salt = crypto::RandomBytes(64);
    auto k = crypto6::DeriveKey(key, recv.key_salt, recv.key_hash, recv.key_size, recv.iterations);
    REQUIRE(k.ok());
    auto d = crypto6::Decryptor::Create(*k, recv.iv, recv.framing);
    REQUIRE(d.ok());
    dec = std::move(*d);
  }
  // A hello (caps) with the "encryption" dict of the current receive parameters.
  Value Hello(Value caps) const {
    Value e = crypto6::ParamsDict(recv);
    caps.set("encryption", e);
    return caps;
  }
  // Takes the relay's announced parameters (challenge element 2, or the hello) for sending.
  void SendWith(const Value& dict_holder) {
    auto p = crypto6::ParseParams(dict_holder);
    REQUIRE(p.ok());
    auto k = crypto6::DeriveKey(key, p->key_salt, p->key_hash, p->key_size, p->iterations);
    REQUIRE(k.ok());
    auto e = crypto6::Encryptor::Create(*k, p->iv, p->framing);
    REQUIRE(e.ok());
    enc = std::move(*e);
  }
  // Plain rencodeplus frames of `packet`, encrypted when the client has an encryptor.
  std::string Wire6(const Value& packet) {
    std::string plain = Wire(packet, nullptr, Encoding::kRencodePlus);
    if (!enc) return plain;
    auto h = DecodeHeader(plain);
    REQUIRE(h.ok());
    std::string out(kHeaderSize, '\0');
    uint32_t size = 0;
    REQUIRE(enc->Encrypt(std::string_view(plain).substr(kHeaderSize), &out, &size).ok());
    FrameHeader eh = *h;
    eh.flags |= flags::kCipher;
    eh.payload_size = size;
    EncodeHeader(eh, out.data());
    return out;
  }
  // Every packet in `bytes` (each frame must be encrypted: 6.x drops plain ones once keyed).
  std::vector<Value> Read(std::string& bytes) {
    reader.dec6 = dec.get();
    return reader.Read(bytes);
  }
  Value ReadOne(std::string& bytes, std::string_view type) {
    auto packets = Read(bytes);
    REQUIRE(packets.size() == 1);
    CHECK(packets[0].as_list()[0].as_string() == type);
    return packets[0];
  }
};

// foo's first hello asking for AES, its keys derived, the challenge it gets.
Value ChallengeAes6(Fixture& f, Client6& c) {
  f.session->OnClientData(Wire(Value(List{Value("hello"), c.Hello(ClientHello("foo", "200"))}), nullptr,
                               Encoding::kRencodePlus));
  f.RunOffJobs();
  return c.ReadOne(f.io.to_client, "challenge");
}

// foo's login over 6.x AES up to the connect request: hello, keys (worker), challenge with the
// relay's parameters, the reply with new receive parameters, keys again, authentication.
void LoginAes6(Fixture& f, Client6& c, std::string_view password = "bar", std::string_view display = "200") {
  f.session->OnClientData(Wire(Value(List{Value("hello"), c.Hello(ClientHello("foo", display))}), nullptr,
                               Encoding::kRencodePlus));
  // The keys are derived off the reactor: nothing is answered until they are there.
  CHECK(f.io.to_client.empty());
  REQUIRE(f.io.off_jobs.size() == 1);
  CHECK(f.io.client_cipher_block == crypto6::CipherBlock(c.recv.framing));
  f.RunOffJobs();
  Value challenge = c.ReadOne(f.io.to_client, "challenge");
  const Value& auth_caps = challenge.as_list()[2];
  REQUIRE(auth_caps.is_dict());
  c.SendWith(auth_caps);
  c.NewReceive();  // get_caps() of the reply hello makes new receive parameters and keys them
  Value reply = c.Hello(f.ResponseHello(challenge, "foo", password, display));
  f.session->OnClientData(c.Wire6(Value(List{Value("hello"), reply})));
  REQUIRE(f.io.off_jobs.size() == 1);
  CHECK(f.io.auth_jobs.empty());  // authentication waits for the reply's keys
  f.RunOffJobs();
  f.RunAuthJobs();
}

TEST_CASE("xpra 6.x AES: CBC and CTR, stream and per-packet IVs, end to end through the relay") {
  for (const auto& ms : {std::pair{crypto6::Mode::kCbc, true}, std::pair{crypto6::Mode::kCtr, true},
                         std::pair{crypto6::Mode::kCtr, false}, std::pair{crypto6::Mode::kCbc, false}}) {
    const crypto6::Mode mode = ms.first;
    const bool stream = ms.second;
    CAPTURE(crypto6::ModeName(mode));
    CAPTURE(stream);
    Fixture f("", /*aes=*/true);
    Client6 c(mode, stream);
    LoginAes6(f, c);
    REQUIRE(f.io.connect_target.has_value());
    CHECK(f.session->encrypted());
    f.session->OnServerConnected();
    Value to_server = f.ExpectOne(f.ServerGot(), "hello");
    CHECK_FALSE(Caps(to_server.as_list()[1]).has("encryption"));  // the server leg stays plain
    Value server_caps{Dict{}};
    server_caps.set("version", "6.5");
    f.session->OnServerData(Wire(Value(List{Value("hello"), server_caps}), nullptr, Encoding::kRencodePlus));
    REQUIRE(f.session->state() == Session::State::kRelay);
    CHECK_FALSE(f.io.passthrough);
    Value hello = c.ReadOne(f.io.to_client, "hello");
    Caps hc(hello.as_list()[1]);
    CHECK(hc.get_string("encryption.mode") == crypto6::ModeName(mode));
    CHECK(hc.get_bool("encryption.stream", !stream) == stream);
    c.SendWith(hello.as_list()[1]);  // parse_server_capabilities -> set_server_encryption
    // Client -> server: decrypted and re-framed plain.
    std::string two = c.Wire6(Value(List{Value("ping"), Value(42)}));  // in stream order
    two += c.Wire6(Value(List{Value("key-action"), Value(1), Value("a")}));
    f.session->OnClientData(two);
    auto got = f.ServerGot();
    REQUIRE(got.size() == 2);
    CHECK(got[0].as_list()[1].as_int() == 42);
    CHECK(got[1].as_list()[2].as_string() == "a");
    // Server -> client: a chunk and its draw packet, a large packet, several small ones, split anywhere.
    std::string chunk = SerializeFrame(FrameHeader{0, 0, 2, 65536}, std::string(65536, 'c'));
    std::string stream_bytes = chunk + Wire(Value(List{Value("draw"), Value(1), Value("")}), nullptr, Encoding::kRencodePlus) +
                               Wire(Value(List{Value("draw"), Value::bytes(std::string(70001, 'p'))}), nullptr,
                                    Encoding::kRencodePlus) +
                               Wire(Value(List{Value("ping"), Value(7)}), nullptr, Encoding::kRencodePlus);
    f.session->OnServerData(stream_bytes.substr(0, 30001));
    f.session->OnServerData(stream_bytes.substr(30001));
    auto out = c.Read(f.io.to_client);
    REQUIRE(out.size() == 3);
    CHECK(out[0].as_list()[2].as_string() == std::string(65536, 'c'));
    CHECK(out[1].as_list()[1].as_string().size() == 70001);
    CHECK(out[2].as_list()[1].as_int() == 7);
    CHECK(f.io.closed.empty());
  }
}

TEST_CASE("xpra 6.x AES: without a challenge the login goes on to authentication once the keys are there") {
  Fixture f("", /*aes=*/true);
  auto none = auth::CreateAuthModule("none");
  REQUIRE(none.ok());
  f.config->auth = std::shared_ptr<auth::AuthModule>(std::move(*none));
  f.session = std::make_unique<Session>(9, "127.0.0.1:5555", f.config, &f.io, f.Env());
  f.session->Start();
  Client6 c(crypto6::Mode::kCbc, true);
  f.session->OnClientData(Wire(Value(List{Value("hello"), c.Hello(ClientHello("foo"))}), nullptr,
                               Encoding::kRencodePlus));
  REQUIRE(f.io.off_jobs.size() == 1);
  f.RunOffJobs();
  CHECK(f.io.to_client.empty());
  REQUIRE(f.io.auth_jobs.size() == 1);
}

TEST_CASE("xpra 6.x AES: a wrong password, an unknown display: the reason is encrypted with the reply's keys") {
  for (bool wrong_password : {true, false}) {
    CAPTURE(wrong_password);
    Fixture f("", /*aes=*/true);
    Client6 c(crypto6::Mode::kCtr, true);
    LoginAes6(f, c, wrong_password ? "wrong" : "bar", wrong_password ? "200" : "299");
    Value d = c.ReadOne(f.io.to_client, "disconnect");
    const List& l = d.as_list();
    if (wrong_password) {
      CHECK(l[1].as_string() == reason::kAuthenticationError);
    } else {
      CHECK(l[1].as_string() == reason::kSessionNotFound);
      CHECK(l[2].as_string().find("299") != std::string::npos);
    }
    CHECK(f.session->state() == Session::State::kClosed);
  }
}

TEST_CASE("xpra 6.x AES: refused plainly on a port without AES, and for each invalid parameter") {
  {
    Fixture f;  // no --tcp-encryption
    Client6 c(crypto6::Mode::kCbc, true);
    f.session->OnClientData(Wire(Value(List{Value("hello"), c.Hello(ClientHello("foo"))}), nullptr,
                                 Encoding::kRencodePlus));
    f.ExpectDisconnect(reason::kAuthenticationError, "AES encryption is not enabled on this port");
    CHECK(f.io.off_jobs.empty());
  }
  struct Bad {
    const char* key;
    Value value;
    const char* words;
  };
  for (const Bad& b : {Bad{"mode", Value("GCM"), "unsupported AES mode 'GCM'"},
                       Bad{"key_stretch_iterations", Value(999), "key_stretch_iterations outside"},
                       Bad{"iv", Value(""), "missing iv"}, Bad{"iv", Value("short"), "16 bytes"},
                       Bad{"key_hash", Value("MD5"), "unsupported key hash"},
                       Bad{"key_salt", Value::bytes("tiny"), "key_salt outside"}}) {
    CAPTURE(b.key);
    Fixture f("", /*aes=*/true);
    Client6 c(crypto6::Mode::kCbc, true);
    Value hello = c.Hello(ClientHello("foo"));
    Value enc = *Caps(hello).get("encryption");
    enc.set(b.key, b.value);
    hello.set("encryption", enc);
    f.session->OnClientData(Wire(Value(List{Value("hello"), hello}), nullptr, Encoding::kRencodePlus));
    f.ExpectDisconnect(reason::kAuthenticationError, b.words);
    CHECK(f.io.off_jobs.empty());  // nothing derived for a refused hello
  }
}

TEST_CASE("xpra 6.x AES: the login's derivations are charged to the budget at the first hello") {
  KdfBudget kdf(44000);  // two logins' worth at 1,000 + the relay's 10,000, each twice (challenge)
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    Fixture f("", /*aes=*/true);
    f.session = std::make_unique<Session>(9, "127.0.0.1:5555", f.config, &f.io,
                                          SessionEnv{f.admission, &f.counters, [] { return int64_t{1000}; },
                                                     f.login_memory, &kdf});
    f.session->Start();
    Client6 c(crypto6::Mode::kCbc, true);
    f.session->OnClientData(Wire(Value(List{Value("hello"), c.Hello(ClientHello("foo"))}), nullptr,
                                 Encoding::kRencodePlus));
    if (i < 2) {
      CHECK(f.io.off_jobs.size() == 1);
      CHECK(f.io.closed.empty());
    } else {
      f.ExpectDisconnect(reason::kServerError, "too busy to set up encryption");
      CHECK(f.io.off_jobs.empty());
    }
  }
}

TEST_CASE("xpra 6.x AES: derivations past the concurrent slots wait for one, within the login time") {
  Fixture f("", /*aes=*/true);
  f.kdf.SetMaxConcurrent(1);
  REQUIRE(f.kdf.TakeSlot());  // another connection's derivation is running
  Client6 c(crypto6::Mode::kCbc, true);
  f.session->OnClientData(Wire(Value(List{Value("hello"), c.Hello(ClientHello("foo"))}), nullptr,
                               Encoding::kRencodePlus));
  CHECK(f.io.off_jobs.empty());
  CHECK(f.io.deadline == 20);  // asks again shortly
  f.session->OnTimeout();
  CHECK(f.io.off_jobs.empty());  // still busy
  f.kdf.GiveSlot();
  f.session->OnTimeout();
  REQUIRE(f.io.off_jobs.size() == 1);
  CHECK(f.kdf.slots_in_use() == 1);  // held by the queued job
  f.RunOffJobs();
  CHECK(f.kdf.slots_in_use() == 0);  // given back when the work is done
  CHECK(f.io.deadline > 1000);       // the login deadline again
  c.ReadOne(f.io.to_client, "challenge");
}

TEST_CASE("xpra 6.x AES: a full worker queue refuses at once; a session closed meanwhile ignores its keys") {
  {
    Fixture f("", /*aes=*/true);
    f.io.off_queue_full = true;
    Client6 c(crypto6::Mode::kCbc, true);
    f.session->OnClientData(Wire(Value(List{Value("hello"), c.Hello(ClientHello("foo"))}), nullptr,
                                 Encoding::kRencodePlus));
    f.ExpectDisconnect(reason::kServerError, "too busy to set up encryption");
    CHECK(f.kdf.slots_in_use() == 0);
  }
  Fixture f("", /*aes=*/true);
  Client6 c(crypto6::Mode::kCbc, true);
  f.session->OnClientData(Wire(Value(List{Value("hello"), c.Hello(ClientHello("foo"))}), nullptr,
                               Encoding::kRencodePlus));
  REQUIRE(f.io.off_jobs.size() == 1);
  f.session->OnClientClosed("gone");
  f.io.to_client.clear();
  f.RunOffJobs();
  CHECK(f.io.to_client.empty());
  CHECK(f.io.auth_jobs.empty());
}

TEST_CASE("xpra 6.x AES: a challenge reply with more key stretching or another mode is refused") {
  for (bool more_iterations : {true, false}) {
    CAPTURE(more_iterations);
    Fixture f("", /*aes=*/true);
    Client6 c(crypto6::Mode::kCbc, true);
    Value challenge = ChallengeAes6(f, c);
    c.SendWith(challenge.as_list()[2]);
    if (more_iterations) {
      c.recv.iterations = 2000;
    } else {
      c.recv.mode = crypto6::Mode::kCtr;
      c.recv.framing.mode = crypto6::Mode::kCtr;
    }
    c.NewReceive();
    Value reply = c.Hello(f.ResponseHello(challenge, "foo", "bar", "200"));
    f.session->OnClientData(c.Wire6(Value(List{Value("hello"), reply})));
    CHECK(f.io.off_jobs.empty());
    CHECK(f.session->state() == Session::State::kClosed);
  }
}

TEST_CASE("xpra 6.x AES: a frame under another key, or a plain one once keyed, is a protocol error") {
  for (bool plain : {false, true}) {
    CAPTURE(plain);
    Fixture f("", /*aes=*/true);
    Client6 c(crypto6::Mode::kCbc, true);
    Value challenge = ChallengeAes6(f, c);
    if (!plain) {
      c.key = "not-the-key";
      c.SendWith(challenge.as_list()[2]);
    }
    f.session->OnClientData(c.Wire6(Value(List{Value("hello"), f.ResponseHello(challenge, "foo", "bar", "200")})));
    CHECK(f.session->state() == Session::State::kClosed);
    CHECK(f.io.auth_jobs.empty());
    // The relay still tells the client why, with the client's own (unchanged) receive keys.
    c.key = "secret-key";
    Value d = c.ReadOne(f.io.to_client, "disconnect");
    CHECK(d.as_list()[1].as_string() == reason::kProtocolError);
  }
}

// ---------------------------------------------------------------- bridge (issue 17, section 2)

TEST_CASE("bridge: a 3.1 client's server answers unframed as 6.x does: reconnect in rencodeplus, hellos and packets translated both ways") {
  Fixture f;
  f.Login("bridged", "pw", "");
  REQUIRE(f.io.connect_target.has_value());
  f.session->OnServerConnected();
  REQUIRE(f.io.to_server.size() > kHeaderSize);
  CHECK((static_cast<uint8_t>(f.io.to_server[1]) & flags::kRencodePlus) == 0);  // 3.1 first: the client's own
  f.io.to_server.clear();
  // What 6.5.3 writes to a hello it cannot decode: not an xpra frame.
  f.session->OnServerData("disconnect: invalid packet encoding: 'rencode' decoder is not available\n");
  CHECK(f.io.reconnects == 1);
  CHECK(f.session->state() == Session::State::kConnecting);
  CHECK(f.io.closed.empty());
  f.session->OnServerConnected();
  REQUIRE(f.io.to_server.size() > kHeaderSize);
  CHECK((static_cast<uint8_t>(f.io.to_server[1]) & flags::kRencodePlus) != 0);
  Value hello = f.ExpectOne(f.ServerGot(), "hello");
  Caps sc(hello.as_list()[1]);
  CHECK(sc.get_strings("encoders") == std::vector<std::string>{"rencodeplus"});
  CHECK(sc.get_bool("proxy"));
  CHECK(sc.get_string("username") == "bridged");
  // The 6.x server's hello: nested, rencodeplus.
  Value caps6{Dict{}};
  caps6.set("version", "6.5");
  caps6.set("lz4", Value(Dict{{Value(""), Value(true)}, {Value("version"), Value("1.9.4")}}));
  caps6.set("encoders", List{Value("rencodeplus")});
  f.session->OnServerData(Wire(Value(List{Value("hello"), caps6}), nullptr, Encoding::kRencodePlus));
  CHECK(f.session->state() == Session::State::kRelay);
  CHECK(!f.io.passthrough);  // every packet goes through the translator
  REQUIRE(f.io.to_client.size() > kHeaderSize);
  CHECK(static_cast<uint8_t>(f.io.to_client[1]) == flags::kRencode);
  Value got = f.ExpectOne(f.ClientGot(), "hello");
  Caps cc(got.as_list()[1]);
  CHECK(cc.get_bool("lz4"));
  CHECK(cc.get_bool("rencode"));
  CHECK(cc.get_string("lz4.version") == "1.9.4");
  // Client -> server: rencode bytes become rencodeplus str.
  f.session->OnClientData(Wire(Value(List{Value("key-action"), Value(1), Value::bytes("a"), Value(true), Value(List{}),
                                          Value(97), Value::bytes("a"), Value(38), Value(0)})));
  REQUIRE(f.io.to_server.size() > kHeaderSize);
  CHECK((static_cast<uint8_t>(f.io.to_server[1]) & flags::kRencodePlus) != 0);
  Value key = f.ExpectOne(f.ServerGot(), "key-action");
  CHECK(key.as_list()[2].is_text());
  // Server -> client: a pixel chunk passes raw, its draw packet becomes rencode.
  std::string pixels(70000, '\x01');
  std::string wire = SerializeFrame(FrameHeader{0, 0, 7, static_cast<uint32_t>(pixels.size())}, pixels);
  wire += Wire(Value(List{Value("draw"), Value(1), Value(0), Value(0), Value(10), Value(10), Value("rgb24"), Value::bytes(""),
                          Value(1), Value(30), Value(Dict{})}),
               nullptr, Encoding::kRencodePlus);
  f.session->OnServerData(wire);
  Value draw = f.ExpectOne(f.ClientGot(), "draw");
  CHECK(draw.as_list()[7].as_string() == pixels);
  Value info = f.session->BridgeInfo();
  REQUIRE(info.is_dict());
  CHECK(info.find("description")->as_string() == "bridging rencode+lz4 <-> rencodeplus+lz4");
  CHECK(info.find("packets-to-server")->as_int() == 1);
  CHECK(info.find("packets-to-client")->as_int() == 1);
  CHECK(info.find("chunks-to-client")->as_int() == 1);
  // A packet with no counterpart in 6.x is dropped and counted, the session goes on.
  f.session->OnClientData(Wire(Value(List{Value("set_deflate"), Value(5)})));
  CHECK(f.ServerGot().empty());
  CHECK(f.session->BridgeInfo().find("dropped")->as_int() == 1);
  CHECK(f.session->state() == Session::State::kRelay);
  // A malformed client packet ends it with the reason, both sides told.
  f.session->OnClientData(std::string("P\x01\x00\x00\x00\x00\x00\x03\xff\xff\xff", 11));
  f.ExpectDisconnect("protocol error", "bridge");
}

TEST_CASE("bridge: the next login to a target known to speak 6.x sends its hello in rencodeplus at once") {
  Fixture f;
  f.generations.Remember("tcp://127.0.0.1:15400/", bridge::Generation::k6);
  f.Login("bridged", "pw", "");
  REQUIRE(f.io.connect_target.has_value());
  CHECK(f.io.connect_target->describe() == "tcp://127.0.0.1:15400/");
  f.session->OnServerConnected();
  REQUIRE(f.io.to_server.size() > kHeaderSize);
  CHECK((static_cast<uint8_t>(f.io.to_server[1]) & flags::kRencodePlus) != 0);
  CHECK(f.io.reconnects == 0);
}

TEST_CASE("bridge: a server that answers in the other generation twice is an error, not a loop") {
  Fixture f;
  f.generations.Remember("tcp://127.0.0.1:15400/", bridge::Generation::k6);
  f.Login("bridged", "pw", "");
  f.session->OnServerConnected();   // 6.x hello (remembered)
  f.session->OnServerData("not xpra at all\n");
  CHECK(f.io.reconnects == 1);      // tries 3.1
  f.session->OnServerConnected();
  f.session->OnServerData("still not xpra\n");
  CHECK(f.io.reconnects == 1);
  f.ExpectDisconnect("server error", "invalid data from the session's server");
}
