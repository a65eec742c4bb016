#include "tracker-service/influx_v3_writer.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "tracker-service/http_client.h"
#include "tracker-service/influx_api.h"
#include "tracker-service/retention_duration.h"

namespace qfp::tracker {
namespace {

using nlohmann::json;

// Rejected lines named in a bad-points message; the rest are counted.
constexpr size_t kMaxListedLines = 5;

// Whether the database list holds `name`. InfluxData documents three shapes
// for this answer (the API reference, the HTTP guide and the CLI's JSON
// output differ), so each is accepted:
//   {"databases": ["a", "b"]}
//   [{"db": "a", "retention_period": "30d"}, ...]
//   [{"iox::database": "a"}, ...]
// nullopt when the answer is none of them.
std::optional<bool> ListsDatabase(const std::string& body,
                                  absl::string_view name) {
  const json answer = json::parse(body, nullptr, /*allow_exceptions=*/false);
  auto is_name = [&name](const json& value) {
    return value.is_string() && value.get_ref<const std::string&>() == name;
  };
  if (answer.is_object()) {
    auto list = answer.find("databases");
    if (list == answer.end() || !list->is_array()) return std::nullopt;
    for (const json& item : *list) {
      if (is_name(item)) return true;
    }
    return false;
  }
  if (!answer.is_array()) return std::nullopt;
  for (const json& item : answer) {
    if (!item.is_object()) return std::nullopt;
    for (const char* key : {"iox::database", "db"}) {
      auto value = item.find(key);
      if (value != item.end() && is_name(*value)) return true;
    }
  }
  return false;
}

// The `data[]` of a 3.x write error, as "line N: error" items, so the log
// says which lines were refused and why.
std::string RejectedLines(const std::string& body) {
  const json answer = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!answer.is_object()) return "";
  auto found = answer.find("data");
  if (found == answer.end()) return "";
  // Core answers one object when the whole batch was refused
  // (accept_partial=false), an array of them for a partial write.
  json data = *found;
  if (data.is_object()) data = json::array({data});
  if (!data.is_array() || data.empty()) return "";
  std::string text;
  size_t listed = 0;
  for (const json& item : data) {
    if (listed == kMaxListedLines) {
      absl::StrAppend(&text, "; ", data.size() - listed, " more");
      break;
    }
    if (!item.is_object()) continue;
    absl::StrAppend(&text, listed == 0 ? "" : "; ", "line ");
    auto line = item.find("line_number");
    absl::StrAppend(&text, line != item.end() && line->is_number_integer()
                               ? std::to_string(line->get<int64_t>())
                               : std::string("?"));
    auto error = item.find("error_message");
    if (error != item.end() && error->is_string()) {
      absl::StrAppend(&text, ": ", error->get<std::string>());
    }
    ++listed;
  }
  return text;
}

class InfluxV3Writer final : public InfluxWriter {
 public:
  explicit InfluxV3Writer(InfluxV3Settings settings)
      : settings_(std::move(settings)),
        // An empty token sends no Authorization header at all.
        api_("InfluxDB v3", InfluxBaseUrl(settings_.host, settings_.port),
             settings_.token.empty() ? std::string()
                                     : absl::StrCat("Bearer ", settings_.token),
             settings_.write_timeout,
             "creating the database needs a token allowed to list and "
             "create databases, e.g. an admin token; to write into an "
             "existing database, write permission on it is enough"),
        write_path_(
            absl::StrCat("/api/v2/write?bucket=", UrlEncode(settings_.database),
                         "&precision=ns")) {}

  absl::Status Prepare() override {
    if (settings_.database.empty()) {
      return absl::InvalidArgumentError(
          "influxdbConfig.v3Config.database: must not be empty");
    }
    absl::StatusOr<RetentionDuration> retention = ValidateRetentionDuration(
        "influxdbConfig.v3Config.retentionDuration",
        settings_.retention_duration, BelowMinimum::kRaise);
    if (!retention.ok()) return retention.status();

    absl::StatusOr<HttpResponse> list =
        api_.Call("GET", "/api/v3/configure/database?format=json");
    if (!list.ok()) return list.status();
    if (list->status >= 500) {
      return api_.Refused("GET", "/api/v3/configure/database", *list);
    }
    if (list->status == 200) {
      std::optional<bool> listed =
          ListsDatabase(list->body, settings_.database);
      if (listed.value_or(false)) return TellExisting();
      if (!listed.has_value()) {
        spdlog::debug("InfluxDB v3: database list in an unknown shape: {}",
                      InfluxErrorText(*list));
      }
    } else if (list->status != 404) {
      // 404: no database yet on Core, or a product without this endpoint;
      // the create request tells which.
      return WriteAnyway(
          api_.Refused("GET", "/api/v3/configure/database", *list));
    }

    json body = {{"db", settings_.database}};
    if (!retention->infinite) body["retention_period"] = retention->InfluxQl();
    absl::StatusOr<HttpResponse> created =
        api_.Call("POST", "/api/v3/configure/database", body.dump());
    if (!created.ok()) return created.status();
    if (created->status >= 200 && created->status < 300) {
      tell_(spdlog::level::info,
            absl::StrCat("InfluxDB v3: created database ", settings_.database,
                         " (retention ", retention->ToString(),
                         retention->raised_to_minimum
                             ? ", raised from retentionDuration \"" +
                                   settings_.retention_duration +
                                   "\" to InfluxDB's minimum"
                             : "",
                         "); points go there"));
      return absl::OkStatus();
    }
    if (created->status == 409) return TellExisting();  // already exists
    absl::Status refused =
        api_.Refused("POST", "/api/v3/configure/database", *created);
    if (created->status >= 500) return refused;
    return WriteAnyway(refused);
  }

  WriteResult Write(absl::string_view lines) override {
    if (lines.empty()) return WriteResult{};
    HttpRequest request = api_.NewRequest("POST", write_path_);
    // The Token scheme on the write: Cloud Serverless documents only it for
    // /api/v2/write; Core, Enterprise, Dedicated and Clustered take Token and
    // Bearer alike (docs.influxdata.com/influxdb3/cloud-serverless/guides/
    // api-compatibility/v2; .../cloud-dedicated/guides/api-compatibility/v2;
    // influxdb3/core/api/authentication).
    for (auto& [name, value] : request.headers) {
      if (name == "Authorization") {
        value = absl::StrCat("Token ", settings_.token);
      }
    }
    request.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    request.body = std::string(lines);
    request.gzip_body = settings_.gzip;
    absl::StatusOr<HttpResponse> answer = HttpCall(request);
    WriteResult result = ClassifyWriteAnswer(answer);
    if (result.kind == WriteResult::Kind::kBadPoints && answer.ok()) {
      if (std::string rejected = RejectedLines(answer->body);
          !rejected.empty()) {
        absl::StrAppend(&result.message, ": ", rejected);
      }
    }
    return result;
  }

  bool integer_numbers() const override { return true; }

  std::string Describe() const override {
    return absl::StrCat("influxdb v3 ", api_.base_url(),
                        " db=", settings_.database);
  }

 private:
  // The database could not be checked or created: say so once, and let the
  // write decide.
  absl::Status WriteAnyway(const absl::Status& why) {
    tell_(spdlog::level::warn,
          absl::StrCat("InfluxDB v3: could not check or create database ",
                       settings_.database, " (", why.message(),
                       "); products without /api/v3 (Cloud Serverless, "
                       "Dedicated, Clustered) and write-only tokens get this. "
                       "Writing to it anyway"));
    return absl::OkStatus();
  }

  absl::Status TellExisting() {
    tell_(spdlog::level::info,
          absl::StrCat("InfluxDB v3: database ", settings_.database,
                       " exists and is left as it is (retentionDuration "
                       "applies only to a database the tracker creates); "
                       "points go there"));
    return absl::OkStatus();
  }

  const InfluxV3Settings settings_;
  const InfluxApi api_;
  const std::string write_path_;  // with its query
  TellOnce tell_;
};

}  // namespace

std::unique_ptr<InfluxWriter> MakeInfluxV3Writer(InfluxV3Settings settings) {
  return std::make_unique<InfluxV3Writer>(std::move(settings));
}

}  // namespace qfp::tracker
