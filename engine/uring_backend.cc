#include "engine/uring_backend.h"

#include "engine/log.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include <fmt/format.h>

namespace xr::engine {
namespace {

struct RequiredOp {
  int op;
  const char* name;
};

constexpr RequiredOp kRequiredOps[] = {
    {IORING_OP_ACCEPT, "ACCEPT"},   {IORING_OP_CONNECT, "CONNECT"},   {IORING_OP_RECV, "RECV"},
    {IORING_OP_SEND, "SEND"},       {IORING_OP_TIMEOUT, "TIMEOUT"},   {IORING_OP_LINK_TIMEOUT, "LINK_TIMEOUT"},
    {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"}, {IORING_OP_READ, "READ"}, {IORING_OP_SHUTDOWN, "SHUTDOWN"},
};

// The "Seccomp:" field of /proc/self/status: 0 none, 1 strict, 2 a filter (-1: unknown).
int SeccompMode() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Seccomp:", 0) == 0) return std::atoi(line.c_str() + 8);
  }
  return -1;
}

// kernel.io_uring_disabled: 0 allowed, 1 only for kernel.io_uring_group, 2 off (-1: no such sysctl).
int IoUringDisabledSysctl() {
  std::ifstream in("/proc/sys/kernel/io_uring_disabled");
  int v = -1;
  if (!(in >> v)) return -1;
  return v;
}

constexpr const char* kSeccompFix =
    "allow io_uring_setup, io_uring_enter and io_uring_register in the seccomp filter (a container: "
    "--security-opt seccomp=deploy/seccomp-io_uring.json, podman's default profile plus io_uring)";

// Why the io_uring system call `call` failed with `err`, and in `fix` what would make it work.
std::string Explain(const char* call, int err, std::string* fix) {
  const int seccomp = SeccompMode();
  const int sysctl = IoUringDisabledSysctl();
  const char* name = err == ENOSYS ? "ENOSYS" : err == EPERM ? "EPERM" : err == EACCES ? "EACCES" : nullptr;
  if ((err == EPERM || err == EACCES) && sysctl >= 1) {
    *fix = sysctl == 2 ? "sysctl kernel.io_uring_disabled=0"
                       : "sysctl kernel.io_uring_disabled=0, or add this user to kernel.io_uring_group";
    return fmt::format("io_uring disabled by sysctl ({}, kernel.io_uring_disabled={})", name, sysctl);
  }
  if (name != nullptr && seccomp == 2) {
    // Container runtimes' default profiles answer ENOSYS (podman, CRI-O) or EPERM (Docker 25+,
    // containerd 2) for io_uring: the kernel has it, the filter hides it.
    *fix = kSeccompFix;
    return fmt::format("io_uring blocked by seccomp ({}, Seccomp: 2 in /proc/self/status)", name);
  }
  if (err == ENOSYS) {
    *fix = "a kernel built with io_uring (CONFIG_IO_URING, Linux 6.1 or newer)";
    return fmt::format("{}: ENOSYS with no seccomp filter in place: this kernel has no io_uring", call);
  }
  if (err == EPERM || err == EACCES) {
    *fix = "check the security policy (AppArmor, SELinux) or the container runtime's seccomp profile";
    return fmt::format("{}: {} (io_uring not permitted here)", call, name);
  }
  if (err == ENOMEM) {
    *fix = "raise RLIMIT_MEMLOCK (ulimit -l)";
    return fmt::format("{}: not enough locked memory for the ring", call);
  }
  *fix = "Linux 6.1 or newer with io_uring";
  return fmt::format("{}: {}", call, log::ErrnoText(err));
}

}  // namespace

Ring::~Ring() {
  if (initialized_) io_uring_queue_exit(&ring_);
}

Status Ring::Init(unsigned entries) {
  io_uring_params p{};
  // R_DISABLED: the ring is created on the main thread but used by its reactor thread; with
  // SINGLE_ISSUER the thread that enables it (Ring::Enable) becomes its only submitter.
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
            IORING_SETUP_R_DISABLED;
  int rc = io_uring_queue_init_params(entries, &ring_, &p);
  if (rc == -EINVAL) {
    // Older kernel: without the optional flags.
    p = io_uring_params{};
    p.flags = IORING_SETUP_R_DISABLED;
    rc = io_uring_queue_init_params(entries, &ring_, &p);
  } else if (rc == 0) {
    defer_taskrun_ = true;
  }
  if (rc < 0) return MakeError(ErrorCode::kIo, Explain("io_uring_setup", -rc, &fix_));
  initialized_ = true;
  io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  if (probe == nullptr) {
    fix_ = "Linux 6.1 or newer";
    return MakeError(ErrorCode::kIo, "io_uring_register(PROBE) failed: this kernel's io_uring is too old");
  }
  std::string missing;
  for (const auto& op : kRequiredOps) {
    if (!io_uring_opcode_supported(probe, op.op)) missing += std::string(missing.empty() ? "" : ", ") + op.name;
  }
  io_uring_free_probe(probe);
  if (!missing.empty()) {
    fix_ = "Linux 6.1 or newer";
    return MakeError(ErrorCode::kUnsupported, "this kernel's io_uring lacks: " + missing + " (Linux 6.1+ needed)");
  }
  return Status::Ok();
}

Status Ring::Enable() {
  // liburing 2.3 has no io_uring_enable_rings(): issue the register opcode directly.
  long rc = syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
  if (rc < 0) return MakeError(ErrorCode::kIo, Explain("io_uring_register", errno, &fix_));
  return Status::Ok();
}

io_uring_sqe* Ring::GetSqes(unsigned n) {
  // Linked entries must go to the kernel in one submission: with fewer than `n` free, flush
  // what is pending first (the ring has thousands of entries, so this always makes room).
  while (io_uring_sq_space_left(&ring_) < n) io_uring_submit(&ring_);
  return io_uring_get_sqe(&ring_);
}

int Ring::SubmitAndWait() { return io_uring_submit_and_wait(&ring_, 1); }

BufferRing::~BufferRing() {
  if (br_ != nullptr && ring_ != nullptr) io_uring_unregister_buf_ring(ring_, group_);
  if (br_ != nullptr) munmap(br_, ring_bytes_);
  if (data_ != nullptr) munmap(data_, data_bytes_);
}

Status BufferRing::Init(io_uring* ring, uint16_t group, unsigned entries, size_t buf_size, uint16_t first_bid) {
  first_bid_ = first_bid;
  ring_bytes_ = entries * sizeof(io_uring_buf);
  void* mem = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) return MakeError(ErrorCode::kIo, fmt::format("buffer ring: {}", log::ErrnoText(errno)));
  br_ = static_cast<io_uring_buf_ring*>(mem);
  data_bytes_ = entries * buf_size;
  mem = mmap(nullptr, data_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) return MakeError(ErrorCode::kIo, fmt::format("buffer ring: {}", log::ErrnoText(errno)));
  data_ = static_cast<char*>(mem);
  io_uring_buf_ring_init(br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(br_);
  reg.ring_entries = entries;
  reg.bgid = group;
  int rc = io_uring_register_buf_ring(ring, &reg, 0);
  if (rc < 0) {
    return MakeError(ErrorCode::kUnsupported,
                     fmt::format("provided buffer rings are not available: {} (Linux 5.19+ needed)", log::ErrnoText(-rc)));
  }
  ring_ = ring;
  entries_ = entries;
  buf_size_ = buf_size;
  group_ = group;
  for (unsigned i = 0; i < entries; ++i) {
    const auto bid = static_cast<uint16_t>(first_bid + i);
    io_uring_buf_ring_add(br_, buffer(bid), static_cast<unsigned>(buf_size), bid, io_uring_buf_ring_mask(entries),
                          static_cast<int>(i));
  }
  io_uring_buf_ring_advance(br_, static_cast<int>(entries));
  return Status::Ok();
}

void BufferRing::Recycle(uint16_t bid) {
  io_uring_buf_ring_add(br_, buffer(bid), static_cast<unsigned>(buf_size_), bid, io_uring_buf_ring_mask(entries_), 0);
  io_uring_buf_ring_advance(br_, 1);
}

// ------------------------------------------------------------------ UringBackend

Status UringBackend::Init(unsigned entries) { return ring_.Init(entries); }

Status UringBackend::Start(unsigned buffers, size_t buffer_size) {
  if (Status s = ring_.Enable(); !s.ok()) return s;
  if (Status s = bufs_.Init(ring_.get(), 1, buffers, buffer_size); !s.ok()) return s;
  if (buffers + kHotBuffers > 0x8000) return MakeError(ErrorCode::kTooLarge, "too many receive buffers");
  return hot_.Init(ring_.get(), 2, kHotBuffers, buffer_size, static_cast<uint16_t>(buffers));
}

void UringBackend::Accept(int listen_fd, uint64_t tag) {
  io_uring_sqe* sqe = ring_.GetSqes();
  io_uring_prep_multishot_accept(sqe, listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, tag);
}

void UringBackend::ConnectWithTimeout(int fd, const sockaddr* addr, socklen_t len, int64_t timeout_ms, uint64_t tag,
                                      uint64_t timeout_tag) {
  __kernel_timespec* ts = KeepTimespec(timeout_ms);
  io_uring_sqe* sqe = ring_.GetSqes(2);  // CONNECT and its LINK_TIMEOUT in one submission
  io_uring_prep_connect(sqe, fd, addr, len);
  io_uring_sqe_set_data64(sqe, tag);
  sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe* tsqe = io_uring_get_sqe(ring_.get());
  io_uring_prep_link_timeout(tsqe, ts, 0);
  io_uring_sqe_set_data64(tsqe, timeout_tag);
}

void UringBackend::RecvProvided(int fd, size_t max_len, uint64_t tag) { PrepRecvSelect(fd, max_len, tag, bufs_); }

void UringBackend::RecvHot(int fd, size_t max_len, uint64_t tag) { PrepRecvSelect(fd, max_len, tag, hot_); }

void UringBackend::PrepRecvSelect(int fd, size_t max_len, uint64_t tag, const BufferRing& from) {
  size_t len = from.buf_size();
  if (max_len != 0) len = std::min(len, max_len);
  io_uring_sqe* sqe = ring_.GetSqes();
  io_uring_prep_recv(sqe, fd, nullptr, len, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = from.group();
  io_uring_sqe_set_data64(sqe, tag);
}

void UringBackend::Recv(int fd, char* buf, size_t len, uint64_t tag) {
  io_uring_sqe* sqe = ring_.GetSqes();
  io_uring_prep_recv(sqe, fd, buf, len, 0);
  io_uring_sqe_set_data64(sqe, tag);
}

void UringBackend::Read(int fd, void* buf, size_t len, uint64_t tag) {
  io_uring_sqe* sqe = ring_.GetSqes();
  io_uring_prep_read(sqe, fd, buf, static_cast<unsigned>(len), 0);
  io_uring_sqe_set_data64(sqe, tag);
}

void UringBackend::Send(int fd, const char* data, size_t len, uint64_t tag) {
  io_uring_sqe* sqe = ring_.GetSqes();
  io_uring_prep_send(sqe, fd, data, len, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, tag);
}

void UringBackend::Poll(int fd, unsigned events, uint64_t tag) {
  io_uring_sqe* sqe = ring_.GetSqes();
  io_uring_prep_poll_add(sqe, fd, events);
  io_uring_sqe_set_data64(sqe, tag);
}

void UringBackend::Timer(int64_t ms, uint64_t tag) {
  __kernel_timespec* ts = KeepTimespec(ms);
  io_uring_sqe* sqe = ring_.GetSqes();
  io_uring_prep_timeout(sqe, ts, 0, 0);
  io_uring_sqe_set_data64(sqe, tag);
}

void UringBackend::Cancel(uint64_t target, uint64_t tag) {
  io_uring_sqe* sqe = ring_.GetSqes();
  io_uring_prep_cancel64(sqe, target, 0);
  io_uring_sqe_set_data64(sqe, tag);
}

ssize_t UringBackend::Splice(int from_fd, int to_fd, size_t len) {
  // Synchronous: IORING_OP_SPLICE is not pollable and would block an io-wq thread per stream.
  ssize_t n = splice(from_fd, nullptr, to_fd, nullptr, len, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
  return n < 0 ? -errno : n;
}

__kernel_timespec* UringBackend::KeepTimespec(int64_t ms) {
  timespecs_.push_back(__kernel_timespec{ms / 1000, (ms % 1000) * 1000000});
  return &timespecs_.back();
}

int UringBackend::Wait() {
  int rc = ring_.SubmitAndWait();
  // The kernel copies a timeout's timespec when it takes the entry: once nothing is left to
  // submit, none is needed any more.
  if (io_uring_sq_ready(ring_.get()) == 0) timespecs_.clear();
  return rc < 0 ? rc : 0;
}

size_t UringBackend::Reap(Completion* out, size_t max) {
  io_uring_cqe* cqe;
  unsigned head;
  size_t count = 0;
  io_uring_for_each_cqe(ring_.get(), head, cqe) {
    if (count == max) break;
    Completion& c = out[count++];
    c.tag = io_uring_cqe_get_data64(cqe);
    c.res = cqe->res;
    c.more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    c.buffer = (cqe->flags & IORING_CQE_F_BUFFER) ? static_cast<int>(cqe->flags >> IORING_CQE_BUFFER_SHIFT) : -1;
  }
  io_uring_cq_advance(ring_.get(), static_cast<unsigned>(count));
  return count;
}

UringSupport ProbeIoUring() {
  Ring ring;
  UringSupport out;
  Status s = ring.Init(8);
  if (s.ok()) s = ring.Enable();
  if (s.ok()) {
    // A filter may let the ring be made and still refuse io_uring_enter: submit one no-op.
    io_uring_sqe* sqe = ring.GetSqes();
    io_uring_prep_nop(sqe);
    int rc = ring.SubmitAndWait();
    if (rc < 0) {
      std::string fix;
      s = MakeError(ErrorCode::kIo, Explain("io_uring_enter", -rc, &fix));
      out.fix = fix;
    }
  } else {
    out.fix = ring.fix();
  }
  out.ok = s.ok();
  if (!s.ok()) out.reason = s.error().message;
  return out;
}

}  // namespace xr::engine
