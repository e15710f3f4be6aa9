#pragma once
// Small HTTP/1.1 response-head helpers shared by the WebSocket handshake and the static file
// server: status texts and a bodyless error/redirect head that leaks no detail.

#include <string>
#include <string_view>

namespace xr::http {

// Reason phrase for the statuses the relay sends ("Not Found"); "Error" for others.
const char* StatusText(int status);

// "HTTP/1.1 <status> <text>\r\n" + extra_headers (each line already ending in CRLF) +
// "Content-Length: 0\r\nConnection: close\r\n\r\n" (keep_alive: no Connection header).
std::string SimpleResponse(int status, std::string_view extra_headers = {}, bool keep_alive = false);

}  // namespace xr::http
