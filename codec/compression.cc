#include "codec/compression.h"

#include <lz4.h>
#include <lz4hc.h>
#include <zlib.h>

#include <algorithm>
#include <memory>
#include <climits>
#include <cstdint>
#include <string>

namespace xr {
namespace {

constexpr size_t kLz4SizePrefix = 4;
// The most an lz4 block can expand: each byte of a match-length extension adds 255 bytes of
// output (LZ4 block format), plus a little for the last sequence. A size prefix claiming more
// than this for the bytes actually present is a lie, refused before anything is allocated.
constexpr size_t kLz4MaxRatio = 255;
constexpr size_t kLz4RatioSlack = 64;
constexpr size_t kInflateStep = 64u << 10;

Error TooLarge(const char* what, size_t size, size_t max_out) {
  return MakeError(ErrorCode::kTooLarge, std::string(what) + " data decompresses to " + std::to_string(size) +
                                             " bytes, over the " + std::to_string(max_out) + " byte limit");
}

Expected<std::string> DecompressLz4(std::string_view in, size_t max_out) {
  if (in.size() < kLz4SizePrefix) {
    return MakeError(ErrorCode::kMalformed, "lz4 data of " + std::to_string(in.size()) + " bytes has no size prefix");
  }
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  size_t size = size_t{p[0]} | (size_t{p[1]} << 8) | (size_t{p[2]} << 16) | (size_t{p[3]} << 24);
  if (size > max_out) {
    return MakeError(ErrorCode::kTooLarge, "lz4 data claims " + std::to_string(size) + " bytes, over the " +
                                               std::to_string(max_out) + " byte limit");
  }
  std::string_view body = in.substr(kLz4SizePrefix);
  if (size > body.size() * kLz4MaxRatio + kLz4RatioSlack) {
    return MakeError(ErrorCode::kMalformed, "lz4 data claims " + std::to_string(size) + " bytes from " +
                                                std::to_string(body.size()) + " compressed bytes, more than lz4 can produce");
  }
  if (size > static_cast<size_t>(INT_MAX) || body.size() > static_cast<size_t>(INT_MAX)) {
    return MakeError(ErrorCode::kTooLarge, "lz4 block too large");
  }
  std::string out(size, '\0');
  int n = LZ4_decompress_safe(body.data(), out.data(), static_cast<int>(body.size()), static_cast<int>(size));
  if (n < 0) {
    return MakeError(ErrorCode::kMalformed, "lz4 decompression failed: corrupt input (error " + std::to_string(-n) + ")");
  }
  if (static_cast<size_t>(n) != size) {
    return MakeError(ErrorCode::kMalformed, "lz4 data decompressed to " + std::to_string(n) + " bytes, but " +
                                                std::to_string(size) + " bytes expected from its size prefix");
  }
  return out;
}

// Releases a z_stream on every return path.
class Inflater {
 public:
  Inflater() { ok_ = inflateInit(&zs_) == Z_OK; }
  ~Inflater() {
    if (ok_) inflateEnd(&zs_);
  }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  bool ok() const { return ok_; }
  z_stream* get() { return &zs_; }

 private:
  z_stream zs_{};
  bool ok_ = false;
};

class Deflater {
 public:
  explicit Deflater(int level) { ok_ = deflateInit(&zs_, level) == Z_OK; }
  ~Deflater() {
    if (ok_) deflateEnd(&zs_);
  }
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  bool ok() const { return ok_; }
  z_stream* get() { return &zs_; }

 private:
  z_stream zs_{};
  bool ok_ = false;
};

Expected<std::string> DecompressZlib(std::string_view in, size_t max_out) {
  Inflater inf;
  if (!inf.ok()) return MakeError(ErrorCode::kInternal, "zlib inflateInit failed");
  z_stream* zs = inf.get();
  std::string out;
  size_t produced = 0;
  // Room is granted up to max_out + 1 bytes: filling the extra byte proves the limit is exceeded.
  const size_t cap = max_out == SIZE_MAX ? max_out : max_out + 1;
  std::string_view rest = in;
  while (true) {
    if (produced == out.size()) {
      if (out.size() >= cap) return TooLarge("zlib", out.size(), max_out);
      size_t grow = std::max(kInflateStep, out.size());
      size_t next = std::min(cap, out.size() + grow);
      // A fresh string reserves exactly `next` (growing in place would round up to double),
      // so no allocation exceeds the limit by more than a byte.
      std::string bigger;
      bigger.reserve(next);
      bigger.append(out, 0, produced);
      bigger.resize(next);
      out.swap(bigger);
    }
    uInt in_chunk = static_cast<uInt>(std::min<size_t>(rest.size(), UINT_MAX));
    uInt out_chunk = static_cast<uInt>(std::min<size_t>(out.size() - produced, UINT_MAX));
    zs->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(rest.data()));
    zs->avail_in = in_chunk;
    zs->next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs->avail_out = out_chunk;
    int rc = inflate(zs, Z_NO_FLUSH);
    rest.remove_prefix(in_chunk - zs->avail_in);
    produced += out_chunk - zs->avail_out;
    if (produced > max_out) return TooLarge("zlib", produced, max_out);
    if (rc == Z_STREAM_END) break;  // trailing bytes are ignored, as Python's zlib.decompress does
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR) {
      if (zs->avail_out == 0) continue;  // needs more room
      return MakeError(ErrorCode::kMalformed, "zlib data is incomplete or truncated");
    }
    if (rc == Z_MEM_ERROR) return MakeError(ErrorCode::kInternal, "zlib out of memory");
    std::string why = zs->msg ? zs->msg : "error " + std::to_string(rc);
    return MakeError(ErrorCode::kMalformed, "zlib decompression failed: " + why);
  }
  out.resize(produced);
  return out;
}

Status CompressZlib(int level, std::string_view in, std::string* out) {
  Deflater def(level);
  if (!def.ok()) return MakeError(ErrorCode::kInternal, "zlib deflateInit failed");
  z_stream* zs = def.get();
  if (in.size() > UINT_MAX) return MakeError(ErrorCode::kTooLarge, "input too large for zlib");
  size_t bound = deflateBound(zs, static_cast<uLong>(in.size()));
  size_t start = out->size();
  out->resize(start + bound);
  zs->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs->avail_in = static_cast<uInt>(in.size());
  zs->next_out = reinterpret_cast<Bytef*>(out->data() + start);
  zs->avail_out = static_cast<uInt>(bound);
  int rc = deflate(zs, Z_FINISH);
  if (rc != Z_STREAM_END) {
    out->resize(start);
    return MakeError(ErrorCode::kInternal, "zlib deflate failed: error " + std::to_string(rc));
  }
  out->resize(start + zs->total_out);
  return Status::Ok();
}

Status CompressLz4(int level, std::string_view in, std::string* out) {
  if (in.size() > static_cast<size_t>(LZ4_MAX_INPUT_SIZE)) {
    return MakeError(ErrorCode::kTooLarge, "input too large for lz4");
  }
  const int src_size = static_cast<int>(in.size());
  const int bound = LZ4_compressBound(src_size);
  size_t start = out->size();
  out->resize(start + kLz4SizePrefix + static_cast<size_t>(bound));
  char* prefix = out->data() + start;
  const auto size32 = static_cast<uint32_t>(in.size());
  prefix[0] = static_cast<char>(size32 & 0xff);
  prefix[1] = static_cast<char>((size32 >> 8) & 0xff);
  prefix[2] = static_cast<char>((size32 >> 16) & 0xff);
  prefix[3] = static_cast<char>((size32 >> 24) & 0xff);
  char* dst = prefix + kLz4SizePrefix;
  int n;
  if (level >= 7) {
    n = LZ4_compress_HC(in.data(), dst, src_size, bound, level);
  } else {
    // python-lz4 compresses blocks through a fresh stream (LZ4_compress_fast_continue), whose
    // hash table differs from LZ4_compress_fast's for small inputs; do the same to match its bytes.
    std::unique_ptr<LZ4_stream_t, int (*)(LZ4_stream_t*)> stream(LZ4_createStream(), LZ4_freeStream);
    if (!stream) return MakeError(ErrorCode::kInternal, "lz4 stream allocation failed");
    const int acceleration = level <= 3 ? 8 - level * 2 : 1;
    n = LZ4_compress_fast_continue(stream.get(), in.data(), dst, src_size, bound, acceleration);
  }
  if (n <= 0) {
    out->resize(start);
    return MakeError(ErrorCode::kInternal, "lz4 compression failed");
  }
  out->resize(start + kLz4SizePrefix + static_cast<size_t>(n));
  return Status::Ok();
}

}  // namespace

Expected<std::string> Decompress(uint8_t level, std::string_view in, size_t max_out) {
  switch (CompressorForLevel(level)) {
    case Compressor::kNone:
      if (in.size() > max_out) return TooLarge("uncompressed", in.size(), max_out);
      return std::string(in);
    case Compressor::kLz4: return DecompressLz4(in, max_out);
    case Compressor::kZlib: return DecompressZlib(in, max_out);
    case Compressor::kLzo: return MakeError(ErrorCode::kUnsupported, "lzo compression is not supported");
    case Compressor::kBrotli: return MakeError(ErrorCode::kUnsupported, "brotli compression is not supported");
  }
  return MakeError(ErrorCode::kInternal, "unknown compressor");
}

Expected<uint8_t> Compress(Compressor c, int level, std::string_view in, std::string* out) {
  if (c == Compressor::kNone) {
    out->append(in);
    return uint8_t{0};
  }
  if (c == Compressor::kLzo || c == Compressor::kBrotli) {
    return MakeError(ErrorCode::kUnsupported, std::string(CompressorName(c)) + " compression is not supported");
  }
  if (level < 1 || level > 9) {
    return MakeError(ErrorCode::kMalformed, "compression level " + std::to_string(level) + " is outside 1..9");
  }
  if (c == Compressor::kZlib) {
    Status s = CompressZlib(level, in, out);
    if (!s.ok()) return s.error();
    return static_cast<uint8_t>(level_flags::kZlib | level);
  }
  Status s = CompressLz4(level, in, out);
  if (!s.ok()) return s.error();
  return static_cast<uint8_t>(level_flags::kLz4 | level);
}

}  // namespace xr
