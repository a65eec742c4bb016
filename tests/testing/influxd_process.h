// A private InfluxDB 1.6 server (Debian's /usr/bin/influxd) for C++ tests:
// its own temporary directory and config, every listener on 127.0.0.1 and a
// free port, usage reporting and the _internal monitor store off. The
// package's service and config are never used. The C++ twin of
// tests/support/influxd.py.
//
//   absl::StatusOr<std::unique_ptr<InfluxdProcess>> influxd =
//       InfluxdProcess::Start();
//   ASSERT_TRUE(influxd.ok()) << influxd.status();
//   (*influxd)->Query("CREATE DATABASE \"qlik\"");
//   (*influxd)->Query("SELECT * FROM m", "qlik");  // the JSON answer's text
#ifndef QFP_TESTS_TESTING_INFLUXD_PROCESS_H_
#define QFP_TESTS_TESTING_INFLUXD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/testing/temp_dir.h"

namespace qfp::testing {

class InfluxdProcess {
 public:
  // Starts influxd and waits (up to `timeout`) until /ping answers 204. A
  // free port can be taken by someone else before influxd binds it: then it
  // tries again with new ports (3 attempts). The error carries the end of
  // influxd's log.
  static absl::StatusOr<std::unique_ptr<InfluxdProcess>> Start(
      absl::Duration timeout = absl::Seconds(20),
      const std::string& binary = "/usr/bin/influxd");

  ~InfluxdProcess();  // Stop()
  InfluxdProcess(const InfluxdProcess&) = delete;
  InfluxdProcess& operator=(const InfluxdProcess&) = delete;

  // SIGTERM, SIGKILL after 10 s; returns the exit code (128 + signal when
  // a signal ended it), or nullopt when it was not running. Idempotent.
  std::optional<int> Stop();

  std::string host() const { return "127.0.0.1"; }
  int http_port() const { return http_port_; }
  std::string url() const;  // "http://127.0.0.1:PORT"
  pid_t pid() const { return pid_; }
  bool running() const;

  // Runs InfluxQL through POST /query (any statement; `db` when not empty;
  // times as ns since the epoch) and returns the text of the JSON answer.
  // An HTTP status other than 200, or an `error` in the answer or one of
  // its results, is an error.
  absl::StatusOr<std::string> Query(const std::string& q,
                                    const std::string& db = "") const;

  std::string LogText() const;

 private:
  explicit InfluxdProcess(std::string binary);
  // One start attempt with fresh ports.
  absl::Status Launch(absl::Time deadline);

  TempDir dir_;
  std::string binary_;
  pid_t pid_ = -1;
  int http_port_ = 0;
};

}  // namespace qfp::testing

#endif  // QFP_TESTS_TESTING_INFLUXD_PROCESS_H_
