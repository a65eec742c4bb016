#include "tests/testing/influxd_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "curl/curl.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace qfp::testing {
namespace {

constexpr int kStartAttempts = 3;
constexpr absl::Duration kStopGrace = absl::Seconds(10);
constexpr absl::Duration kHttpTimeout = absl::Seconds(10);

// A port nobody listens on right now (the kernel's pick, released again).
absl::StatusOr<int> FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  const bool ok =
      bind(fd, reinterpret_cast<sockaddr*>(&address), length) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  const std::string error = strerror(errno);
  close(fd);
  if (!ok) return absl::InternalError(absl::StrCat("free port: ", error));
  return static_cast<int>(ntohs(address.sin_port));
}

size_t AppendBody(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

struct CurlAnswer {
  long status = 0;  // NOLINT(runtime/int): curl's type
  std::string body;
};

// A plain blocking request, independent of the code under test.
absl::StatusOr<CurlAnswer> Fetch(const std::string& url,
                                 const std::string* post_form,
                                 absl::Duration timeout) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(),
                                              curl_easy_cleanup);
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  CurlAnswer answer;
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(
                       timeout)));  // NOLINT(runtime/int)
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &answer.body);
  if (post_form != nullptr) {
    curl_easy_setopt(
        curl.get(), CURLOPT_POSTFIELDSIZE,
        static_cast<long>(post_form->size()));  // NOLINT(runtime/int)
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, post_form->c_str());
  }
  const CURLcode code = curl_easy_perform(curl.get());
  if (code != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat(url, ": ", curl_easy_strerror(code)));
  }
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &answer.status);
  return answer;
}

std::string FormEncode(const std::string& value) {
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(),
                                              curl_easy_cleanup);
  char* escaped = curl_easy_escape(curl.get(), value.c_str(),
                                   static_cast<int>(value.size()));
  std::string out = escaped != nullptr ? escaped : "";
  curl_free(escaped);
  return out;
}

std::string Config(const std::string& root, int rpc_port, int http_port,
                   int spare_port) {
  // The keys of tests/support/influxd.py, which are known to work with
  // 1.6.7: loopback only, nothing shared with the package's instance.
  const std::string loopback = "127.0.0.1";
  return absl::StrCat(
      "# Written by tests/testing/influxd_process.cc: loopback only.\n"
      "reporting-disabled = true\n"
      "reporting-enabled = false\n"
      "bind-address = \"",
      loopback, ":", rpc_port,
      "\"\n\n"
      "[meta]\n"
      "  dir = \"",
      root,
      "/meta\"\n"
      "  retention-autocreate = true\n"
      "  logging-enabled = false\n\n"
      "[data]\n"
      "  dir = \"",
      root,
      "/data\"\n"
      "  wal-dir = \"",
      root,
      "/wal\"\n"
      "  wal-fsync-delay = \"0s\"\n"
      "  query-log-enabled = false\n\n"
      "[monitor]\n"
      "  store-enabled = false\n\n"
      "[subscriber]\n"
      "  enabled = false\n\n"
      "[http]\n"
      "  enabled = true\n"
      "  bind-address = \"",
      loopback, ":", http_port,
      "\"\n"
      "  auth-enabled = false\n"
      "  log-enabled = false\n"
      "  pprof-enabled = false\n"
      "  https-enabled = false\n"
      "  unix-socket-enabled = false\n"
      "  bind-socket = \"",
      root,
      "/influxd.sock\"\n\n"
      "[ifql]\n"
      "  enabled = false\n"
      "  bind-address = \"",
      loopback, ":", spare_port,
      "\"\n\n"
      "[admin]\n"
      "  enabled = false\n\n"
      "[[graphite]]\n"
      "  enabled = false\n"
      "  bind-address = \"",
      loopback, ":", spare_port,
      "\"\n\n"
      "[[collectd]]\n"
      "  enabled = false\n"
      "  bind-address = \"",
      loopback, ":", spare_port,
      "\"\n\n"
      "[[opentsdb]]\n"
      "  enabled = false\n"
      "  bind-address = \"",
      loopback, ":", spare_port,
      "\"\n\n"
      "[[udp]]\n"
      "  enabled = false\n"
      "  bind-address = \"",
      loopback, ":", spare_port,
      "\"\n\n"
      "[continuous_queries]\n"
      "  enabled = true\n"
      "  log-enabled = false\n\n"
      "[logging]\n"
      "  level = \"warn\"\n"
      "  suppress-logo = true\n");
}

}  // namespace

InfluxdProcess::InfluxdProcess(std::string binary)
    : binary_(std::move(binary)) {}

InfluxdProcess::~InfluxdProcess() { Stop(); }

std::string InfluxdProcess::url() const {
  return absl::StrCat("http://", host(), ":", http_port_);
}

absl::StatusOr<std::unique_ptr<InfluxdProcess>> InfluxdProcess::Start(
    absl::Duration timeout, const std::string& binary) {
  std::unique_ptr<InfluxdProcess> process(new InfluxdProcess(binary));
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status status;
  for (int attempt = 1; attempt <= kStartAttempts; ++attempt) {
    status = process->Launch(deadline);
    if (status.ok()) return process;
    const bool port_clash =
        absl::StrContains(process->LogText(), "address already in use");
    process->Stop();
    if (!port_clash || absl::Now() >= deadline) break;
  }
  std::string log = process->LogText();
  if (log.size() > 4000) log = log.substr(log.size() - 4000);
  return absl::Status(status.code(),
                      absl::StrCat(status.message(), "; influxd log:\n", log));
}

absl::Status InfluxdProcess::Launch(absl::Time deadline) {
  for (const char* sub : {"meta", "data", "wal"}) {
    const std::string path = dir_.File(sub);
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::InternalError(
          absl::StrCat("mkdir ", path, ": ", strerror(errno)));
    }
  }
  absl::StatusOr<int> rpc = FreePort();
  absl::StatusOr<int> http = FreePort();
  absl::StatusOr<int> spare = FreePort();
  if (!rpc.ok()) return rpc.status();
  if (!http.ok()) return http.status();
  if (!spare.ok()) return spare.status();
  http_port_ = *http;
  const std::string config_path =
      dir_.Write("influxd.conf", Config(dir_.path(), *rpc, *http, *spare));
  const std::string log_path = dir_.File("influxd.log");

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  // Its own session (a terminal's Ctrl-C is not for it), no signal blocked
  // (a test binary may block SIGTERM for its own reasons) and default
  // dispositions, so SIGTERM stops it.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int signal_number : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) {
    sigaddset(&defaults, signal_number);
  }
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID |
                                            POSIX_SPAWN_SETSIGMASK |
                                            POSIX_SPAWN_SETSIGDEF);
  std::string arg0 = binary_, arg1 = "-config", arg2 = config_path;
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
  const int rc =
      posix_spawn(&pid_, binary_.c_str(), &actions, &attributes, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (rc != 0) {
    pid_ = -1;
    return absl::InternalError(
        absl::StrCat("posix_spawn ", binary_, ": ", strerror(rc)));
  }

  const std::string ping = absl::StrCat(url(), "/ping");
  while (absl::Now() < deadline) {
    if (!running()) {
      return absl::UnavailableError(
          absl::StrCat("influxd exited before answering ", ping));
    }
    absl::StatusOr<CurlAnswer> answer = Fetch(ping, nullptr, absl::Seconds(1));
    if (answer.ok() && answer->status == 204) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("influxd did not answer ", ping, " with 204 in time"));
}

bool InfluxdProcess::running() const {
  if (pid_ <= 0) return false;
  // kill(pid, 0) would count an exited, unreaped influxd as running; waitid
  // with WNOWAIT tells without reaping it (Stop() still collects it).
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(pid_), &info,
             WEXITED | WNOHANG | WNOWAIT) != 0) {
    return false;
  }
  return info.si_pid == 0;
}

std::optional<int> InfluxdProcess::Stop() {
  if (pid_ <= 0) return std::nullopt;
  const pid_t pid = pid_;
  pid_ = -1;
  kill(pid, SIGTERM);
  int status = 0;
  const absl::Time give_up = absl::Now() + kStopGrace;
  pid_t done = 0;
  while ((done = waitpid(pid, &status, WNOHANG)) == 0 &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (done == 0) {
    kill(pid, SIGKILL);
    done = waitpid(pid, &status, 0);
  }
  if (done != pid) return std::nullopt;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return std::nullopt;
}

absl::StatusOr<std::string> InfluxdProcess::Query(const std::string& q,
                                                  const std::string& db) const {
  std::string form = absl::StrCat("q=", FormEncode(q), "&epoch=ns");
  if (!db.empty()) absl::StrAppend(&form, "&db=", FormEncode(db));
  absl::StatusOr<CurlAnswer> answer =
      Fetch(absl::StrCat(url(), "/query"), &form, kHttpTimeout);
  if (!answer.ok()) return answer.status();
  if (answer->status != 200) {
    return absl::FailedPreconditionError(absl::StrCat(
        "query `", q, "`: HTTP ", answer->status, ": ", answer->body));
  }
  const nlohmann::json json =
      nlohmann::json::parse(answer->body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    return absl::UnknownError(
        absl::StrCat("query `", q, "`: not JSON: ", answer->body));
  }
  std::string errors;
  if (auto error = json.find("error"); error != json.end()) {
    absl::StrAppend(&errors, error->dump());
  }
  if (auto results = json.find("results");
      results != json.end() && results->is_array()) {
    for (const nlohmann::json& result : *results) {
      if (!result.is_object()) continue;
      if (auto error = result.find("error"); error != result.end()) {
        absl::StrAppend(&errors, errors.empty() ? "" : "; ", error->dump());
      }
    }
  }
  if (!errors.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("query `", q, "`: ", errors));
  }
  return answer->body;
}

std::string InfluxdProcess::LogText() const {
  std::ifstream in(dir_.File("influxd.log"), std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace qfp::testing
