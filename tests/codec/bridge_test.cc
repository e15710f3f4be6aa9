// The bridge between xpra 3.1 and 6.x (codec/bridge.h): packets and hellos both ways, chunks,
// and each malformed input its own case.
#include "codec/bridge.h"

#include <doctest/doctest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "codec/compression.h"
#include "codec/frame_reader.h"
#include "codec/header.h"
#include "codec/packet.h"

namespace xr::bridge {
namespace {

const WireFormat k6{Encoding::kRencodePlus, Compressor::kLz4};
const WireFormat k3{Encoding::kRencode, Compressor::kZlib};

struct Out {
  std::vector<std::pair<FrameHeader, std::string>> frames;
  Translator::Sink sink() {
    return [this](const FrameHeader& h, std::string_view p) {
      frames.emplace_back(h, std::string(p));
      return Status::Ok();
    };
  }
};

std::string Wire(const Value& packet, Encoding e, Compressor c = Compressor::kNone) {
  std::string w;
  EncodeOptions o;
  o.encoding = e;
  o.compressor = c;
  o.level = c == Compressor::kNone ? 0 : 1;
  REQUIRE(EncodePacket(packet, o, nullptr, &w).ok());
  return w;
}

// Feeds wire bytes (whole, or byte by byte) through a reader into t.
Status Run(Translator& t, const std::string& wire, Out* out, std::string* dropped, bool bytewise = false) {
  FrameReader reader;
  Status last = Status::Ok();
  auto drain = [&]() {
    while (true) {
      auto f = reader.Next();
      if (!f.ok()) return Status(f.error());
      if (!f->has_value()) return Status::Ok();
      if (Status s = t.Translate((**f).header, (**f).payload, out->sink(), dropped); !s.ok()) return s;
    }
  };
  if (bytewise) {
    for (char c : wire) {
      reader.Feed(std::string_view(&c, 1));
      if (Status s = drain(); !s.ok()) return s;
    }
    return Status::Ok();
  }
  reader.Feed(wire);
  return drain();
}

Value Decoded(const FrameHeader& h, const std::string& payload, Encoding e) {
  auto data = Decompress(h.level, payload, size_t{1} << 24);
  REQUIRE(data.ok());
  auto v = DecodePayload(e, *data, DecodeLimits{});
  REQUIRE(v.ok());
  return *v;
}

// One frame through a fresh translator from generation `from` (to the other one's format).
Status TranslateOnce(Generation from, const FrameHeader& h, std::string_view payload, size_t max = 1 << 20) {
  Translator t(from, from == Generation::k3 ? k6 : k3, max, DecodeLimits{});
  Out out;
  std::string dropped;
  return t.Translate(h, payload, out.sink(), &dropped);
}

TEST_CASE("bridge: a 3.1 key-action (rencode+zlib, bytes) becomes 6.x rencodeplus+lz4 with str, whole and byte by byte") {
  // xpra 3.1's client: ["key-action", wid, keyname, pressed, modifiers, keyval, string, keycode, group]
  Value packet(List{Value("key-action"), Value(1), Value::bytes("Return"), Value(true),
                    Value(List{Value::bytes("mod2")}), Value(65293), Value::bytes("\r"), Value(36), Value(0)});
  for (bool bytewise : {false, true}) {
    Translator t(Generation::k3, k6, 1 << 20, DecodeLimits{});
    Out out;
    std::string dropped;
    REQUIRE(Run(t, Wire(packet, Encoding::kRencode, Compressor::kZlib), &out, &dropped, bytewise).ok());
    REQUIRE(out.frames.size() == 1);
    const auto& [h, payload] = out.frames[0];
    CHECK(h.flags == (flags::kRencodePlus | flags::kFlush));
    CHECK(h.index == 0);
    Value got = Decoded(h, payload, Encoding::kRencodePlus);
    Value want(List{Value("key-action"), Value(1), Value("Return"), Value(true), Value(List{Value("mod2")}),
                    Value(65293), Value("\r"), Value(36), Value(0)});
    CHECK(got == want);
    CHECK(t.packets() == 1);
    CHECK(dropped.empty());
  }
}

TEST_CASE("bridge: a 6.x draw with its pixel chunk goes to 3.1: the chunk passes as it is, the packet as rencode") {
  std::string pixels(65536, '\0');
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<char>((i * 7) & 0xff);
  FrameHeader ch{};
  ch.index = 7;
  ch.payload_size = static_cast<uint32_t>(pixels.size());
  std::string wire = SerializeFrame(ch, pixels);
  Value draw(List{Value("draw"), Value(1), Value(0), Value(0), Value(128), Value(128), Value("rgb24"), Value(""),
                  Value(5), Value(384), Value(Dict{})});
  wire += Wire(draw, Encoding::kRencodePlus, Compressor::kLz4);
  Translator t(Generation::k6, k3, 1 << 20, DecodeLimits{});
  Out out;
  std::string dropped;
  REQUIRE(Run(t, wire, &out, &dropped).ok());
  REQUIRE(out.frames.size() == 2);
  CHECK(out.frames[0].first.index == 7);
  CHECK(out.frames[0].first.level == 0);
  CHECK(out.frames[0].second == pixels);
  CHECK(out.frames[1].first.flags == flags::kRencode);
  Value got = Decoded(out.frames[1].first, out.frames[1].second, Encoding::kRencode);
  REQUIRE(got.is_list());
  CHECK(got.as_list()[0].as_string() == "draw");
  CHECK(got.as_list()[6].as_string() == "rgb24");
  CHECK(t.chunks() == 1);
  CHECK(t.packets() == 1);
}

TEST_CASE("bridge: a zlib chunk from 3.1 is decompressed for 6.x (which has no zlib)") {
  std::string raw(5000, 'x');
  std::string z;
  auto level = Compress(Compressor::kZlib, 1, raw, &z);
  REQUIRE(level.ok());
  FrameHeader ch{};
  ch.index = 1;
  ch.level = *level;
  ch.payload_size = static_cast<uint32_t>(z.size());
  std::string wire = SerializeFrame(ch, z) +
                     Wire(Value(List{Value("cursor"), Value::bytes("")}), Encoding::kRencode);
  Translator t(Generation::k3, k6, 1 << 20, DecodeLimits{});
  Out out;
  std::string dropped;
  REQUIRE(Run(t, wire, &out, &dropped).ok());
  REQUIRE(out.frames.size() == 2);
  CHECK(out.frames[0].first.level == 0);
  CHECK(out.frames[0].second == raw);
}

TEST_CASE("bridge: packets without a counterpart are dropped and counted") {
  Translator to6(Generation::k3, k6, 1 << 20, DecodeLimits{});
  Out out;
  std::string dropped;
  REQUIRE(Run(to6, Wire(Value(List{Value("set_deflate"), Value(3)}), Encoding::kRencode), &out, &dropped).ok());
  CHECK(out.frames.empty());
  CHECK(dropped == "set_deflate");
  CHECK(to6.dropped() == 1);
  Translator to3(Generation::k6, k3, 1 << 20, DecodeLimits{});
  dropped.clear();
  REQUIRE(Run(to3, Wire(Value(List{Value("ssl-upgrade"), Value(Dict{})}), Encoding::kRencodePlus), &out, &dropped).ok());
  CHECK(dropped == "ssl-upgrade");
}

TEST_CASE("bridge: malformed: a dropped packet that came with chunks") {
  FrameHeader ch{};
  ch.index = 1;
  ch.payload_size = 3;
  std::string wire = SerializeFrame(ch, "abc") + Wire(Value(List{Value("set_deflate"), Value::bytes("")}), Encoding::kRencode);
  Translator t(Generation::k3, k6, 1 << 20, DecodeLimits{});
  Out out;
  std::string dropped;
  Status s = Run(t, wire, &out, &dropped);
  REQUIRE(!s.ok());
  CHECK(s.error().code == ErrorCode::kMalformed);
}

TEST_CASE("bridge: malformed: a 6.x packet on the 3.1 side") {
  Translator t(Generation::k3, k6, 1 << 20, DecodeLimits{});
  Out out;
  std::string dropped;
  Status s = Run(t, Wire(Value(List{Value("ping"), Value(1)}), Encoding::kRencodePlus), &out, &dropped);
  REQUIRE(!s.ok());
  CHECK(s.error().code == ErrorCode::kMalformed);
  CHECK(s.error().message.find("rencodeplus packet from a 3.1 peer") != std::string::npos);
}

TEST_CASE("bridge: malformed: a payload that is not a packet list") {
  // A main frame whose payload is a rencoded int, not a list.
  FrameHeader h{};
  h.flags = flags::kRencode;
  std::string payload = "\x3e\x05";  // rencode int8 5
  h.payload_size = 2;
  Status s = TranslateOnce(Generation::k3, h, payload);
  REQUIRE(!s.ok());
  CHECK(s.error().code == ErrorCode::kMalformed);
}

TEST_CASE("bridge: malformed: corrupt compressed payload") {
  FrameHeader h{};
  h.flags = flags::kRencodePlus;
  h.level = level_flags::kLz4 | 1;
  std::string payload = "\xff\xff\xff\x00garbage";
  h.payload_size = static_cast<uint32_t>(payload.size());
  CHECK(!TranslateOnce(Generation::k6, h, payload).ok());
}

TEST_CASE("bridge: malformed: decompression over the leg's limit") {
  std::string raw(200000, 'a');
  std::string z;
  auto level = Compress(Compressor::kZlib, 1, raw, &z);
  REQUIRE(level.ok());
  FrameHeader h{};
  h.flags = flags::kRencode;
  h.level = *level;
  h.payload_size = static_cast<uint32_t>(z.size());
  Status s = TranslateOnce(Generation::k3, h, z, 100000);
  REQUIRE(!s.ok());
  CHECK(s.error().code == ErrorCode::kTooLarge);
}

TEST_CASE("bridge: malformed: an encrypted frame") {
  FrameHeader h{};
  h.flags = flags::kRencode | flags::kCipher;
  CHECK(!TranslateOnce(Generation::k3, h, "").ok());
}

TEST_CASE("bridge: malformed: a yaml packet") {
  FrameHeader h{};
  h.flags = flags::kYaml;
  h.payload_size = 4;
  Status s = TranslateOnce(Generation::k6, h, "- a\n");
  REQUIRE(!s.ok());
  CHECK(s.error().code == ErrorCode::kUnsupported);
}

TEST_CASE("bridge: hello 3.1 -> 6.x: flat keys kept, nested dicts added, scalars under \"\", bytes to str") {
  Value caps(Dict{{Value::bytes("version"), Value::bytes("3.1.3")},
                  {Value::bytes("encoding"), Value::bytes("rgb")},
                  {Value::bytes("encoding.min-quality"), Value(30)},
                  {Value::bytes("encodings"), Value(List{Value::bytes("rgb"), Value::bytes("png")})},
                  {Value::bytes("encodings.core"), Value(List{Value::bytes("rgb")})},
                  {Value::bytes("keymap.layout"), Value::bytes("us")},
                  {Value::bytes("keymap.keycodes"), Value(List{Value(1), Value(2)})}});
  Translator t(Generation::k3, k6, 1 << 20, DecodeLimits{});
  Value six = t.TranslateHello(caps);
  Caps c(six);
  CHECK(six.find("version")->is_text());
  CHECK(c.get_string("version") == "3.1.3");
  const Value* enc = six.find("encoding");
  REQUIRE(enc != nullptr);
  REQUIRE(enc->is_dict());
  CHECK(enc->find("")->as_string() == "rgb");
  CHECK(enc->find("min-quality")->as_int() == 30);
  CHECK(six.find("encodings")->is_list());  // a list keeps its own key
  const Value* keymap = six.find("keymap");
  REQUIRE(keymap != nullptr);
  REQUIRE(keymap->is_dict());
  CHECK(keymap->find("layout")->as_string() == "us");
  CHECK(six.find("keymap.layout") != nullptr);  // flat too
  CHECK(c.get_strings("encoders") == std::vector<std::string>{"rencodeplus"});
  CHECK(c.get_strings("compressors") == std::vector<std::string>{"lz4"});
}

TEST_CASE("bridge: hello 6.x -> 3.1: nested dicts flattened, \"\" entries become the key's value") {
  Value caps(Dict{{Value("version"), Value("6.5")},
                  {Value("lz4"), Value(Dict{{Value(""), Value(true)}, {Value("version"), Value("1.9")}})},
                  {Value("display"), Value(Dict{{Value("depth"), Value(24)}, {Value("sub"), Value(Dict{{Value("x"), Value(1)}})}})},
                  {Value("encoders"), Value(List{Value("rencodeplus")})}});
  Translator t(Generation::k6, k3, 1 << 20, DecodeLimits{});
  Value three = t.TranslateHello(caps);
  CHECK(three.find("lz4")->is_bool());
  CHECK(three.find("lz4.version")->as_string() == "1.9");
  CHECK(three.find("display")->is_dict());
  CHECK(three.find("display.depth")->as_int() == 24);
  CHECK(three.find("display.sub.x")->as_int() == 1);
  Caps c(three);
  CHECK(c.get_bool("rencode"));
  CHECK(c.get_bool("zlib"));
  CHECK(three.find("rencodeplus") == nullptr);
}

TEST_CASE("bridge: binary values stay bytes toward 6.x (NUL, invalid UTF-8, large)") {
  Value v(List{Value::bytes(std::string("a\0b", 3)), Value::bytes("\xff\xfe"), Value::bytes(std::string(5000, 'a')),
               Value::bytes("\xc0\x80"), Value::bytes("ok \xc3\xa9")});
  Value out = TextForSix(v);
  CHECK(out.as_list()[0].is_bytes());
  CHECK(out.as_list()[1].is_bytes());
  CHECK(out.as_list()[2].is_bytes());
  CHECK(out.as_list()[3].is_bytes());  // overlong
  CHECK(out.as_list()[4].is_text());
}

TEST_CASE("bridge: formats chosen from the peers' hellos, and their names") {
  Value c3(Dict{{Value::bytes("rencode"), Value(true)}, {Value::bytes("compressors"), Value(List{Value::bytes("zlib"), Value::bytes("lz4")})}});
  CHECK(FormatName(FormatFor(Generation::k3, c3)) == "rencode+zlib");
  Value c3b(Dict{{Value::bytes("rencode"), Value(false)}, {Value::bytes("bencode"), Value(true)}});
  CHECK(FormatName(FormatFor(Generation::k3, c3b)) == "bencode+none");
  Value c6(Dict{{Value("compressors"), Value(List{Value("lz4"), Value("none")})}});
  CHECK(FormatName(FormatFor(Generation::k6, c6)) == "rencodeplus+lz4");
}

TEST_CASE("bridge: 6.x's keymap dict gives 3.1 its xkbmap_ keys (hello and keymap-changed)") {
  Value keymap(Dict{{Value("layout"), Value("us")}, {Value("keycodes"), Value(List{Value(List{Value(65), Value("A")})})}});
  Value caps(Dict{{Value("keymap"), keymap}});
  Value three = HelloTo3(caps);
  CHECK(three.find("xkbmap_layout")->as_string() == "us");
  CHECK(three.find("xkbmap_keycodes")->is_list());
  Translator t(Generation::k6, k3, 1 << 20, DecodeLimits{});
  Out out;
  std::string dropped;
  Value packet(List{Value("keymap-changed"), Value(Dict{{Value("keymap"), keymap}}), Value(true)});
  REQUIRE(Run(t, Wire(packet, Encoding::kRencodePlus), &out, &dropped).ok());
  REQUIRE(out.frames.size() == 1);
  Value got = Decoded(out.frames[0].first, out.frames[0].second, Encoding::kRencode);
  const Value& props = got.as_list()[1];
  REQUIRE(props.find("xkbmap_keycodes") != nullptr);
  CHECK(props.find("xkbmap_layout")->as_string() == "us");
}

// ---- golden packets: each generation's own encoder (tools/golden/bridge.py) ---------------

std::string ReadBridgeGolden(const std::string& name) {
  std::ifstream in("tests/codec/testdata/bridge/" + name, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "missing golden file " << name);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void CheckGolden(const std::string& name, bool to6) {
  const std::string in = ReadBridgeGolden(name + ".in.bin");
  const std::string want = ReadBridgeGolden(name + ".out.bin");
  for (bool bytewise : {false, true}) {
    CAPTURE(bytewise);
    Translator t(to6 ? Generation::k3 : Generation::k6, to6 ? k6 : k3, 1 << 20, DecodeLimits{});
    Out out;
    std::string dropped;
    REQUIRE(Run(t, in, &out, &dropped, bytewise).ok());
    REQUIRE(!out.frames.empty());
    const auto& [h, payload] = out.frames.back();
    CHECK(h.index == 0);
    CHECK(h.flags == (to6 ? (flags::kRencodePlus | flags::kFlush) : flags::kRencode));
    auto data = Decompress(h.level, payload, size_t{1} << 24);
    REQUIRE(data.ok());
    CHECK(*data == want);  // byte for byte what the receiving generation's own encoder writes
    if (out.frames.size() == 2) {
      // The chunk before it: raw as it came.
      CHECK(out.frames[0].first.index == 7);
      CHECK(out.frames[0].second == in.substr(kHeaderSize, out.frames[0].second.size()));
    }
  }
}

TEST_CASE("bridge golden: 3.1.3 client packets become what 6.5.3's rencodeplus writes") {
  for (const char* name : {"key_action_3to6", "pointer_position_3to6", "damage_sequence_3to6", "configure_window_3to6"}) {
    CAPTURE(name);
    CheckGolden(name, true);
  }
}

TEST_CASE("bridge golden: 6.5.3 server packets become what 3.1.3's rencode writes (chunk passed raw)") {
  for (const char* name : {"draw_chunk_6to3", "new_window_6to3", "ping_6to3"}) {
    CAPTURE(name);
    CheckGolden(name, false);
  }
}

}  // namespace
}  // namespace xr::bridge
