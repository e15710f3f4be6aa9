#include "engine/transports.h"

namespace xr::engine {

Expected<std::string_view> TlsTransport::Decode(std::string_view wire, std::string* scratch) {
  scratch->clear();
  if (Status st = session_.Receive(wire, scratch); !st.ok()) return st.error();
  return std::string_view(*scratch);
}

Status TlsTransport::Encode(std::string* bytes) {
  if (Status st = session_.Send(*bytes); !st.ok()) return st;
  bytes->clear();
  session_.TakeCiphertext(bytes);
  return Status::Ok();
}

Status TlsTransport::EncodeFrom(std::string_view app, std::string* out) {
  if (Status st = session_.Send(app); !st.ok()) return st;
  session_.TakeCiphertext(out);
  return Status::Ok();
}

std::string TlsTransport::TakeOwnOutput() {
  std::string out;
  session_.TakeCiphertext(&out);
  return out;
}

Expected<std::string_view> WebSocketTransport::Decode(std::string_view wire, std::string* scratch) {
  scratch->clear();
  if (Status st = stream_.Decode(wire, scratch); !st.ok()) return st.error();
  return std::string_view(*scratch);
}

Status WebSocketTransport::Encode(std::string* bytes) {
  std::string framed;
  framed.reserve(bytes->size() + 10);
  stream_.Encode(*bytes, &framed);
  bytes->swap(framed);
  return Status::Ok();
}

Status WebSocketTransport::EncodeFrom(std::string_view app, std::string* out) {
  out->reserve(app.size() + 10);
  stream_.Encode(app, out);
  return Status::Ok();
}

Expected<std::string_view> StackedTransport::Decode(std::string_view wire, std::string* scratch) {
  auto mid = outer_->Decode(wire, &middle_);
  if (!mid.ok()) return mid.error();
  return inner_->Decode(*mid, scratch);
}

Status StackedTransport::Encode(std::string* bytes) {
  if (Status st = inner_->Encode(bytes); !st.ok()) return st;
  return outer_->Encode(bytes);
}

Status StackedTransport::EncodeFrom(std::string_view app, std::string* out) {
  if (Status st = inner_->EncodeFrom(app, out); !st.ok()) return st;
  return outer_->Encode(out);
}

std::string StackedTransport::TakeOwnOutput() {
  std::string out = outer_->TakeOwnOutput();
  std::string inner = inner_->TakeOwnOutput();
  if (!inner.empty()) {
    if (Status st = outer_->Encode(&inner); st.ok()) out += inner;
  }
  return out;
}

}  // namespace xr::engine
