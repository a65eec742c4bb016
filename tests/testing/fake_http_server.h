// A small real HTTP/1.1 server on 127.0.0.1 for tests of HTTP clients: it
// records every request exactly as it arrived and answers from a script.
//
//   FakeHttpServer server([](const RecordedRequest& r) {
//     return ScriptedResponse{204};
//   });
//   ASSERT_TRUE(server.Start().ok());
//   ... point the client at server.url() ...
//   EXPECT_EQ(server.requests()[0].decoded_body, "m v=1");
//
// One thread serves every connection (keep-alive included) with poll(), so a
// client that keeps an idle connection open never blocks another one. Bounds:
// 64 connections, 16 MiB of headers plus body per request, 256 MiB once
// gunzipped; beyond them the connection is closed.
#ifndef QFP_TESTS_TESTING_FAKE_HTTP_SERVER_H_
#define QFP_TESTS_TESTING_FAKE_HTTP_SERVER_H_

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace qfp::testing {

struct RecordedRequest {
  std::string method;   // "POST"
  std::string target;   // request-target as sent: "/api/v2/write?org=o&..."
  std::string version;  // "HTTP/1.1"
  // In arrival order, names and values as sent (values without the
  // surrounding whitespace).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // the bytes of the body (de-chunked, still compressed)
  // `body` gunzipped when Content-Encoding is gzip, else `body`.
  std::string decoded_body;
  // Why a gzip body did not inflate; empty when it did (or was not gzip).
  std::string decode_error;

  std::string path() const;   // target up to '?'
  std::string query() const;  // target after '?', as sent; "" when none
  // Query parameters in order, percent-decoded ('+' is a space).
  std::vector<std::pair<std::string, std::string>> QueryParams() const;
  // The value of the first header called `name` (case-insensitive).
  std::optional<std::string> Header(absl::string_view name) const;
  // How many headers are called `name` (case-insensitive).
  int HeaderCount(absl::string_view name) const;
};

struct ScriptedResponse {
  int status = 204;
  // Sent in order. Content-Length is added (except for 1xx, 204 and 304).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Close the connection instead of answering: a server that died mid-call.
  bool hang_up = false;

  // `status` alone: no headers, no body.
  static ScriptedResponse Bare(int status);
  // `status` with `Content-Type: application/json` and `json` as body.
  static ScriptedResponse Json(int status, std::string json);
};

class FakeHttpServer {
 public:
  using Handler = std::function<ScriptedResponse(const RecordedRequest&)>;

  // Without a handler every request is answered 404.
  explicit FakeHttpServer(Handler handler = nullptr);
  ~FakeHttpServer();  // Stop()
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  // Listens on 127.0.0.1 on a port the kernel picks and starts serving.
  absl::Status Start();
  // Closes every connection and joins the thread. Idempotent.
  void Stop();

  int port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:PORT"

  // Called on the server thread, one request at a time.
  void set_handler(Handler handler);

  std::vector<RecordedRequest> requests() const;
  size_t request_count() const;
  // Recorded requests with this method and path (query ignored).
  int CountRequests(absl::string_view method, absl::string_view path) const;
  void ClearRequests();

 private:
  struct Connection;

  void Serve();
  // Handles every complete request in `connection`'s buffer; false when the
  // connection must be closed.
  bool Process(Connection& connection);

  mutable absl::Mutex mu_;
  Handler handler_ ABSL_GUARDED_BY(mu_);
  std::vector<RecordedRequest> requests_ ABSL_GUARDED_BY(mu_);

  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};  // written by Stop() to end poll() at once
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// gzip (or zlib) data inflated; concatenated gzip members are joined.
absl::StatusOr<std::string> Gunzip(absl::string_view data);

}  // namespace qfp::testing

#endif  // QFP_TESTS_TESTING_FAKE_HTTP_SERVER_H_
