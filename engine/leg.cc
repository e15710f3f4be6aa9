#include "engine/leg.h"

namespace xr::engine {

bool Leg::Enqueue(std::string bytes) {
  if (bytes.empty() || has(kFailed)) return false;
  out_bytes_ += bytes.size();
  outq_.push_back(std::move(bytes));
  return true;
}

std::string_view Leg::pending() const {
  if (outq_.empty()) return {};
  return std::string_view(outq_.front()).substr(out_off_);
}

void Leg::Sent(size_t n) {
  bytes_out += n;
  out_off_ += n;
  out_bytes_ -= n;
  if (out_off_ == outq_.front().size()) {  // else: short send, continue from out_off_
    outq_.pop_front();
    out_off_ = 0;
  }
}

void Leg::Fail() {
  set(kFailed);
  outq_.clear();
  out_off_ = 0;
  out_bytes_ = 0;
}

}  // namespace xr::engine
