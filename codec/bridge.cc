#include "codec/bridge.h"

#include <algorithm>
#include <array>
#include <utility>

#include "codec/compression.h"
#include "codec/decode_util.h"

namespace xr::bridge {
namespace {

bool ReadsAsText(std::string_view s, bool key) {
  if (!key && (s.size() > kMaxTextBytes || s.find('\0') != std::string_view::npos)) return false;
  return codec_internal::IsValidUtf8(s);
}

Value KeyForSix(const Value& k) {
  if (k.is_bytes() && ReadsAsText(k.as_string(), true)) return Value::text(k.as_string());
  return k;
}

// Inserts `v` at the dotted path `key` below `d` (a dict), creating dicts on the way. A scalar
// met on the way becomes the "" entry of a new dict; a list (or a dict's "" slot that is a
// list) stops the nesting (the flat key still carries the value).
void NestInto(Value* d, std::string_view key, const Value& v) {
  size_t dot = key.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 >= key.size()) {
    Value* slot = d->find(key);
    if (slot == nullptr) {
      d->set(key, v);
    } else if (slot->is_dict() && !v.is_dict() && slot->find("") == nullptr) {
      slot->set("", v);
    }
    return;
  }
  std::string_view head = key.substr(0, dot);
  Value* child = d->find(head);
  if (child == nullptr) {
    d->set(head, Value(Dict{}));
    child = d->find(head);
  } else if (!child->is_dict()) {
    if (child->is_list()) return;
    Value scalar = *child;
    *child = Value(Dict{});
    child->set("", std::move(scalar));
  }
  NestInto(child, key.substr(dot + 1), v);
}

// Adds the flat dotted keys of the nested dict `v` under `prefix` to *out (the dict itself is
// kept by the caller). A "" entry becomes the prefix's own value.
void FlattenInto(Dict* out, const std::string& prefix, const Value& v, int depth) {
  if (depth > 16) return;
  for (const auto& [k, x] : v.as_dict()) {
    if (!k.is_string()) continue;
    const std::string& ks = k.as_string();
    if (ks.empty()) continue;  // the caller set prefix = ""-entry
    std::string name = prefix + "." + ks;
    if (x.is_dict()) {
      const Value* own = x.find("");
      out->emplace_back(Value(std::string_view(name)), own != nullptr ? *own : x);
      FlattenInto(out, name, x, depth + 1);
    } else {
      out->emplace_back(Value(std::string_view(name)), x);
    }
  }
}

// 6.x sends the keyboard as a "keymap" dict (in its hello and in "keymap-changed"); 3.1 reads
// flat "xkbmap_<name>" keys from the same dict (x11/server_keyboard_config.py parse_options).
void KeymapFor3(Value* d) {
  const Value* keymap = d->find("keymap");
  if (keymap == nullptr || !keymap->is_dict()) return;
  Dict add;
  for (const auto& [k, v] : keymap->as_dict()) {
    if (!k.is_string() || k.as_string().empty()) continue;
    std::string name = "xkbmap_" + k.as_string();
    if (d->find(name) == nullptr) add.emplace_back(Value(std::string_view(name)), v);
  }
  for (auto& kv : add) d->as_dict().push_back(std::move(kv));
}

Value Strings(std::initializer_list<const char*> names) {
  List l;
  for (const char* n : names) l.emplace_back(n);
  return Value(std::move(l));
}

}  // namespace

const char* GenerationName(Generation g) { return g == Generation::k6 ? "6.x" : "3.1"; }

std::string FormatName(const WireFormat& f) {
  return std::string(EncodingName(f.encoding)) + "+" + CompressorName(f.compressor);
}

WireFormat FormatFor(Generation g, const Value& caps_value) {
  Caps caps(caps_value);
  std::vector<std::string> compressors = caps.get_strings("compressors");
  auto offers = [&](const char* c) {
    return caps.get_bool(c) || std::find(compressors.begin(), compressors.end(), c) != compressors.end();
  };
  WireFormat f;
  if (g == Generation::k6) {
    f.encoding = Encoding::kRencodePlus;
    f.compressor = offers("lz4") ? Compressor::kLz4 : Compressor::kNone;
    return f;
  }
  f.encoding = caps.get_bool("rencode", !caps.get_bool("bencode")) ? Encoding::kRencode : Encoding::kBencode;
  f.compressor = offers("zlib") ? Compressor::kZlib : offers("lz4") ? Compressor::kLz4 : Compressor::kNone;
  return f;
}

void SetFormatCaps(Generation g, Value* caps) {
  if (g == Generation::k6) {
    caps->set("encoders", Strings({"rencodeplus"}));
    caps->set("compressors", Strings({"lz4"}));
    caps->set("rencodeplus", true);
    caps->set("lz4", true);
    return;
  }
  caps->set("encoders", Strings({"rencode", "bencode"}));
  caps->set("compressors", Strings({"zlib", "lz4"}));
  caps->set("rencode", true);
  caps->set("bencode", true);
  caps->set("zlib", true);
  caps->set("lz4", true);
  caps->erase_if([](std::string_view k) { return k == "rencodeplus"; });
}

Value TextForSix(Value v) {
  switch (v.kind()) {
    case Value::Kind::kBytes:
      if (ReadsAsText(v.as_string(), false)) return Value::text(std::move(v.mutable_string()));
      return v;
    case Value::Kind::kList:
      for (Value& x : v.as_list()) x = TextForSix(std::move(x));
      return v;
    case Value::Kind::kDict:
      for (auto& [k, x] : v.as_dict()) {
        k = KeyForSix(k);
        x = TextForSix(std::move(x));
      }
      return v;
    default: return v;
  }
}

Value HelloTo6(const Value& caps3) {
  Value out = TextForSix(caps3);
  if (!out.is_dict()) return out;
  Value nested{Dict{}};
  std::vector<std::pair<std::string, const Value*>> dotted;
  for (const auto& [k, v] : out.as_dict()) {
    if (!k.is_string()) continue;
    const std::string& key = k.as_string();
    if (key.find('.') == std::string::npos) {
      nested.set(key, v);
    } else {
      dotted.emplace_back(key, &v);
    }
  }
  // Shorter paths first, so "a.b" = 1 is in place before "a.b.c" makes it {"": 1, "c": ..}.
  std::stable_sort(dotted.begin(), dotted.end(), [](const auto& a, const auto& b) {
    return std::count(a.first.begin(), a.first.end(), '.') < std::count(b.first.begin(), b.first.end(), '.');
  });
  for (const auto& [key, v] : dotted) NestInto(&nested, key, *v);
  // The flat keys stay as well: 6.x's typedict tries the flat key first.
  for (const auto& [key, v] : dotted) nested.set(key, *v);
  return nested;
}

Value HelloTo3(const Value& caps6) {
  if (!caps6.is_dict()) return caps6;
  Dict out;
  for (const auto& [k, v] : caps6.as_dict()) {
    if (!k.is_string()) continue;
    if (!v.is_dict()) {
      out.emplace_back(k, v);
      continue;
    }
    const Value* own = v.find("");
    out.emplace_back(k, own != nullptr ? *own : v);
    FlattenInto(&out, k.as_string(), v, 0);
  }
  // Later duplicates (a flat key the 6.x peer also sent) lose to the first.
  Value result{Dict{}};
  for (auto& [k, v] : out) {
    if (result.find(k.as_string()) == nullptr) result.as_dict().emplace_back(std::move(k), std::move(v));
  }
  KeymapFor3(&result);
  return result;
}

bool DroppedToward(Generation to, std::string_view type) {
  // ssl-upgrade (6.x): the relay's server leg is plain and the client's transport is the
  // relay's; neither side of a bridge can follow it. encodings (6.x server: the encodings it
  // enabled for the client): 3.1 has no such packet ("unknown packet type: encodings").
  // set_deflate (3.1): the compression level of each bridged leg is the relay's, and 6.x has no
  // handler for it ("removed in v6").
  static constexpr std::array<std::string_view, 2> kNotTo3{"ssl-upgrade", "encodings"};
  static constexpr std::array<std::string_view, 1> kNotTo6{"set_deflate"};
  if (to == Generation::k3) return std::find(kNotTo3.begin(), kNotTo3.end(), type) != kNotTo3.end();
  return std::find(kNotTo6.begin(), kNotTo6.end(), type) != kNotTo6.end();
}

Translator::Translator(Generation from_gen, WireFormat to, size_t max_payload, DecodeLimits limits)
    : from_gen_(from_gen), to_(to), max_payload_(max_payload), limits_(limits) {}

Value Translator::TranslateHello(const Value& caps) const {
  Value out = to_generation() == Generation::k6 ? HelloTo6(caps) : HelloTo3(caps);
  SetFormatCaps(to_generation(), &out);
  return out;
}

Status Translator::Translate(const FrameHeader& h, std::string_view payload, const Sink& sink, std::string* dropped) {
  if (h.encrypted()) return MakeError(ErrorCode::kMalformed, "bridge: encrypted frame");
  bytes_in_ += payload.size();
  const bool to6 = to_generation() == Generation::k6;
  if (h.index > 0) {
    // A chunk: its raw bytes pass as they are unless the other side cannot read their compressor.
    FrameHeader out{};
    out.index = h.index;
    Compressor c = h.compressor();
    ++chunks_;
    ++chunks_since_main_;
    if (c == Compressor::kNone || c == to_.compressor || (!to6 && c == Compressor::kLz4)) {
      out.level = h.level;
      out.payload_size = static_cast<uint32_t>(payload.size());
      bytes_out_ += payload.size();
      return sink(out, payload);
    }
    auto raw = Decompress(h.level, payload, max_payload_);
    if (!raw.ok()) return MakeError(raw.error().code, "bridge: chunk " + std::to_string(h.index) + ": " + raw.error().message);
    out.payload_size = static_cast<uint32_t>(raw->size());
    bytes_out_ += raw->size();
    return sink(out, *raw);
  }
  auto enc = EncodingForFlags(h.flags);
  if (!enc.ok()) return enc.error();
  if (GenerationOf(*enc) != from_gen_) {
    return MakeError(ErrorCode::kMalformed, std::string("bridge: a ") + EncodingName(*enc) + " packet from a " +
                                                GenerationName(from_gen_) + " peer");
  }
  auto data = Decompress(h.level, payload, max_payload_);
  if (!data.ok()) return MakeError(data.error().code, "bridge: " + data.error().message);
  auto packet = DecodePayload(*enc, *data, limits_);
  if (!packet.ok()) return MakeError(packet.error().code, "bridge: " + packet.error().message);
  if (!packet->is_list() || packet->as_list().empty() || !packet->as_list()[0].is_string()) {
    return MakeError(ErrorCode::kMalformed, "bridge: a packet that is not a list starting with its type");
  }
  const int chunks_before = chunks_since_main_;
  chunks_since_main_ = 0;
  const std::string type = packet->as_list()[0].as_string();  // a copy: the packet moves below
  if (DroppedToward(to_generation(), type)) {
    if (chunks_before > 0) {
      return MakeError(ErrorCode::kMalformed, "bridge: '" + type + "' cannot be bridged and came with chunks");
    }
    ++dropped_;
    *dropped = type;
    return Status::Ok();
  }
  Value converted = to6 ? TextForSix(std::move(*packet)) : std::move(*packet);
  if (!to6 && type == "keymap-changed" && converted.as_list().size() > 1 && converted.as_list()[1].is_dict()) {
    KeymapFor3(&converted.as_list()[1]);
  }
  EncodeOptions opts;
  opts.encoding = to_.encoding;
  opts.compressor = to_.compressor;
  opts.level = to_.compressor == Compressor::kNone ? 0 : 1;
  opts.flush = to6;
  std::string wire;
  if (Status s = EncodePacket(converted, opts, nullptr, &wire); !s.ok()) {
    return MakeError(s.error().code, "bridge: cannot encode '" + type + "': " + s.error().message);
  }
  auto oh = DecodeHeader(wire);
  if (!oh.ok()) return oh.error();
  ++packets_;
  bytes_out_ += wire.size() - kHeaderSize;
  return sink(*oh, std::string_view(wire).substr(kHeaderSize));
}

}  // namespace xr::bridge
