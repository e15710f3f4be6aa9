#include "bench/bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "codec/header.h"

namespace xr::bench {

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// ---------------------------------------------------------------- Args

Args::Args(int argc, char** argv, const std::vector<std::string>& valued, const std::vector<std::string>& flags) {
  auto is_valued = [&](std::string_view n) { return std::find(valued.begin(), valued.end(), n) != valued.end(); };
  auto is_flag = [&](std::string_view n) { return std::find(flags.begin(), flags.end(), n) != flags.end(); };
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (!a.starts_with("--") || a == "--") {
      positional_.emplace_back(a);
      continue;
    }
    std::string_view body = a.substr(2);
    size_t eq = body.find('=');
    std::string name(body.substr(0, eq));
    if (!is_valued(name) && !is_flag(name)) {
      if (problem_.empty()) problem_ = "unknown option --" + name;
      continue;
    }
    if (eq != std::string_view::npos) {
      values_[name] = std::string(body.substr(eq + 1));
    } else if (is_valued(name)) {
      if (i + 1 >= argc) {
        if (problem_.empty()) problem_ = "option --" + name + " needs a value";
        continue;
      }
      values_[name] = argv[++i];
    } else {
      values_[name] = "1";
    }
  }
}

bool Args::Has(std::string_view name) const { return values_.find(name) != values_.end(); }

std::string Args::Get(std::string_view name, std::string_view def) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::string(def) : it->second;
}

Expected<int64_t> Args::GetInt(std::string_view name, int64_t def) const {
  auto it = values_.find(name);
  if (it == values_.end()) return def;
  int64_t v = 0;
  const std::string& s = it->second;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) {
    return MakeError(ErrorCode::kMalformed, "--" + std::string(name) + " wants an integer, got '" + s + "'");
  }
  return v;
}

Expected<double> Args::GetDouble(std::string_view name, double def) const {
  auto it = values_.find(name);
  if (it == values_.end()) return def;
  const std::string& s = it->second;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || errno != 0 || !std::isfinite(v)) {
    return MakeError(ErrorCode::kMalformed, "--" + std::string(name) + " wants a number, got '" + s + "'");
  }
  return v;
}

// ---------------------------------------------------------------- addresses

namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexDigit(s[i + 1]) >= 0 && HexDigit(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexDigit(s[i + 1]) * 16 + HexDigit(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Splits "host:port" / "[v6]:port" / "host"; port stays `port` when absent.
Status SplitHostPort(std::string_view hp, std::string* host, uint16_t* port, bool port_required) {
  std::string_view port_text;
  if (hp.starts_with('[')) {
    size_t close = hp.find(']');
    if (close == std::string_view::npos) return MakeError(ErrorCode::kMalformed, "unterminated '[' in address");
    *host = std::string(hp.substr(1, close - 1));
    std::string_view rest = hp.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return MakeError(ErrorCode::kMalformed, "garbage after ']' in address");
      port_text = rest.substr(1);
    }
  } else {
    size_t colon = hp.rfind(':');
    if (colon == std::string_view::npos) {
      *host = std::string(hp);
    } else {
      *host = std::string(hp.substr(0, colon));
      port_text = hp.substr(colon + 1);
    }
  }
  if (host->empty()) return MakeError(ErrorCode::kMalformed, "missing host");
  if (port_text.empty()) {
    if (port_required) return MakeError(ErrorCode::kMalformed, "missing port");
    return Status::Ok();
  }
  unsigned v = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), v);
  if (ec != std::errc() || p != port_text.data() + port_text.size() || v > 65535) {
    return MakeError(ErrorCode::kMalformed, "invalid port '" + std::string(port_text) + "'");
  }
  *port = static_cast<uint16_t>(v);
  return Status::Ok();
}

Status Resolve(Endpoint* ep) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(ep->port);
  int rc = getaddrinfo(ep->host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    return MakeError(ErrorCode::kNotFound, "cannot resolve '" + ep->host + "': " + gai_strerror(rc));
  }
  std::memcpy(&ep->addr, res->ai_addr, res->ai_addrlen);
  ep->addr_len = res->ai_addrlen;
  freeaddrinfo(res);
  return Status::Ok();
}

}  // namespace

std::string Endpoint::Describe() const {
  std::string s = scheme + "://";
  if (!username.empty()) s += username + "@";
  s += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  s += ":" + std::to_string(port) + "/";
  if (!display.empty()) s += display.substr(1);
  return s;
}

Expected<Endpoint> ParseUrl(std::string_view url) {
  Endpoint ep;
  size_t sep = url.find("://");
  ep.scheme = std::string(url.substr(0, sep == std::string_view::npos ? 0 : sep));
  if (sep == std::string_view::npos ||
      (ep.scheme != "tcp" && ep.scheme != "ssl" && ep.scheme != "ws" && ep.scheme != "wss")) {
    return MakeError(ErrorCode::kMalformed,
                     "only tcp://, ssl://, ws:// and wss:// URLs are supported: '" + std::string(url) + "'");
  }
  std::string_view rest = url.substr(sep + 3);
  std::string_view path;
  size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t colon = cred.find(':');
    ep.username = PercentDecode(cred.substr(0, colon));
    if (colon != std::string_view::npos) ep.password = PercentDecode(cred.substr(colon + 1));
  }
  if (Status s = SplitHostPort(rest, &ep.host, &ep.port, false); !s.ok()) return s.error();
  if (!path.empty()) {
    if (path.starts_with(':')) path.remove_prefix(1);
    for (char c : path) {
      if (c < '0' || c > '9') return MakeError(ErrorCode::kMalformed, "invalid display '" + std::string(path) + "'");
    }
    if (!path.empty()) ep.display = ":" + std::string(path);
  }
  if (Status s = Resolve(&ep); !s.ok()) return s.error();
  return ep;
}

Expected<Endpoint> ParseHostPort(std::string_view spec) {
  Endpoint ep;
  if (Status s = SplitHostPort(spec, &ep.host, &ep.port, true); !s.ok()) return s.error();
  if (Status s = Resolve(&ep); !s.ok()) return s.error();
  return ep;
}

std::string AddressToString(const sockaddr_storage& addr) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  return "?";
}

// ---------------------------------------------------------------- fds

bool SetNonBlocking(int fd) {
  int fl = fcntl(fd, F_GETFL, 0);
  return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
}

bool SetNoDelay(int fd) {
  int one = 1;
  return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
}

int CpuCount() {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

std::optional<uint64_t> ReadRssBytes(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  if (!in) return std::nullopt;
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) {
      uint64_t kb = std::strtoull(line.c_str() + 6, nullptr, 10);
      return kb * 1024;
    }
  }
  return std::nullopt;
}

std::optional<double> ReadCpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return std::nullopt;
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces and parentheses: fields are counted after the last ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && (fields >> field); ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) {
      stime = std::strtoull(field.c_str(), nullptr, 10);
      const long ticks = sysconf(_SC_CLK_TCK);
      return static_cast<double>(utime + stime) / static_cast<double>(ticks > 0 ? ticks : 100);
    }
  }
  return std::nullopt;
}

std::string LocalUsername() {
  passwd* pw = getpwuid(getuid());
  if (pw != nullptr && pw->pw_name != nullptr) return pw->pw_name;
  const char* u = std::getenv("USER");
  return u != nullptr ? u : "bench";
}

std::string LocalHostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

// ---------------------------------------------------------------- CRC32C

namespace {

struct Crc32cTable {
  uint32_t t[8][256];
  Crc32cTable() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    }
  }
};

uint32_t Crc32cSoftware(uint32_t state, const uint8_t* p, size_t n) {
  static const Crc32cTable table;
  const auto& t = table.t;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    w ^= state;
    state = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff] ^
            t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) state = (state >> 8) ^ t[0][(state ^ *p++) & 0xff];
  return state;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(uint32_t state, const uint8_t* p, size_t n) {
  uint64_t s = state;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    s = __builtin_ia32_crc32di(s, w);
    p += 8;
    n -= 8;
  }
  uint32_t s32 = static_cast<uint32_t>(s);
  while (n-- > 0) s32 = __builtin_ia32_crc32qi(s32, *p++);
  return s32;
}

bool HaveSse42() {
  static const bool have = __builtin_cpu_supports("sse4.2");
  return have;
}
#endif

}  // namespace

uint32_t Crc32c(uint32_t crc, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t state = ~crc;
#if defined(__x86_64__)
  if (HaveSse42()) return ~Crc32cHardware(state, p, size);
#endif
  return ~Crc32cSoftware(state, p, size);
}

// ---------------------------------------------------------------- Histogram

namespace {
constexpr int kSubBits = 7;                         // 128 sub-buckets per power of two
constexpr uint64_t kSub = uint64_t{1} << kSubBits;  // values below this have their own bucket
constexpr size_t kBuckets = (64 - kSubBits + 1) * kSub;
}  // namespace

Histogram::Histogram() : buckets_(kBuckets, 0) {}

size_t Histogram::Bucket(uint64_t v) {
  if (v < kSub) return static_cast<size_t>(v);
  int e = 63 - __builtin_clzll(v);  // >= kSubBits
  uint64_t sub = (v >> (e - kSubBits)) & (kSub - 1);
  return static_cast<size_t>((e - kSubBits + 1) * kSub + sub);
}

uint64_t Histogram::BucketMid(size_t b) {
  if (b < kSub) return b;
  int e = static_cast<int>(b / kSub) + kSubBits - 1;
  uint64_t sub = b % kSub;
  uint64_t lo = (uint64_t{1} << e) + (sub << (e - kSubBits));
  uint64_t width = uint64_t{1} << (e - kSubBits);
  return lo + width / 2;
}

void Histogram::Record(int64_t value) {
  if (value < 0) value = 0;
  ++buckets_[Bucket(static_cast<uint64_t>(value))];
  if (count_ == 0 || value < min_) min_ = value;
  if (count_ == 0 || value > max_) max_ = value;
  ++count_;
  sum_ += static_cast<uint64_t>(value);
}

void Histogram::Merge(const Histogram& o) {
  if (o.count_ == 0) return;
  for (size_t i = 0; i < kBuckets; ++i) buckets_[i] += o.buckets_[i];
  if (count_ == 0 || o.min_ < min_) min_ = o.min_;
  if (count_ == 0 || o.max_ > max_) max_ = o.max_;
  count_ += o.count_;
  sum_ += o.sum_;
}

int64_t Histogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  if (q <= 0) return min_;
  if (q >= 1) return max_;
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      int64_t v = static_cast<int64_t>(BucketMid(i));
      return std::clamp(v, min_, max_);
    }
  }
  return max_;
}

// ---------------------------------------------------------------- TimerHeap

namespace {
bool Later(const TimerHeap::Entry& a, const TimerHeap::Entry& b) { return a.deadline_ns > b.deadline_ns; }
}  // namespace

void TimerHeap::Push(int64_t deadline_ns, uint64_t id, uint64_t generation) {
  heap_.push_back(Entry{deadline_ns, id, generation});
  std::push_heap(heap_.begin(), heap_.end(), Later);
}

std::optional<TimerHeap::Entry> TimerHeap::PopDue(int64_t now_ns) {
  if (heap_.empty() || heap_.front().deadline_ns > now_ns) return std::nullopt;
  std::pop_heap(heap_.begin(), heap_.end(), Later);
  Entry e = heap_.back();
  heap_.pop_back();
  return e;
}

std::optional<int64_t> TimerHeap::NextDeadline() const {
  if (heap_.empty()) return std::nullopt;
  return heap_.front().deadline_ns;
}

// ---------------------------------------------------------------- JSON

std::string JsonQuote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out += "\"";
  return out;
}

void JsonWriter::Key(std::string_view key) {
  if (!first_.back()) out_ += ",";
  first_.back() = false;
  if (first_.size() > 1) out_ += "\n" + std::string(2 * (first_.size() - 1), ' ');
  if (!is_array_.back() && first_.size() > 1) out_ += JsonQuote(key) + ": ";
}

void JsonWriter::BeginObject(std::string_view key) {
  if (first_.size() > 1 || !out_.empty()) Key(key);
  out_ += "{";
  first_.push_back(true);
  is_array_.push_back(false);
}

void JsonWriter::EndObject() {
  bool empty = first_.back();
  first_.pop_back();
  is_array_.pop_back();
  if (!empty) out_ += "\n" + std::string(2 * (first_.size() - 1), ' ');
  out_ += "}";
}

void JsonWriter::BeginArray(std::string_view key) {
  Key(key);
  out_ += "[";
  first_.push_back(true);
  is_array_.push_back(true);
}

void JsonWriter::EndArray() { EndObject(); out_.back() = ']'; }

void JsonWriter::String(std::string_view key, std::string_view value) {
  Key(key);
  out_ += JsonQuote(value);
}

void JsonWriter::Int(std::string_view key, int64_t value) {
  Key(key);
  out_ += std::to_string(value);
}

void JsonWriter::Double(std::string_view key, double value) {
  Key(key);
  if (!std::isfinite(value)) {
    out_ += "null";
    return;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", value);
  out_ += buf;
}

void JsonWriter::Bool(std::string_view key, bool value) {
  Key(key);
  out_ += value ? "true" : "false";
}

// ---------------------------------------------------------------- OutQueue

namespace {
constexpr size_t kMergeLimit = 64 * 1024;  // small appends join the last owned segment
constexpr int kMaxIov = 64;
}  // namespace

void OutQueue::Append(std::string_view bytes) {
  if (bytes.empty()) return;
  if (segments_.size() > head_ && !segments_.back().owned.empty() && segments_.back().owned.size() < kMergeLimit) {
    segments_.back().owned.append(bytes);
  } else {
    segments_.push_back(Segment{std::string(bytes), {}, 0});
  }
  size_ += bytes.size();
}

void OutQueue::AppendOwned(std::string s) {
  if (s.empty()) return;
  size_ += s.size();
  segments_.push_back(Segment{std::move(s), {}, 0});
}

void OutQueue::AppendView(std::string_view view) {
  if (view.empty()) return;
  size_ += view.size();
  segments_.push_back(Segment{{}, view, 0});
}

void OutQueue::CorruptByte(size_t offset) {
  for (size_t i = head_; i < segments_.size(); ++i) {
    Segment& s = segments_[i];
    size_t avail = s.data().size() - s.offset;
    if (offset >= avail) {
      offset -= avail;
      continue;
    }
    if (s.owned.empty()) s.owned = std::string(s.view);  // never write into shared memory
    s.owned[s.offset + offset] = static_cast<char>(~s.owned[s.offset + offset]);
    return;
  }
}

int64_t OutQueue::WriteTo(int fd) {
  int64_t total = 0;
  while (size_ > 0) {
    iovec iov[kMaxIov];
    int n = 0;
    for (size_t i = head_; i < segments_.size() && n < kMaxIov; ++i) {
      std::string_view d = segments_[i].data();
      iov[n].iov_base = const_cast<char*>(d.data() + segments_[i].offset);
      iov[n].iov_len = d.size() - segments_[i].offset;
      ++n;
    }
    ssize_t w = writev(fd, iov, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return -errno;
    }
    total += w;
    size_ -= static_cast<size_t>(w);
    size_t left = static_cast<size_t>(w);
    while (left > 0) {
      Segment& s = segments_[head_];
      size_t avail = s.data().size() - s.offset;
      if (left >= avail) {
        left -= avail;
        ++head_;
      } else {
        s.offset += left;
        left = 0;
      }
    }
    if (head_ == segments_.size()) {
      segments_.clear();
      head_ = 0;
    } else if (head_ > 64) {
      segments_.erase(segments_.begin(), segments_.begin() + static_cast<ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  return total;
}

// ---------------------------------------------------------------- xpra bits

std::vector<std::string> ClientDigests() {
  return {"xor", "hmac", "hmac+sha512", "hmac+sha384", "hmac+sha256", "hmac+sha224", "hmac+sha1", "hmac+md5"};
}

std::vector<std::string> ClientSaltDigests() {
  return {"hmac+sha512", "hmac+sha384", "hmac+sha256", "hmac+sha224", "hmac+sha1", "hmac+md5"};
}

Value TextList(const std::vector<std::string>& items) {
  List l;
  l.reserve(items.size());
  for (const auto& s : items) l.emplace_back(std::string_view(s));
  return Value(std::move(l));
}

Status AppendPacket(const Value& packet, const EncodeOptions& opts, std::string* out) {
  return EncodePacket(packet, opts, nullptr, out);
}

StreamBodies::StreamBodies(size_t size) : size_(size) {
  size_t body = size - kTrailerSize;
  // A few distinct bodies (so a repeated or stale payload does not pass), bounded in memory.
  size_t count = std::clamp<size_t>(body == 0 ? 1 : (size_t{64} << 20) / body, 1, 8);
  uint64_t x = 0x9E3779B97F4A7C15ull ^ size;
  for (size_t k = 0; k < count; ++k) {
    std::string b(body, '\0');
    for (size_t i = 0; i + 8 <= body; i += 8) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      std::memcpy(b.data() + i, &x, 8);
    }
    for (size_t i = body & ~size_t{7}; i < body; ++i) b[i] = static_cast<char>(i * 31 + k);
    crcs_.push_back(Crc32c(0, b.data(), b.size()));
    bodies_.push_back(std::move(b));
  }
}

std::string MakeTrailer(uint64_t seq, uint64_t token) {
  std::string t(kTrailerSize, '\0');
  for (int i = 0; i < 8; ++i) {
    t[i] = static_cast<char>(seq >> (8 * i));
    t[8 + i] = static_cast<char>(token >> (8 * i));
  }
  return t;
}

void ParseTrailer(const char trailer[kTrailerSize], uint64_t* seq, uint64_t* token) {
  uint64_t s = 0, t = 0;
  for (int i = 7; i >= 0; --i) {
    s = (s << 8) | static_cast<uint8_t>(trailer[i]);
    t = (t << 8) | static_cast<uint8_t>(trailer[8 + i]);
  }
  *seq = s;
  *token = t;
}

Expected<size_t> AppendStreamPacket(const StreamBodies& bodies, uint64_t seq, uint64_t token,
                                    Encoding encoding, OutQueue* out) {
  const size_t size = bodies.size();
  std::string trailer = MakeTrailer(seq, token);
  std::string_view body = bodies.Body(seq);
  uint32_t crc = Crc32c(bodies.BodyCrc(seq), trailer.data(), trailer.size());

  int64_t w = static_cast<int64_t>(std::min<size_t>(1024, std::max<size_t>(1, size / 3)));
  int64_t rowstride = w * 3;
  int64_t h = std::max<int64_t>(1, static_cast<int64_t>(size) / rowstride);
  Dict options;
  options.emplace_back(Value(kChecksumKey), Value(static_cast<int64_t>(crc)));
  options.emplace_back(Value(kSizeKey), Value(static_cast<int64_t>(size)));
  Value packet(List{Value("draw"), Value(1), Value(0), Value(0), Value(w), Value(h), Value("rgb24"),
                    Value::bytes(""), Value(static_cast<int64_t>(seq)), Value(rowstride), Value(std::move(options))});

  std::string head(kHeaderSize, '\0');
  FrameHeader chunk{0, 0, static_cast<uint8_t>(kDrawDataIndex), static_cast<uint32_t>(size)};
  EncodeHeader(chunk, head.data());
  std::string tail = trailer;
  EncodeOptions opts;
  opts.encoding = encoding;
  if (Status s = AppendPacket(packet, opts, &tail); !s.ok()) return s.error();
  size_t total = head.size() + body.size() + tail.size();
  out->Append(head);
  out->AppendView(body);
  out->Append(tail);
  return total;
}

Expected<DrawInfo> ParseDrawPacket(const Value& packet) {
  const List& l = packet.as_list();
  if (l.size() < 11) return MakeError(ErrorCode::kMalformed, "draw packet with " + std::to_string(l.size()) + " elements");
  DrawInfo info;
  auto seq = l[8].to_int();
  if (!seq || *seq < 0) return MakeError(ErrorCode::kMalformed, "draw packet without a sequence number");
  info.seq = static_cast<uint64_t>(*seq);
  if (!l[10].is_dict()) return MakeError(ErrorCode::kMalformed, "draw packet without an options dict");
  Caps opts(l[10]);
  const Value* crc = opts.get(kChecksumKey);
  const Value* size = opts.get(kSizeKey);
  if (crc == nullptr || !crc->is_int() || size == nullptr || !size->is_int()) {
    return MakeError(ErrorCode::kMalformed, "draw packet without bench.checksum / bench.size");
  }
  info.checksum = static_cast<uint32_t>(crc->as_int());
  info.size = static_cast<uint64_t>(size->as_int());
  if (!l[kDrawDataIndex].is_string()) return MakeError(ErrorCode::kMalformed, "draw packet data is not a string");
  if (!l[kDrawDataIndex].as_string().empty()) info.inline_data = &l[kDrawDataIndex];
  return info;
}

}  // namespace xr::bench
