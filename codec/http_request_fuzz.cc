// Fuzzes RequestParser with split points from the input: the outcome (status, request, error
// status, bytes consumed) must not depend on how the stream is cut, and limits must hold.
//
// Input: codec/fuzz_split.h.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "codec/fuzz_split.h"
#include "codec/http_request.h"

namespace {

struct Outcome {
  xr::http::ParseStatus status = xr::http::ParseStatus::kNeedMore;
  size_t consumed = 0;
  int error_status = 0;
  xr::http::Request request;
};

Outcome Run(std::string_view stream, const std::vector<size_t>& sizes, const xr::http::RequestLimits& limits) {
  xr::http::RequestParser parser(limits);
  Outcome out;
  size_t pos = 0, turn = 0;
  while (true) {
    size_t n = xr::fuzz::NextPiece(sizes, &turn, stream.size() - pos);
    size_t used = 0;
    out.status = parser.Feed(stream.substr(pos, n), &used);
    if (used > n) std::abort();
    if (out.status == xr::http::ParseStatus::kNeedMore && used != n) std::abort();
    out.consumed += used;
    pos += n;
    if (out.status != xr::http::ParseStatus::kNeedMore || pos >= stream.size()) break;
  }
  if (out.status == xr::http::ParseStatus::kError) {
    out.error_status = parser.error_status();
    if (parser.error_reason().empty()) std::abort();
    out.consumed = 0;  // unspecified on error
  }
  if (out.status == xr::http::ParseStatus::kDone) {
    out.request = parser.request();
    if (out.request.headers.size() > limits.max_header_count) std::abort();
    if (parser.head_bytes() != out.consumed) std::abort();
    if (out.consumed < 2 || stream[out.consumed - 1] != '\n') std::abort();
  }
  return out;
}

bool Same(const xr::http::Request& a, const xr::http::Request& b) {
  if (a.method != b.method || a.target != b.target || a.version_minor != b.version_minor) return false;
  if (a.content_length != b.content_length || a.headers.size() != b.headers.size()) return false;
  for (size_t i = 0; i < a.headers.size(); ++i) {
    if (a.headers[i].name != b.headers[i].name || a.headers[i].value != b.headers[i].value) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto input = xr::fuzz::ParseSplitInput(data, size);
  if (!input) return 0;
  const std::vector<size_t>& sizes = input->sizes;
  std::string_view stream = input->stream;
  xr::http::RequestLimits limits;
  limits.max_request_line = 200;
  limits.max_header_count = 8;
  limits.max_header_bytes = 400;

  Outcome whole = Run(stream, {}, limits);
  for (const std::vector<size_t>& cut : {sizes, std::vector<size_t>{1}}) {
    Outcome o = Run(stream, cut, limits);
    if (o.status != whole.status || o.error_status != whole.error_status || o.consumed != whole.consumed) std::abort();
    if (o.status == xr::http::ParseStatus::kDone && !Same(o.request, whole.request)) std::abort();
  }
  return 0;
}
