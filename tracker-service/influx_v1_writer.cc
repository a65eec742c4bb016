#include "tracker-service/influx_v1_writer.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "tracker-service/http_client.h"
#include "tracker-service/influx_api.h"

namespace qfp::tracker {
namespace {

using nlohmann::json;

// 1.x answers a statement it refused for lack of privilege with 403 and
// `error authorizing query: ... requires admin privilege`.
bool IsPrivilegeError(const absl::Status& status) {
  return absl::IsPermissionDenied(status) ||
         absl::StrContains(status.message(), "requires admin privilege");
}

class InfluxV1Writer final : public InfluxWriter {
 public:
  explicit InfluxV1Writer(InfluxV1Settings settings)
      : settings_(std::move(settings)),
        base_url_(InfluxBaseUrl(settings_.host, settings_.port)) {
    write_url_ =
        absl::StrCat(base_url_, "/write?db=", UrlEncode(settings_.database));
    if (!settings_.retention_policy_name.empty()) {
      absl::StrAppend(&write_url_,
                      "&rp=", UrlEncode(settings_.retention_policy_name));
    }
    absl::StrAppend(&write_url_, "&precision=ns");
  }

  absl::Status Prepare() override {
    if (settings_.database.empty()) {
      return absl::InvalidArgumentError(
          "InfluxDB v1: v1Config.dbName is empty");
    }
    absl::StatusOr<std::string> db =
        QuoteInfluxQlIdentifier(settings_.database);
    if (!db.ok()) return db.status();

    absl::StatusOr<json> created = Query(absl::StrCat("CREATE DATABASE ", *db));
    if (!created.ok()) {
      if (!IsPrivilegeError(created.status())) return created.status();
      // A writer account without admin rights cannot create databases; that
      // is fine as long as an administrator already did.
      absl::StatusOr<bool> exists = DatabaseExists();
      if (!exists.ok() || !*exists) return created.status();
      spdlog::info(
          "InfluxDB v1: database {} exists (this user may not create it)",
          settings_.database);
    }

    if (settings_.retention_policy_name.empty()) return absl::OkStatus();
    return EnsureRetentionPolicy(*db);
  }

  WriteResult Write(absl::string_view lines) override {
    if (lines.empty()) return WriteResult{};
    HttpRequest request = NewRequest("POST", write_url_);
    request.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    request.body = std::string(lines);
    request.gzip_body = settings_.gzip;
    WriteResult result = ClassifyWriteAnswer(HttpCall(request));
    // 1.x answers a write into a missing retention policy with 500
    // `retention policy not found: NAME`; Prepare() creates it.
    if (result.kind == WriteResult::Kind::kRetryable &&
        absl::StartsWith(result.message, "retention policy not found")) {
      result.kind = WriteResult::Kind::kNotFound;
    }
    return result;
  }

  bool integer_numbers() const override { return false; }

  std::string Describe() const override {
    std::string text =
        absl::StrCat("influxdb v1 ", base_url_, " db=", settings_.database);
    if (!settings_.retention_policy_name.empty()) {
      absl::StrAppend(&text, " rp=", settings_.retention_policy_name);
    }
    return text;
  }

 private:
  HttpRequest NewRequest(std::string method, std::string url) const {
    HttpRequest request;
    request.method = std::move(method);
    request.url = std::move(url);
    request.timeout = settings_.timeout;
    if (settings_.auth_enable) {
      request.basic_auth =
          HttpBasicAuth{settings_.username, settings_.password};
    }
    return request;
  }

  // Runs one InfluxQL statement through POST /query (which any statement
  // may use) and returns its result object. A statement error comes back as
  // 200 with `results[0].error`; a refused request as 4xx with `error`.
  absl::StatusOr<json> Query(const std::string& statement) const {
    HttpRequest request = NewRequest("POST", absl::StrCat(base_url_, "/query"));
    request.headers.emplace_back("Content-Type",
                                 "application/x-www-form-urlencoded");
    request.body = absl::StrCat("q=", UrlEncode(statement));
    absl::StatusOr<HttpResponse> answer = HttpCall(request);
    if (!answer.ok()) {
      return absl::Status(answer.status().code(),
                          absl::StrCat("InfluxDB v1 query `", statement,
                                       "`: ", answer.status().message()));
    }
    if (answer->status != 200) {
      return HttpAnswerStatus(
          answer->status,
          absl::StrCat("InfluxDB v1 query `", statement, "` at ", base_url_,
                       ": HTTP ", answer->status, ": ",
                       InfluxErrorText(*answer)));
    }
    json body = json::parse(answer->body, nullptr, /*allow_exceptions=*/false);
    const json* result = nullptr;
    if (body.is_object()) {
      auto results = body.find("results");
      if (results != body.end() && results->is_array() && !results->empty() &&
          (*results)[0].is_object()) {
        result = &(*results)[0];
      }
    }
    if (result == nullptr) {
      return absl::UnknownError(
          absl::StrCat("InfluxDB v1 query `", statement, "` at ", base_url_,
                       ": unexpected answer: ", InfluxErrorText(*answer)));
    }
    if (auto error = result->find("error");
        error != result->end() && error->is_string()) {
      return absl::FailedPreconditionError(
          absl::StrCat("InfluxDB v1 query `", statement, "` at ", base_url_,
                       ": ", error->get<std::string>()));
    }
    return *result;
  }

  // The first column of every row of the statement's first series.
  absl::StatusOr<std::vector<std::string>> FirstColumn(
      const std::string& statement) const {
    absl::StatusOr<json> result = Query(statement);
    if (!result.ok()) return result.status();
    std::vector<std::string> names;
    auto series = result->find("series");
    if (series == result->end() || !series->is_array() || series->empty()) {
      return names;  // no rows
    }
    auto values = (*series)[0].find("values");
    if (values == (*series)[0].end() || !values->is_array()) return names;
    for (const json& row : *values) {
      if (row.is_array() && !row.empty() && row[0].is_string()) {
        names.push_back(row[0].get<std::string>());
      }
    }
    return names;
  }

  absl::StatusOr<bool> DatabaseExists() const {
    absl::StatusOr<std::vector<std::string>> names =
        FirstColumn("SHOW DATABASES");
    if (!names.ok()) return names.status();
    return std::find(names->begin(), names->end(), settings_.database) !=
           names->end();
  }

  absl::Status EnsureRetentionPolicy(const std::string& quoted_db) const {
    const std::string& name = settings_.retention_policy_name;
    absl::StatusOr<std::string> rp = QuoteInfluxQlIdentifier(name);
    if (!rp.ok()) return rp.status();
    const std::string duration(
        absl::StripAsciiWhitespace(settings_.retention_policy_duration));
    if (!IsInfluxQlDuration(duration)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "InfluxDB v1: retention policy ", name, ": duration \"",
          settings_.retention_policy_duration,
          "\" is not an InfluxQL duration (e.g. 30d, 1h30m, INF)"));
    }
    absl::StatusOr<std::vector<std::string>> existing =
        FirstColumn(absl::StrCat("SHOW RETENTION POLICIES ON ", quoted_db));
    if (!existing.ok()) {
      if (!IsPrivilegeError(existing.status())) return existing.status();
      // A write-only account may not even list policies (1.x wants READ).
      // Its administrator set the policy up; if not, writes answer
      // "retention policy not found" and say so.
      spdlog::warn(
          "InfluxDB v1: cannot check retention policy {} on {}, assuming it "
          "exists: {}",
          name, settings_.database, existing.status().ToString());
      return absl::OkStatus();
    }
    if (std::find(existing->begin(), existing->end(), name) !=
        existing->end()) {
      return absl::OkStatus();  // left as the administrator set it
    }
    absl::StatusOr<json> created =
        Query(absl::StrCat("CREATE RETENTION POLICY ", *rp, " ON ", quoted_db,
                           " DURATION ", duration, " REPLICATION 1 DEFAULT"));
    if (!created.ok()) return created.status();
    spdlog::info("InfluxDB v1: created retention policy {} ({}) on {}", name,
                 duration, settings_.database);
    return absl::OkStatus();
  }

  const InfluxV1Settings settings_;
  const std::string base_url_;
  std::string write_url_;
};

}  // namespace

std::unique_ptr<InfluxWriter> MakeInfluxV1Writer(InfluxV1Settings settings) {
  return std::make_unique<InfluxV1Writer>(std::move(settings));
}

absl::StatusOr<std::string> QuoteInfluxQlIdentifier(absl::string_view name) {
  std::string quoted = "\"";
  for (char c : name) {
    if (c == '\n' || c == '\r') {
      return absl::InvalidArgumentError(absl::StrCat(
          "InfluxQL identifier \"", name, "\" contains a line break"));
    }
    if (c == '"' || c == '\\') quoted.push_back('\\');
    quoted.push_back(c);
  }
  quoted.push_back('"');
  return quoted;
}

bool IsInfluxQlDuration(absl::string_view duration) {
  if (absl::EqualsIgnoreCase(duration, "INF")) return true;
  if (duration.empty()) return false;
  size_t i = 0;
  while (i < duration.size()) {
    const size_t digits_start = i;
    while (i < duration.size() &&
           absl::ascii_isdigit(static_cast<unsigned char>(duration[i]))) {
      ++i;
    }
    if (i == digits_start) return false;
    absl::string_view rest = duration.substr(i);
    // Two-letter units first: "ms" is milliseconds, not minutes + seconds.
    if (absl::StartsWith(rest, "ns") || absl::StartsWith(rest, "ms")) {
      i += 2;
    } else if (!rest.empty() && absl::string_view("usmhdw").find(rest[0]) !=
                                    absl::string_view::npos) {
      i += 1;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace qfp::tracker
