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
#include "tracker-service/retention_duration.h"

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
    // No rp=: like Butler SOS, points go to the database's default retention
    // policy, whatever an administrator made it.
    write_url_ =
        absl::StrCat(base_url_, "/write?db=", UrlEncode(settings_.database),
                     "&precision=ns");
  }

  absl::Status Prepare() override {
    if (settings_.database.empty()) {
      return absl::InvalidArgumentError(
          "influxdbConfig.v1Config.dbName: must not be empty");
    }
    absl::StatusOr<std::string> db =
        QuoteInfluxQlIdentifier(settings_.database);
    if (!db.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "influxdbConfig.v1Config.dbName: ", db.status().message()));
    }
    std::string create = absl::StrCat("CREATE DATABASE ", *db);
    std::string created_what = "with the server's default retention policy";
    if (!settings_.retention_policy_name.empty()) {
      absl::StatusOr<std::string> rp =
          QuoteInfluxQlIdentifier(settings_.retention_policy_name);
      if (!rp.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("influxdbConfig.v1Config.retentionPolicy.name: ",
                         rp.status().message()));
      }
      absl::StatusOr<RetentionDuration> duration = ValidateRetentionDuration(
          "influxdbConfig.v1Config.retentionPolicy.duration",
          settings_.retention_policy_duration);
      if (!duration.ok()) return duration.status();
      // One statement creates the database with the policy as its default.
      // On a database that exists meanwhile it changes nothing: 1.x then
      // answers a conflict, or nothing when the policies are the same.
      absl::StrAppend(&create, " WITH DURATION ", duration->InfluxQl(),
                      " REPLICATION 1 NAME ", *rp);
      created_what = absl::StrCat("with the default retention policy ",
                                  settings_.retention_policy_name, " (",
                                  duration->InfluxQl(), ")");
    }

    // Only a missing database is created; an existing one is never altered
    // (it may be shared with Butler SOS and other writers).
    absl::StatusOr<bool> exists = DatabaseExists();
    if (!exists.ok()) {
      if (IsTransient(exists.status())) return exists.status();
      tell_(spdlog::level::warn,
            absl::StrCat("InfluxDB v1: cannot list databases (",
                         exists.status().message(), "); writing to ",
                         settings_.database,
                         " anyway, into its default retention policy"));
      return absl::OkStatus();
    }
    if (*exists) return TellExisting();

    absl::StatusOr<json> created = Query(create);
    if (created.ok()) {
      tell_(spdlog::level::info,
            absl::StrCat("InfluxDB v1: created database ", settings_.database,
                         " ", created_what, "; points go there"));
      return absl::OkStatus();
    }
    if (IsTransient(created.status())) return created.status();
    if (IsPrivilegeError(created.status())) {
      // A write-only user sees only the databases it may read; the write
      // tells whether the database is there.
      tell_(spdlog::level::warn,
            absl::StrCat("InfluxDB v1: database ", settings_.database,
                         " is not visible to this user, which may not "
                         "create it either; writing anyway, into its "
                         "default retention policy (writes fail with "
                         "\"database not found\" until an administrator "
                         "creates it)"));
      return absl::OkStatus();
    }
    // Created by someone else since SHOW DATABASES (with another policy):
    // left as it is.
    if (absl::StatusOr<bool> now = DatabaseExists(); now.ok() && *now) {
      return TellExisting();
    }
    return created.status();
  }

  WriteResult Write(absl::string_view lines) override {
    if (lines.empty()) return WriteResult{};
    HttpRequest request = NewRequest("POST", write_url_);
    request.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    request.body = std::string(lines);
    request.gzip_body = settings_.gzip;
    return ClassifyWriteAnswer(HttpCall(request));
  }

  bool integer_numbers() const override { return false; }

  std::string Describe() const override {
    return absl::StrCat("influxdb v1 ", base_url_, " db=", settings_.database);
  }

 private:
  // A failure that may pass by itself: the server down or unreachable.
  static bool IsTransient(const absl::Status& status) {
    return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
           absl::IsUnknown(status);
  }

  absl::Status TellExisting() {
    std::string policy = "its default retention policy";
    // Naming the default needs READ; without it the sentence stays general.
    if (absl::StatusOr<std::string> name = DefaultPolicy(); name.ok()) {
      policy = absl::StrCat("its default retention policy ", *name);
    }
    std::string text =
        absl::StrCat("InfluxDB v1: database ", settings_.database,
                     " exists and is left as it is; points go "
                     "to ",
                     policy);
    if (!settings_.retention_policy_name.empty()) {
      absl::StrAppend(&text, " (retentionPolicy ",
                      settings_.retention_policy_name,
                      " applies only to a database the tracker creates)");
    }
    tell_(spdlog::level::info, text);
    return absl::OkStatus();
  }

  // The name of the database's default retention policy.
  absl::StatusOr<std::string> DefaultPolicy() const {
    absl::StatusOr<std::string> db =
        QuoteInfluxQlIdentifier(settings_.database);
    if (!db.ok()) return db.status();
    absl::StatusOr<json> result =
        Query(absl::StrCat("SHOW RETENTION POLICIES ON ", *db));
    if (!result.ok()) return result.status();
    auto series = result->find("series");
    if (series == result->end() || !series->is_array() || series->empty()) {
      return absl::NotFoundError("no policies");
    }
    const json& first = (*series)[0];
    auto columns = first.find("columns");
    auto values = first.find("values");
    if (columns == first.end() || values == first.end() ||
        !columns->is_array() || !values->is_array()) {
      return absl::NotFoundError("no policies");
    }
    size_t name_at = columns->size(), default_at = columns->size();
    for (size_t i = 0; i < columns->size(); ++i) {
      if ((*columns)[i] == "name") name_at = i;
      if ((*columns)[i] == "default") default_at = i;
    }
    for (const json& row : *values) {
      if (row.is_array() && name_at < row.size() && default_at < row.size() &&
          row[default_at].is_boolean() && row[default_at].get<bool>() &&
          row[name_at].is_string()) {
        return row[name_at].get<std::string>();
      }
    }
    return absl::NotFoundError("no default policy");
  }

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

  const InfluxV1Settings settings_;
  const std::string base_url_;
  std::string write_url_;
  TellOnce tell_;
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

}  // namespace qfp::tracker
