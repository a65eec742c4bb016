#include "tracker-service/influx_v2_writer.h"

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
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

// Whether `list[*].name` holds `name` in the JSON answer `body` (the shape
// of both GET /api/v2/buckets and GET /api/v2/orgs), and that entry's id.
struct Lookup {
  bool found = false;
  std::string id;
};

Lookup FindByName(const std::string& body, absl::string_view list,
                  absl::string_view name) {
  const json answer = json::parse(body, nullptr, /*allow_exceptions=*/false);
  Lookup lookup;
  if (!answer.is_object()) return lookup;
  auto items = answer.find(std::string(list));
  if (items == answer.end() || !items->is_array()) return lookup;
  for (const json& item : *items) {
    if (!item.is_object()) continue;
    auto item_name = item.find("name");
    if (item_name == item.end() || !item_name->is_string() ||
        item_name->get_ref<const std::string&>() != name) {
      continue;
    }
    lookup.found = true;
    auto id = item.find("id");
    if (id != item.end() && id->is_string()) lookup.id = id->get<std::string>();
    return lookup;
  }
  return lookup;
}

// 2.x answers a second bucket of the same name with 422 `conflict` (a
// proxy or a later release may say 409).
bool IsAlreadyExists(const HttpResponse& response) {
  if (response.status != 409 && response.status != 422) return false;
  const json answer =
      json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (answer.is_object()) {
    auto code = answer.find("code");
    if (code != answer.end() && code->is_string() &&
        code->get_ref<const std::string&>() == "conflict") {
      return true;
    }
  }
  return absl::StrContains(InfluxErrorText(response), "already exists");
}

class InfluxV2Writer final : public InfluxWriter {
 public:
  explicit InfluxV2Writer(InfluxV2Settings settings)
      : settings_(std::move(settings)),
        api_("InfluxDB v2", InfluxBaseUrl(settings_.host, settings_.port),
             absl::StrCat("Token ", settings_.token), settings_.timeout,
             "creating the bucket needs a token allowed to read "
             "organizations and buckets and to create buckets; to write "
             "into an existing bucket, write permission on it is enough"),
        write_path_(absl::StrCat("/api/v2/write?org=", UrlEncode(settings_.org),
                                 "&bucket=", UrlEncode(settings_.bucket),
                                 "&precision=ns")) {}

  absl::Status Prepare() override {
    if (settings_.org.empty() || settings_.bucket.empty()) {
      return absl::InvalidArgumentError(
          "influxdbConfig.v2Config.org and .bucket must be set");
    }
    absl::StatusOr<RetentionDuration> retention = ValidateRetentionDuration(
        "influxdbConfig.v2Config.retentionDuration",
        settings_.retention_duration, BelowMinimum::kRaise);
    if (!retention.ok()) return retention.status();

    // Management is optional: a token that may only write its bucket gets
    // empty lists or 401/403 here, and writes fine (Butler SOS never looks).
    absl::StatusOr<HttpResponse> buckets = api_.Call(
        "GET",
        absl::StrCat("/api/v2/buckets?name=", UrlEncode(settings_.bucket),
                     "&org=", UrlEncode(settings_.org)));
    if (!buckets.ok()) return buckets.status();
    if (buckets->status >= 500) {
      return api_.Refused("GET", "/api/v2/buckets", *buckets);
    }
    // Some 2.x releases answer a name filter that matches nothing with 404
    // rather than an empty list.
    if (buckets->status == 200) {
      if (FindByName(buckets->body, "buckets", settings_.bucket).found) {
        return TellExisting();
      }
    } else if (buckets->status != 404) {
      return WriteAnyway(api_.Refused("GET", "/api/v2/buckets", *buckets));
    }

    absl::StatusOr<std::string> org_id = OrgId();
    if (!org_id.ok()) {
      if (absl::IsUnavailable(org_id.status()) ||
          absl::IsDeadlineExceeded(org_id.status())) {
        return org_id.status();
      }
      return WriteAnyway(org_id.status());
    }
    return CreateBucket(*org_id, *retention);
  }

  WriteResult Write(absl::string_view lines) override {
    if (lines.empty()) return WriteResult{};
    HttpRequest request = api_.NewRequest("POST", write_path_);
    request.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    request.body = std::string(lines);
    request.gzip_body = settings_.gzip;
    return ClassifyWriteAnswer(HttpCall(request));
  }

  bool integer_numbers() const override { return true; }

  std::string Describe() const override {
    return absl::StrCat("influxdb v2 ", api_.base_url(), " org=", settings_.org,
                        " bucket=", settings_.bucket);
  }

 private:
  absl::StatusOr<std::string> OrgId() const {
    absl::StatusOr<HttpResponse> orgs = api_.Call(
        "GET", absl::StrCat("/api/v2/orgs?org=", UrlEncode(settings_.org)));
    if (!orgs.ok()) return orgs.status();
    if (orgs->status != 200 && orgs->status != 404) {
      return api_.Refused("GET", "/api/v2/orgs", *orgs);
    }
    Lookup org;
    if (orgs->status == 200) {
      org = FindByName(orgs->body, "orgs", settings_.org);
    }
    if (!org.found || org.id.empty()) {
      return absl::NotFoundError(absl::StrCat(
          "InfluxDB v2 at ", api_.base_url(), ": organization \"",
          settings_.org,
          "\" not found (or not visible to this token); v2Config.org must "
          "name an existing organization"));
    }
    return org.id;
  }

  // The bucket could not be checked or created: say so once, and let the
  // write decide (it answers 404 while the bucket is missing).
  absl::Status WriteAnyway(const absl::Status& why) {
    tell_(spdlog::level::warn,
          absl::StrCat("InfluxDB v2: could not check or create bucket ",
                       settings_.bucket, " in ", settings_.org, " (",
                       why.message(),
                       "); a token allowed only to write gets this. Writing "
                       "to it anyway"));
    return absl::OkStatus();
  }

  absl::Status TellExisting() {
    tell_(spdlog::level::info,
          absl::StrCat("InfluxDB v2: bucket ", settings_.bucket, " in ",
                       settings_.org,
                       " exists and is left as it is (retentionDuration "
                       "applies only to a bucket the tracker creates); points "
                       "go there"));
    return absl::OkStatus();
  }

  absl::Status CreateBucket(const std::string& org_id,
                            const RetentionDuration& retention) {
    // ordered_json keeps the documented field order in the request.
    nlohmann::ordered_json body;
    body["orgID"] = org_id;
    body["name"] = settings_.bucket;
    if (!settings_.description.empty()) {
      body["description"] = settings_.description;
    }
    // No rule at all means "never expire".
    body["retentionRules"] = nlohmann::ordered_json::array();
    if (!retention.infinite) {
      body["retentionRules"].push_back(
          {{"type", "expire"}, {"everySeconds", retention.Seconds()}});
    }
    absl::StatusOr<HttpResponse> created =
        api_.Call("POST", "/api/v2/buckets", body.dump());
    if (!created.ok()) return created.status();
    if (created->status >= 200 && created->status < 300) {
      tell_(
          spdlog::level::info,
          absl::StrCat("InfluxDB v2: created bucket ", settings_.bucket, " in ",
                       settings_.org, " (retention ", retention.ToString(),
                       retention.raised_to_minimum
                           ? ", raised from retentionDuration \"" +
                                 settings_.retention_duration +
                                 "\" to InfluxDB's minimum"
                           : "",
                       "); points go there"));
      return absl::OkStatus();
    }
    if (IsAlreadyExists(*created)) return TellExisting();
    absl::Status refused = api_.Refused("POST", "/api/v2/buckets", *created);
    if (created->status >= 500) return refused;
    return WriteAnyway(refused);
  }

  const InfluxV2Settings settings_;
  const InfluxApi api_;
  const std::string write_path_;  // with its query
  TellOnce tell_;
};

}  // namespace

std::unique_ptr<InfluxWriter> MakeInfluxV2Writer(InfluxV2Settings settings) {
  return std::make_unique<InfluxV2Writer>(std::move(settings));
}

}  // namespace qfp::tracker
