#include "codec/http_request.h"

#include <algorithm>

namespace xr::http {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// tchar (RFC 9110 5.6.2).
bool IsTchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), IsTchar); }

// field-value characters: VCHAR, obs-text, SP, HTAB (RFC 9110 5.5).
bool IsFieldValueChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == ' ' || u == '\t' || (u >= 0x21 && u != 0x7f);
}

// request-target characters: visible ASCII (no space, no control, no obs-text).
bool IsTargetChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x21 && u <= 0x7e;
}

}  // namespace

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool AnyListItem(std::string_view value, const std::function<bool(std::string_view)>& f) {
  while (true) {
    const size_t comma = value.find(',');
    std::string_view item = TrimOws(value.substr(0, comma));
    if (!item.empty() && f(item)) return true;
    if (comma == std::string_view::npos) return false;
    value.remove_prefix(comma + 1);
  }
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

const std::string* Request::Find(std::string_view name) const {
  for (const Header& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return &h.value;
  }
  return nullptr;
}

size_t Request::Count(std::string_view name) const {
  return static_cast<size_t>(
      std::count_if(headers.begin(), headers.end(), [&](const Header& h) { return EqualsIgnoreCase(h.name, name); }));
}

bool Request::HasToken(std::string_view name, std::string_view token) const {
  for (const Header& h : headers) {
    if (!EqualsIgnoreCase(h.name, name)) continue;
    if (AnyListItem(h.value, [&](std::string_view item) { return EqualsIgnoreCase(item, token); })) return true;
  }
  return false;
}

bool Request::KeepAlive() const {
  if (HasToken("connection", "close")) return false;
  return version_minor >= 1 || HasToken("connection", "keep-alive");
}

bool Request::WantsWebSocket() const { return HasToken("upgrade", "websocket") && HasToken("connection", "upgrade"); }

RequestParser::RequestParser(RequestLimits limits) : limits_(limits) {}

void RequestParser::Reset() {
  stage_ = Stage::kRequestLine;
  line_.clear();
  request_line_bytes_ = header_bytes_ = head_bytes_ = 0;
  request_ = Request{};
  error_status_ = 0;
  error_reason_.clear();
}

ParseStatus RequestParser::Fail(int status, const char* reason) {
  stage_ = Stage::kError;
  error_status_ = status;
  error_reason_ = reason;
  line_.clear();
  return ParseStatus::kError;
}

ParseStatus RequestParser::Feed(std::string_view bytes, size_t* consumed) {
  *consumed = 0;
  if (stage_ == Stage::kDone) return ParseStatus::kDone;
  if (stage_ == Stage::kError) return ParseStatus::kError;
  while (*consumed < bytes.size()) {
    std::string_view rest = bytes.substr(*consumed);
    const size_t nl = rest.find('\n');
    const size_t take = nl == std::string_view::npos ? rest.size() : nl + 1;
    // Bound the line before buffering it.
    if (stage_ == Stage::kRequestLine) {
      request_line_bytes_ += take;
      if (request_line_bytes_ > limits_.max_request_line) return Fail(414, "request line too long");
    } else {
      header_bytes_ += take;
      if (header_bytes_ > limits_.max_header_bytes) return Fail(431, "request header fields too large");
    }
    *consumed += take;
    head_bytes_ += take;
    if (nl == std::string_view::npos) {
      line_.append(rest);
      break;
    }
    line_.append(rest.substr(0, nl));
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    const std::string line = std::move(line_);
    line_.clear();
    ParseStatus s = OnLine(line);
    if (s != ParseStatus::kNeedMore) return s;
  }
  return ParseStatus::kNeedMore;
}

ParseStatus RequestParser::OnLine(std::string_view line) {
  if (line.find('\r') != std::string_view::npos) return Fail(400, "bare CR in request head");
  if (line.find('\0') != std::string_view::npos) return Fail(400, "NUL in request head");
  if (stage_ == Stage::kRequestLine) {
    if (line.empty()) return ParseStatus::kNeedMore;  // blank lines before a request (RFC 9112 2.2)
    return OnRequestLine(line);
  }
  if (line.empty()) return Finish();
  return OnHeaderLine(line);
}

ParseStatus RequestParser::OnRequestLine(std::string_view line) {
  // method SP request-target SP HTTP-version, single spaces only.
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return Fail(400, "malformed request line");
  const size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Fail(400, "malformed request line");
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method)) return Fail(400, "malformed method");
  if (target.empty() || !std::all_of(target.begin(), target.end(), IsTargetChar)) {
    return Fail(400, "malformed request target");
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || version[5] < '0' ||
      version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return Fail(400, "malformed HTTP version");
  }
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) return Fail(505, "HTTP version not supported");
  request_.method.assign(method);
  request_.target.assign(target);
  request_.version_minor = version[7] - '0';
  stage_ = Stage::kHeaders;
  return ParseStatus::kNeedMore;
}

ParseStatus RequestParser::OnHeaderLine(std::string_view line) {
  if (line.front() == ' ' || line.front() == '\t') return Fail(400, "obsolete line folding");
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return Fail(400, "malformed header field");
  std::string_view name = line.substr(0, colon);
  if (!IsToken(name)) return Fail(400, "malformed header field name");  // also: space before ':'
  std::string_view value = TrimOws(line.substr(colon + 1));
  if (!std::all_of(value.begin(), value.end(), IsFieldValueChar)) return Fail(400, "malformed header field value");
  if (request_.headers.size() >= limits_.max_header_count) return Fail(431, "too many header fields");
  Header h;
  h.name.resize(name.size());
  std::transform(name.begin(), name.end(), h.name.begin(), Lower);
  h.value.assign(value);
  request_.headers.push_back(std::move(h));
  return ParseStatus::kNeedMore;
}

ParseStatus RequestParser::Finish() {
  // RFC 9112 3.2: a 1.1 request carries exactly one Host.
  const size_t hosts = request_.Count("host");
  if (hosts > 1 || (request_.version_minor == 1 && hosts == 0)) return Fail(400, "missing or repeated Host");
  // No bodies in chunked coding here; refusing Transfer-Encoding also closes request smuggling.
  if (request_.Count("transfer-encoding") > 0) return Fail(501, "transfer coding not implemented");
  for (const Header& h : request_.headers) {
    if (h.name != "content-length") continue;
    if (h.value.empty() || h.value.size() > 15 ||
        !std::all_of(h.value.begin(), h.value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Fail(400, "malformed Content-Length");
    }
    uint64_t n = 0;
    for (char c : h.value) n = n * 10 + static_cast<uint64_t>(c - '0');
    if (request_.content_length && *request_.content_length != n) return Fail(400, "conflicting Content-Length");
    request_.content_length = n;
  }
  stage_ = Stage::kDone;
  return ParseStatus::kDone;
}

}  // namespace xr::http
