#pragma once
// Shared pieces of the load tools (xpra-relay-bench and xpra-synthetic-server): command-line
// and URL parsing, socket helpers, clocks, CRC32C, a latency histogram, a timer heap, a JSON
// writer, a gather-write output queue, and the "bench stream" format both tools agree on.
//
// Bench stream (throughput mode). The client's hello asks for it:
//   "bench.stream" = True, optional "bench.stream-size" (payload bytes per packet),
//   optional "bench.stream-rate" (packets/s, 0 = as fast as the socket takes),
//   "bench.stream-token" (a random int the server echoes in every payload).
// A server that streams says so in its hello with "bench.stream" = True and the size and rate
// in force. Then, like an xpra 3.1 server sending pixels, each packet is two frames:
//   1. a chunk frame (flags 0, level 0, index 7) carrying the payload P, raw;
//   2. the main packet ["draw", wid, x, y, w, h, "rgb24", b"", seq, rowstride,
//      {"bench.checksum": crc32c(P), "bench.size": len(P)}] with b"" standing for element 7.
// P is len(P) - 16 pseudo-random bytes (which depend on seq) followed by a 16-byte trailer:
// seq (u64 little-endian) and the token (u64 little-endian). seq starts at 1 and grows by 1.

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "base/process.h"
#include "base/status.h"
#include "codec/packet.h"
#include "codec/value.h"

namespace xr::bench {

// ---------------------------------------------------------------- time

// CLOCK_MONOTONIC in nanoseconds.
int64_t NowNs();

// ---------------------------------------------------------------- command line

// "--name=value", "--name value" and bare "--flag" options plus positional arguments.
class Args {
 public:
  // Parses argv[1..]; `valued` lists the option names that take a value (so "--json FILE" works).
  // An unknown option is kept and reported by Unknown().
  Args(int argc, char** argv, const std::vector<std::string>& valued, const std::vector<std::string>& flags);

  // True if --name was given (with or without a value).
  bool Has(std::string_view name) const;
  // The value of --name, or def.
  std::string Get(std::string_view name, std::string_view def = {}) const;
  // --name as an integer; Error (kMalformed) if it is not one, def if absent.
  Expected<int64_t> GetInt(std::string_view name, int64_t def) const;
  // --name as a number; Error (kMalformed) if it is not one, def if absent.
  Expected<double> GetDouble(std::string_view name, double def) const;
  // The positional arguments in order.
  const std::vector<std::string>& positional() const { return positional_; }
  // First problem found while parsing (unknown option, missing value), or "" when none.
  const std::string& problem() const { return problem_; }

 private:
  std::map<std::string, std::string, std::less<>> values_;
  std::vector<std::string> positional_;
  std::string problem_;
};

// ---------------------------------------------------------------- addresses

// An xpra URL: SCHEME://[USER[:PASS]@]HOST[:PORT][/[DISPLAY]], SCHEME tcp, ssl, ws or wss (as
// `xpra attach`). USER and PASS may be %-encoded.
struct Endpoint {
  std::string scheme = "tcp";  // tcp | ssl | ws | wss
  std::string username;
  std::string password;
  std::string host;
  uint16_t port = 14500;
  std::string display;  // ":100" for /100 or /:100; empty when none
  sockaddr_storage addr{};
  socklen_t addr_len = 0;

  // The URL without the password (for reports).
  std::string Describe() const;
  // ssl:// and wss://: TLS under xpra (or under WebSocket).
  bool tls() const { return scheme == "ssl" || scheme == "wss"; }
  // ws:// and wss://: xpra packets in WebSocket binary frames.
  bool websocket() const { return scheme == "ws" || scheme == "wss"; }
};

// Parses `url` (tcp://, ssl://, ws://, wss://) and resolves HOST. Errors: kMalformed, kNotFound (unresolvable).
Expected<Endpoint> ParseUrl(std::string_view url);

// Parses "HOST:PORT" ("[v6]:PORT" too) and resolves it; port 0 is allowed.
Expected<Endpoint> ParseHostPort(std::string_view spec);

// "a.b.c.d:port" / "[v6]:port" of a socket address.
std::string AddressToString(const sockaddr_storage& addr);

// ---------------------------------------------------------------- fds

// Makes fd non-blocking; false on failure.
bool SetNonBlocking(int fd);
// Sets TCP_NODELAY (xpra does for its interactive traffic); false on failure.
bool SetNoDelay(int fd);
// Number of online CPUs (at least 1).
int CpuCount();
// VmRSS of process `pid` in bytes (from /proc/PID/status); nullopt if unreadable.
std::optional<uint64_t> ReadRssBytes(int pid);
// User + system CPU time of process `pid` (all its threads) in seconds, from /proc/PID/stat
// utime + stime (clock-tick resolution, usually 10 ms); nullopt if unreadable.
std::optional<double> ReadCpuSeconds(int pid);
// Login name of the current user ("bench" if unknown).
std::string LocalUsername();
// Host name of this machine.
std::string LocalHostname();

// ---------------------------------------------------------------- checksums

// CRC-32C (Castagnoli), zlib-style chaining: Crc32c(Crc32c(0, a), b) == Crc32c(0, a + b).
// Uses the SSE4.2 instruction when the CPU has it.
uint32_t Crc32c(uint32_t crc, const void* data, size_t size);

// ---------------------------------------------------------------- histogram

// Log-linear histogram of non-negative values (nanoseconds here), within 1% of the true value,
// mergeable, fixed memory (about 60 KiB).
class Histogram {
 public:
  Histogram();
  // Adds one sample (negative values count as 0).
  void Record(int64_t value);
  // Adds every sample of `other`.
  void Merge(const Histogram& other);
  // Number of samples.
  uint64_t count() const { return count_; }
  // Smallest / largest sample exactly (0 when empty).
  int64_t min() const { return count_ ? min_ : 0; }
  int64_t max() const { return count_ ? max_ : 0; }
  // Arithmetic mean (0 when empty).
  double mean() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0; }
  // The value at quantile q in [0, 1] (0 when empty); clamped to [min, max]; q 0 / 1 give min / max.
  int64_t Percentile(double q) const;

 private:
  static size_t Bucket(uint64_t v);
  static uint64_t BucketMid(size_t b);
  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
  unsigned __int128 sum_ = 0;
};

// ---------------------------------------------------------------- timers

// Min-heap of (deadline, id, generation) entries; a stale entry (generation changed) is the
// caller's to skip.
class TimerHeap {
 public:
  struct Entry {
    int64_t deadline_ns;
    uint64_t id;
    uint64_t generation;
  };
  // Schedules id at deadline_ns.
  void Push(int64_t deadline_ns, uint64_t id, uint64_t generation);
  // Removes and returns the earliest entry whose deadline is <= now_ns, if any.
  std::optional<Entry> PopDue(int64_t now_ns);
  // Deadline of the earliest entry, if any.
  std::optional<int64_t> NextDeadline() const;
  // Number of entries.
  size_t size() const { return heap_.size(); }

 private:
  std::vector<Entry> heap_;
};

// ---------------------------------------------------------------- JSON

// Builds a JSON document in order (no validation beyond what the calls imply).
class JsonWriter {
 public:
  // Opens an object; `key` is ignored at the top level or inside an array.
  void BeginObject(std::string_view key = {});
  // Closes the innermost object.
  void EndObject();
  // Opens an array member.
  void BeginArray(std::string_view key = {});
  // Closes the innermost array.
  void EndArray();
  // Adds a member (or an array element when key is empty inside an array).
  void String(std::string_view key, std::string_view value);
  void Int(std::string_view key, int64_t value);
  void Double(std::string_view key, double value);
  void Bool(std::string_view key, bool value);
  // The document so far.
  const std::string& str() const { return out_; }

 private:
  void Key(std::string_view key);
  std::string out_;
  std::vector<bool> first_{true};  // per nesting level: no member written yet
  std::vector<bool> is_array_{false};
};

// Quotes and escapes s as a JSON string.
std::string JsonQuote(std::string_view s);

// ---------------------------------------------------------------- output queue

// Bytes waiting to be written to a socket: owned strings and views of memory that outlives the
// queue (the stream body pool), written with writev(). Never grows without its owner asking.
class OutQueue {
 public:
  // Appends a copy of bytes (merged into the last owned segment when small).
  void Append(std::string_view bytes);
  // Appends bytes by taking ownership of s.
  void AppendOwned(std::string s);
  // Appends a view; the memory must stay valid until written.
  void AppendView(std::string_view view);
  // Writes as much as the socket takes. Returns the bytes written (0 included), or -errno on a
  // failure other than EAGAIN.
  int64_t WriteTo(int fd);
  // Test aid: flips the bits of the byte `offset` bytes into the queue (copying a view first).
  void CorruptByte(size_t offset);
  // Bytes still queued.
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Segment {
    std::string owned;
    std::string_view view;  // when owned is empty
    size_t offset = 0;      // bytes already written
    std::string_view data() const { return owned.empty() ? view : std::string_view(owned); }
  };
  std::vector<Segment> segments_;
  size_t head_ = 0;  // first unwritten segment
  size_t size_ = 0;
};

// ---------------------------------------------------------------- xpra bits

// The xpra version both tools claim.
inline constexpr const char* kXpraVersion = "3.1.3";

// Hello keys of the bench stream.
inline constexpr const char* kStreamKey = "bench.stream";
inline constexpr const char* kStreamSizeKey = "bench.stream-size";
inline constexpr const char* kStreamRateKey = "bench.stream-rate";
inline constexpr const char* kStreamTokenKey = "bench.stream-token";
inline constexpr const char* kChecksumKey = "bench.checksum";
inline constexpr const char* kSizeKey = "bench.size";
// Index of the pixel data in a draw packet (the chunk index the payload travels under).
inline constexpr int kDrawDataIndex = 7;
inline constexpr size_t kTrailerSize = 16;
inline constexpr size_t kMinStreamSize = kTrailerSize;
inline constexpr size_t kMaxStreamSize = 16u << 20;

// The hmac digests xr::digest implements, in xpra's client order ("xor" first, as 3.1 lists it).
std::vector<std::string> ClientDigests();
// The salt digests an xpra 3.1 client offers (the hmac+ ones).
std::vector<std::string> ClientSaltDigests();

// A List of Text values.
Value TextList(const std::vector<std::string>& items);

// Appends the wire bytes of packet (a List) to *out; on failure returns the error.
Status AppendPacket(const Value& packet, const EncodeOptions& opts, std::string* out);

// Pseudo-random bodies for one stream size, shared read-only by every connection using it.
class StreamBodies {
 public:
  // Bodies of size - kTrailerSize bytes (size within [kMinStreamSize, kMaxStreamSize]).
  explicit StreamBodies(size_t size);
  // The payload size these bodies are for.
  size_t size() const { return size_; }
  // The body for sequence number seq, and its CRC32C.
  std::string_view Body(uint64_t seq) const { return bodies_[seq % bodies_.size()]; }
  uint32_t BodyCrc(uint64_t seq) const { return crcs_[seq % crcs_.size()]; }

 private:
  size_t size_;
  std::vector<std::string> bodies_;
  std::vector<uint32_t> crcs_;
};

// The 16-byte trailer of sequence seq and token.
std::string MakeTrailer(uint64_t seq, uint64_t token);
// Reads a trailer (16 bytes) back.
void ParseTrailer(const char trailer[kTrailerSize], uint64_t* seq, uint64_t* token);

// Appends one stream packet (chunk frame + draw packet) for seq to *out: the payload body is
// appended as a view of `bodies`, everything else as owned bytes. Returns payload bytes + framing.
Expected<size_t> AppendStreamPacket(const StreamBodies& bodies, uint64_t seq, uint64_t token,
                                    Encoding encoding, OutQueue* out);

// What a received stream packet claims, for checking against what arrived.
struct DrawInfo {
  uint64_t seq = 0;
  uint32_t checksum = 0;
  uint64_t size = 0;
  const Value* inline_data = nullptr;  // element 7 when it is not empty (payload inline)
};

// Extracts seq, checksum and size from a decoded "draw" packet; kMalformed if it is not one
// of ours.
Expected<DrawInfo> ParseDrawPacket(const Value& packet);

}  // namespace xr::bench
