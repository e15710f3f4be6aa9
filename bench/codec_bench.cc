// Codec throughput: encode and decode a typical xpra 3.1 client hello and a 64 KiB draw
// packet with rencode and bencode, in MB/s (10^6 wire bytes per second) and packets/s, per
// second of the benchmark thread's CPU time (the machine may be busy with other work).
// Also AES-256-CBC as xpra 3.1 uses it (codec/cipher) on a 64 KiB frame payload: "encrypt" and
// "decrypt" are the cipher alone (one continuous CBC stream, as on a connection), "relay" is
// what the relay does per server frame on an AES client leg (frame reader -> new header ->
// encrypt from the reader's buffer into a fresh wire buffer), so cipher cost and framing/copy
// cost can be told apart.
//
//   bazel run -c opt //bench:codec_bench [-- --json] [--seconds=S] [--data=DIR] [--filter=rencode/hello/decode]
//   bazel run -c opt //bench:codec_bench -- --filter=aes    # the AES figures only (no golden files needed)
//
// The packets are the golden vectors written by tools/golden/rencode_bencode.py from the
// real python encoders; bench/codec_bench_baseline.py times python-rencode and xpra's bencode
// on the same files the same way (median of 5 rounds, each op repeated for ~S/5 CPU seconds) and,
// given this program's --json output, prints the C++/python ratios.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "codec/bencode.h"
#include "codec/cipher.h"
#include "codec/cipher6.h"
#include "codec/frame_reader.h"
#include "codec/header.h"
#include "codec/rencode.h"

namespace {

struct Options {
  bool json = false;
  double seconds = 2.5;  // per codec/packet/op, over all rounds
  std::string data;
  std::string filter;  // only "codec/packet/op" names containing this
};

struct Result {
  std::string codec, packet, op;
  size_t bytes = 0;
  double packets_per_s = 0;
  double mb_per_s() const { return packets_per_s * static_cast<double>(bytes) / 1e6; }
};

constexpr int kRounds = 5;

// CPU time of this thread in seconds: steadier than wall time on a shared, busy machine.
double ThreadSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Runs fn repeatedly for about `seconds` of CPU time, split into kRounds rounds; returns the
// median rate (calls per CPU second).
double MeasureRate(const std::function<void()>& fn, double seconds) {
  // Calibrate: how many calls fit in ~10 ms.
  size_t batch = 1;
  while (true) {
    const double t0 = ThreadSeconds();
    for (size_t i = 0; i < batch; ++i) fn();
    if (ThreadSeconds() - t0 > 0.01 || batch > (size_t{1} << 30)) break;
    batch *= 2;
  }
  std::vector<double> rates;
  const double round_seconds = seconds / kRounds;
  for (int r = 0; r < kRounds; ++r) {
    size_t calls = 0;
    const double t0 = ThreadSeconds();
    double dt = 0;
    do {
      for (size_t i = 0; i < batch; ++i) fn();
      calls += batch;
      dt = ThreadSeconds() - t0;
    } while (dt < round_seconds);
    rates.push_back(static_cast<double>(calls) / dt);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

bool ReadFile(const std::filesystem::path& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

// The golden testdata directory: --data, the runfiles tree, or the workspace (bazel run).
std::filesystem::path FindData(const Options& opts, const char* argv0) {
  std::vector<std::filesystem::path> candidates;
  if (!opts.data.empty()) candidates.emplace_back(opts.data);
  const std::filesystem::path rel = "tests/codec/testdata";
  candidates.push_back(rel);
  if (const char* r = std::getenv("RUNFILES_DIR")) candidates.push_back(std::filesystem::path(r) / "xpra_relay" / rel);
  candidates.push_back(std::filesystem::path(std::string(argv0) + ".runfiles") / "xpra_relay" / rel);
  if (const char* w = std::getenv("BUILD_WORKSPACE_DIRECTORY")) candidates.push_back(std::filesystem::path(w) / rel);
  for (const auto& c : candidates) {
    if (std::filesystem::exists(c / "rencode" / "hello.bin")) return c;
  }
  return {};
}

volatile size_t g_sink = 0;  // keeps results observable

template <typename DecodeFn, typename EncodeFn>
bool BenchCodec(const char* codec, const std::filesystem::path& dir, DecodeFn decode, EncodeFn encode,
                const Options& opts, std::vector<Result>* results) {
  for (const char* packet : {"hello", "draw"}) {
    const std::string name = std::string(codec) + "/" + packet + "/";
    if ((name + "decode").find(opts.filter) == std::string::npos &&
        (name + "encode").find(opts.filter) == std::string::npos) {
      continue;
    }
    std::string wire;
    if (!ReadFile(dir / codec / (std::string(packet) + ".bin"), &wire)) {
      std::fprintf(stderr, "codec_bench: cannot read %s/%s/%s.bin\n", dir.c_str(), codec, packet);
      return false;
    }
    auto value = decode(wire);
    if (!value.ok()) {
      std::fprintf(stderr, "codec_bench: %s\n", value.error().message.c_str());
      return false;
    }
    std::string out;
    if (!encode(*value, &out).ok() || out != wire) {
      std::fprintf(stderr, "codec_bench: %s %s does not re-encode to the golden bytes\n", codec, packet);
      return false;
    }
    if ((name + "decode").find(opts.filter) != std::string::npos) {
      Result dec{codec, packet, "decode", wire.size()};
      dec.packets_per_s = MeasureRate([&] { g_sink = g_sink + decode(wire).ok(); }, opts.seconds);
      results->push_back(dec);
    }
    if ((name + "encode").find(opts.filter) != std::string::npos) {
      Result enc{codec, packet, "encode", wire.size()};
      enc.packets_per_s = MeasureRate(
          [&] {
            out.clear();
            g_sink = g_sink + encode(*value, &out).ok() + out.size();
          },
          opts.seconds);
      results->push_back(enc);
    }
  }
  return true;
}

// AES-256-CBC on a 64 KiB payload (the bench stream's packet size), through codec/cipher.
bool BenchAes(const Options& opts, std::vector<Result>* results) {
  constexpr size_t kFrame = 64 * 1024;
  const std::string name = "aes-cbc/64KiB/";
  auto wanted = [&](const char* op) { return (name + op).find(opts.filter) != std::string::npos; };
  if (!wanted("encrypt") && !wanted("decrypt") && !wanted("relay")) return true;
  const std::string plain = xr::crypto::RandomBytes(kFrame);
  auto key = xr::crypto::DeriveKey("codec-bench-key", xr::crypto::RandomBytes(64), xr::crypto::kDefaultIterations);
  const std::string iv = xr::crypto::RandomIv();
  if (!key.ok()) return false;
  auto make_enc = [&] { return xr::crypto::Encryptor::Create(*key, iv, xr::crypto::Padding::kPkcs7).value(); };
  auto make_dec = [&] { return xr::crypto::Decryptor::Create(*key, iv, xr::crypto::Padding::kPkcs7).value(); };
  // Round trip once: the figures below are only worth something if the cipher is right.
  std::string cipher;
  if (!make_enc()->Encrypt(plain, &cipher).ok() || cipher.size() != xr::crypto::PaddedSize(kFrame)) return false;
  std::string back;
  if (!make_dec()->Decrypt(cipher, kFrame, &back).ok() || back != plain) {
    std::fprintf(stderr, "codec_bench: AES round trip failed\n");
    return false;
  }
  if (wanted("encrypt")) {
    auto enc = make_enc();
    std::string out;
    Result r{"aes-cbc", "64KiB", "encrypt", kFrame};
    r.packets_per_s = MeasureRate(
        [&] {
          out.clear();
          g_sink = g_sink + enc->Encrypt(plain, &out).ok() + out.size();
        },
        opts.seconds);
    results->push_back(r);
  }
  if (wanted("decrypt")) {
    // Decrypting the same ciphertext again on a continuing chain garbles only its first block
    // (CBC), so the padding check still passes and every call does the full work.
    auto dec = make_dec();
    std::string out;
    Result r{"aes-cbc", "64KiB", "decrypt", kFrame};
    r.packets_per_s = MeasureRate(
        [&] {
          out.clear();
          g_sink = g_sink + dec->Decrypt(cipher, kFrame, &out).ok() + out.size();
        },
        opts.seconds);
    results->push_back(r);
  }
  if (wanted("relay")) {
    // engine/session.cc's server -> client step on an AES leg, minus the sockets. The frame is
    // a 64 KiB main packet: chunk frames, each with the same index and no main packet between
    // them, would break the framing rules (codec/frame_tracker.h) from the second one on.
    auto enc = make_enc();
    xr::FrameHeader h;
    h.payload_size = kFrame;
    const std::string wire = xr::SerializeFrame(h, plain);
    xr::FrameReader reader(xr::FrameLimits{xr::kHardMaxPayload, 3});
    Result r{"aes-cbc", "64KiB", "relay", kFrame};
    r.packets_per_s = MeasureRate(
        [&] {
          reader.Feed(wire);
          auto f = reader.NextView();
          if (!f.ok() || !f->has_value()) {
            // Measuring nothing would report a rate: stop instead.
            std::fprintf(stderr, "codec_bench: relay frame refused: %s\n",
                         f.ok() ? "incomplete" : f.error().message.c_str());
            std::exit(1);
          }
          xr::FrameHeader eh = (**f).header;
          eh.flags |= xr::flags::kCipher;
          std::string out;
          out.reserve(xr::kHeaderSize + xr::crypto::PaddedSize((**f).payload.size()) + 1024);
          out.resize(xr::kHeaderSize);
          xr::EncodeHeader(eh, out.data());
          g_sink = g_sink + enc->Encrypt((**f).payload, &out).ok() + out.size();
        },
        opts.seconds);
    results->push_back(r);
  }
  return true;
}

// AES as xpra 6.x speaks it (codec/cipher6, the relay's 6.x AES leg): CBC (16-byte padding)
// and CTR (parallel, unpadded), one continuous stream each, on a 64 KiB payload.
bool BenchAes6(const Options& opts, std::vector<Result>* results) {
  constexpr size_t kFrame = 64 * 1024;
  const std::string plain = xr::crypto::RandomBytes(kFrame);
  auto key = xr::crypto6::DeriveKey("codec-bench-key", xr::crypto::RandomBytes(64), xr::crypto6::KeyHash::kSha1, 32,
                                    xr::crypto6::kDefaultIterations);
  if (!key.ok()) return false;
  const std::string iv = xr::crypto::RandomIv();
  for (xr::crypto6::Mode mode : {xr::crypto6::Mode::kCbc, xr::crypto6::Mode::kCtr}) {
    const xr::crypto6::Framing f{mode, false, true};
    const std::string codec = std::string("aes6-") + (mode == xr::crypto6::Mode::kCbc ? "cbc" : "ctr");
    auto wanted = [&](const char* op) { return (codec + "/64KiB/" + op).find(opts.filter) != std::string::npos; };
    if (!wanted("encrypt") && !wanted("decrypt")) continue;
    auto enc = xr::crypto6::Encryptor::Create(*key, iv, f);
    auto dec = xr::crypto6::Decryptor::Create(*key, iv, f);
    if (!enc.ok() || !dec.ok()) return false;
    std::string cipher;
    uint32_t size = 0;
    std::string back;
    if (!(*enc)->Encrypt(plain, &cipher, &size).ok() || !(*dec)->Decrypt(cipher, size, &back).ok() || back != plain) {
      std::fprintf(stderr, "codec_bench: AES-6 round trip failed\n");
      return false;
    }
    if (wanted("encrypt")) {
      std::string out;
      Result r{codec, "64KiB", "encrypt", kFrame};
      r.packets_per_s = MeasureRate(
          [&] {
            out.clear();
            g_sink = g_sink + (*enc)->Encrypt(plain, &out, &size).ok() + out.size();
          },
          opts.seconds);
      results->push_back(r);
    }
    if (wanted("decrypt")) {
      // The same ciphertext again on a continuing stream: CBC garbles only its first block, CTR
      // has no padding to check, so every call does the full work.
      std::string out;
      Result r{codec, "64KiB", "decrypt", kFrame};
      r.packets_per_s = MeasureRate(
          [&] {
            out.clear();
            g_sink = g_sink + (*dec)->Decrypt(cipher, size, &out).ok() + out.size();
          },
          opts.seconds);
      results->push_back(r);
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--json") {
      opts.json = true;
    } else if (a.starts_with("--seconds=")) {
      opts.seconds = std::atof(argv[i] + 10);
    } else if (a.starts_with("--data=")) {
      opts.data = std::string(a.substr(7));
    } else if (a.starts_with("--filter=")) {
      opts.filter = std::string(a.substr(9));
    } else {
      std::fprintf(stderr, "usage: codec_bench [--json] [--seconds=S] [--data=DIR] [--filter=CODEC/PACKET/OP]\n");
      return 2;
    }
  }
  if (opts.seconds <= 0) opts.seconds = 2.5;
  std::vector<Result> results;
  if (!BenchAes(opts, &results) || !BenchAes6(opts, &results)) {
    std::fprintf(stderr, "codec_bench: AES benchmark setup failed\n");
    return 1;
  }
  const bool aes_only = !opts.filter.empty() && (std::string("aes-cbc/64KiB/").find(opts.filter) != std::string::npos ||
                                                 std::string("aes6-ctr/64KiB/").find(opts.filter) != std::string::npos ||
                                                 std::string("aes6-cbc/64KiB/").find(opts.filter) != std::string::npos);
  const auto dir = FindData(opts, argv[0]);
  if (dir.empty() && !aes_only) {
    std::fprintf(stderr, "codec_bench: golden vectors not found; pass --data=tests/codec/testdata\n");
    return 1;
  }
  auto rdec = [](std::string_view d) { return xr::rencode::Decode(d); };
  auto renc = [](const xr::Value& v, std::string* o) { return xr::rencode::Encode(v, o); };
  auto bdec = [](std::string_view d) { return xr::bencode::Decode(d); };
  auto benc = [](const xr::Value& v, std::string* o) { return xr::bencode::Encode(v, o); };
  if (!aes_only) {
    if (!BenchCodec("rencode", dir, rdec, renc, opts, &results)) return 1;
    if (!BenchCodec("bencode", dir, bdec, benc, opts, &results)) return 1;
  }

  if (opts.json) {
    std::printf("{\"impl\": \"c++\", \"unit\": {\"mb_per_s\": \"1e6 wire bytes/s\"}, \"results\": [\n");
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      std::printf("  {\"codec\": \"%s\", \"packet\": \"%s\", \"op\": \"%s\", \"bytes\": %zu, "
                  "\"packets_per_s\": %.1f, \"mb_per_s\": %.2f}%s\n",
                  r.codec.c_str(), r.packet.c_str(), r.op.c_str(), r.bytes, r.packets_per_s, r.mb_per_s(),
                  i + 1 < results.size() ? "," : "");
    }
    std::printf("]}\n");
    return 0;
  }
  std::printf("%-8s %-6s %7s %-7s %12s %10s\n", "codec", "packet", "bytes", "op", "packets/s", "MB/s");
  for (const Result& r : results) {
    std::printf("%-8s %-6s %7zu %-7s %12.0f %10.1f\n", r.codec.c_str(), r.packet.c_str(), r.bytes, r.op.c_str(),
                r.packets_per_s, r.mb_per_s());
  }
  return 0;
}
