#include "tests/testing/fake_http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

#define ZLIB_CONST
#include "zlib.h"

namespace qfp::testing {
namespace {

constexpr size_t kMaxConnections = 64;
constexpr size_t kMaxRequestBytes = 16 << 20;
constexpr size_t kMaxInflatedBytes = 256 << 20;

std::string ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 409:
      return "Conflict";
    case 413:
      return "Request Entity Too Large";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

bool SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out.push_back(' ');
    } else if (text[i] == '%' && i + 2 < text.size() &&
               HexDigit(text[i + 1]) >= 0 && HexDigit(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexDigit(text[i + 1]) * 16 +
                                      HexDigit(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// The body of a chunked message starting at `data`; nullopt while it is
// incomplete, an error for a malformed one. `consumed` is set to the bytes
// the body took, trailer included.
enum class Parse { kIncomplete, kDone, kBad };

Parse DecodeChunked(absl::string_view data, std::string* body,
                    size_t* consumed) {
  size_t pos = 0;
  body->clear();
  while (true) {
    const size_t eol = data.find("\r\n", pos);
    if (eol == absl::string_view::npos) return Parse::kIncomplete;
    absl::string_view size_text = data.substr(pos, eol - pos);
    size_text = size_text.substr(0, size_text.find(';'));  // extensions
    size_t size = 0;
    if (size_text.empty()) return Parse::kBad;
    for (char c : size_text) {
      const int digit = HexDigit(c);
      if (digit < 0 || size > kMaxRequestBytes) return Parse::kBad;
      size = size * 16 + static_cast<size_t>(digit);
    }
    pos = eol + 2;
    if (size == 0) {
      // Trailer fields up to an empty line.
      while (true) {
        const size_t end = data.find("\r\n", pos);
        if (end == absl::string_view::npos) return Parse::kIncomplete;
        const bool empty = end == pos;
        pos = end + 2;
        if (empty) {
          *consumed = pos;
          return Parse::kDone;
        }
      }
    }
    if (data.size() < pos + size + 2) return Parse::kIncomplete;
    const absl::string_view chunk = data.substr(pos, size);
    body->append(chunk.data(), chunk.size());
    if (data.substr(pos + size, 2) != "\r\n") return Parse::kBad;
    pos += size + 2;
  }
}

}  // namespace

std::string RecordedRequest::path() const {
  return target.substr(0, target.find('?'));
}

std::string RecordedRequest::query() const {
  const size_t mark = target.find('?');
  return mark == std::string::npos ? "" : target.substr(mark + 1);
}

std::vector<std::pair<std::string, std::string>> RecordedRequest::QueryParams()
    const {
  std::vector<std::pair<std::string, std::string>> params;
  const std::string text = query();
  if (text.empty()) return params;
  for (absl::string_view param : absl::StrSplit(text, '&')) {
    const size_t eq = param.find('=');
    if (eq == absl::string_view::npos) {
      params.emplace_back(PercentDecode(param), "");
    } else {
      params.emplace_back(PercentDecode(param.substr(0, eq)),
                          PercentDecode(param.substr(eq + 1)));
    }
  }
  return params;
}

std::optional<std::string> RecordedRequest::Header(
    absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return std::nullopt;
}

int RecordedRequest::HeaderCount(absl::string_view name) const {
  int count = 0;
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) ++count;
  }
  return count;
}

ScriptedResponse ScriptedResponse::Bare(int status) {
  ScriptedResponse response;
  response.status = status;
  return response;
}

ScriptedResponse ScriptedResponse::Json(int status, std::string json) {
  ScriptedResponse response;
  response.status = status;
  response.headers.emplace_back("Content-Type", "application/json");
  response.body = std::move(json);
  return response;
}

struct FakeHttpServer::Connection {
  int fd = -1;
  std::string buffer;
  bool continue_sent = false;  // 100 Continue already sent for this request
};

FakeHttpServer::FakeHttpServer(Handler handler) {
  absl::MutexLock lock(&mu_);
  handler_ = std::move(handler);
}

FakeHttpServer::~FakeHttpServer() { Stop(); }

std::string FakeHttpServer::url() const {
  return absl::StrCat("http://127.0.0.1:", port_);
}

void FakeHttpServer::set_handler(Handler handler) {
  absl::MutexLock lock(&mu_);
  handler_ = std::move(handler);
}

std::vector<RecordedRequest> FakeHttpServer::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

int FakeHttpServer::CountRequests(absl::string_view method,
                                  absl::string_view path) const {
  absl::MutexLock lock(&mu_);
  int count = 0;
  for (const RecordedRequest& r : requests_) {
    if (r.method == method && r.path() == path) ++count;
  }
  return count;
}

size_t FakeHttpServer::request_count() const {
  absl::MutexLock lock(&mu_);
  return requests_.size();
}

void FakeHttpServer::ClearRequests() {
  absl::MutexLock lock(&mu_);
  requests_.clear();
}

absl::Status FakeHttpServer::Start() {
  if (thread_.joinable()) return absl::FailedPreconditionError("started");
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) {
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      listen(listen_fd_, 64) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) !=
          0) {
    const std::string error = strerror(errno);
    close(listen_fd_);
    listen_fd_ = -1;
    return absl::InternalError(absl::StrCat("listen on 127.0.0.1: ", error));
  }
  if (pipe2(wake_pipe_, O_CLOEXEC) != 0) {
    close(listen_fd_);
    listen_fd_ = -1;
    return absl::InternalError(absl::StrCat("pipe2: ", strerror(errno)));
  }
  port_ = ntohs(address.sin_port);
  stopping_ = false;
  thread_ = std::thread([this] { Serve(); });
  return absl::OkStatus();
}

void FakeHttpServer::Stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  const char byte = 'x';
  // A full pipe already wakes poll(); nothing to do when write fails.
  [[maybe_unused]] ssize_t ignored = write(wake_pipe_[1], &byte, 1);
  thread_.join();
  close(listen_fd_);
  close(wake_pipe_[0]);
  close(wake_pipe_[1]);
  listen_fd_ = wake_pipe_[0] = wake_pipe_[1] = -1;
}

void FakeHttpServer::Serve() {
  std::list<Connection> connections;
  while (!stopping_) {
    std::vector<pollfd> fds;
    fds.push_back({wake_pipe_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const Connection& c : connections) fds.push_back({c.fd, POLLIN, 0});
    const int ready = poll(fds.data(), fds.size(), 1000);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0 || stopping_) continue;

    if (fds[1].revents & POLLIN) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        if (connections.size() >= kMaxConnections) {
          close(fd);
        } else {
          const int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          connections.push_back(Connection{fd, "", false});
        }
      }
    }
    size_t index = 2;
    for (auto it = connections.begin(); it != connections.end();) {
      // Connections accepted in this round have no pollfd yet.
      if (index >= fds.size() || fds[index].fd != it->fd) {
        ++it;
        continue;
      }
      const short events = fds[index++].revents;
      bool keep = true;
      if (events & (POLLIN | POLLHUP | POLLERR)) {
        char chunk[64 * 1024];
        const ssize_t n = recv(it->fd, chunk, sizeof(chunk), 0);
        if (n <= 0) {
          keep = n < 0 && (errno == EINTR || errno == EAGAIN);
        } else {
          it->buffer.append(chunk, static_cast<size_t>(n));
          keep = it->buffer.size() <= kMaxRequestBytes && Process(*it);
        }
      }
      if (keep) {
        ++it;
      } else {
        close(it->fd);
        it = connections.erase(it);
      }
    }
  }
  for (Connection& c : connections) close(c.fd);
}

bool FakeHttpServer::Process(Connection& connection) {
  while (true) {
    std::string& buffer = connection.buffer;
    const size_t header_end = buffer.find("\r\n\r\n");
    if (header_end == std::string::npos) return true;  // wait for more

    RecordedRequest request;
    std::vector<absl::string_view> lines =
        absl::StrSplit(absl::string_view(buffer).substr(0, header_end), "\r\n");
    std::vector<absl::string_view> request_line = absl::StrSplit(lines[0], ' ');
    if (request_line.size() != 3) return false;
    request.method = std::string(request_line[0]);
    request.target = std::string(request_line[1]);
    request.version = std::string(request_line[2]);
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == absl::string_view::npos) return false;
      request.headers.emplace_back(
          std::string(lines[i].substr(0, colon)),
          std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
    }

    const size_t body_start = header_end + 4;
    const absl::string_view rest = absl::string_view(buffer).substr(body_start);
    size_t consumed = 0;
    bool complete = false;
    const std::optional<std::string> encoding =
        request.Header("Transfer-Encoding");
    if (encoding.has_value() && absl::EqualsIgnoreCase(*encoding, "chunked")) {
      const Parse parse = DecodeChunked(rest, &request.body, &consumed);
      if (parse == Parse::kBad) return false;
      complete = parse == Parse::kDone;
    } else if (std::optional<std::string> length =
                   request.Header("Content-Length")) {
      size_t size = 0;
      if (!absl::SimpleAtoi(*length, &size) || size > kMaxRequestBytes) {
        return false;
      }
      complete = rest.size() >= size;
      if (complete) {
        request.body = std::string(rest.substr(0, size));
        consumed = size;
      }
    } else {
      complete = true;  // no body
    }
    if (!complete) {
      const std::optional<std::string> expect = request.Header("Expect");
      if (expect.has_value() &&
          absl::EqualsIgnoreCase(*expect, "100-continue") &&
          !connection.continue_sent) {
        connection.continue_sent = true;
        if (!SendAll(connection.fd, "HTTP/1.1 100 Continue\r\n\r\n")) {
          return false;
        }
      }
      return true;  // wait for the rest of the body
    }
    connection.continue_sent = false;
    buffer.erase(0, body_start + consumed);

    const std::optional<std::string> content_encoding =
        request.Header("Content-Encoding");
    if (content_encoding.has_value() &&
        absl::EqualsIgnoreCase(*content_encoding, "gzip")) {
      absl::StatusOr<std::string> inflated = Gunzip(request.body);
      if (inflated.ok()) {
        request.decoded_body = *std::move(inflated);
      } else {
        request.decode_error = std::string(inflated.status().message());
      }
    } else {
      request.decoded_body = request.body;
    }

    Handler handler;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      handler = handler_;
    }
    ScriptedResponse response;
    if (handler) {
      response = handler(request);
    } else {
      response = ScriptedResponse::Json(404, R"({"error":"no handler"})");
    }
    if (response.hang_up) return false;

    std::string head = absl::StrCat("HTTP/1.1 ", response.status, " ",
                                    ReasonPhrase(response.status), "\r\n");
    for (const auto& [name, value] : response.headers) {
      absl::StrAppend(&head, name, ": ", value, "\r\n");
    }
    const bool bodiless = response.status < 200 || response.status == 204 ||
                          response.status == 304;
    if (!bodiless) {
      absl::StrAppend(&head, "Content-Length: ", response.body.size(), "\r\n");
    }
    absl::StrAppend(&head, "\r\n");
    // One send: a second small one would wait for the client's delayed ACK
    // (Nagle), adding 40 ms to every answer.
    if (!bodiless) head.append(response.body);
    if (!SendAll(connection.fd, head)) return false;

    const std::optional<std::string> connection_header =
        request.Header("Connection");
    if (connection_header.has_value() &&
        absl::EqualsIgnoreCase(*connection_header, "close")) {
      return false;
    }
  }
}

absl::StatusOr<std::string> Gunzip(absl::string_view data) {
  z_stream stream{};
  // 15 window bits + 32: accept a gzip or zlib header.
  if (inflateInit2(&stream, 15 + 32) != Z_OK) {
    return absl::InternalError("inflateInit2 failed");
  }
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&stream, inflateEnd);
  stream.next_in = reinterpret_cast<const Bytef*>(data.data());
  stream.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char chunk[64 * 1024];
  while (true) {
    stream.next_out = reinterpret_cast<Bytef*>(chunk);
    stream.avail_out = sizeof(chunk);
    const int rc = inflate(&stream, Z_NO_FLUSH);
    out.append(chunk, sizeof(chunk) - stream.avail_out);
    if (out.size() > kMaxInflatedBytes) {
      return absl::ResourceExhaustedError("inflated body too large");
    }
    if (rc == Z_STREAM_END) {
      if (stream.avail_in == 0) return out;
      // Another gzip member follows.
      if (inflateReset(&stream) != Z_OK) {
        return absl::InternalError("inflateReset failed");
      }
      continue;
    }
    if (rc != Z_OK) {
      return absl::InvalidArgumentError(absl::StrCat(
          "inflate failed: ", rc, stream.msg != nullptr ? stream.msg : ""));
    }
    if (stream.avail_in == 0 && stream.avail_out != 0) {
      return absl::InvalidArgumentError("gzip data truncated");
    }
  }
}

}  // namespace qfp::testing
