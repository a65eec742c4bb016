// One contract for every InfluxWriter: InfluxDB 1.x against a real private
// influxd, 2.x and 3.x against a local HTTP server that answers as their API
// references document and records every byte of each request. The answers
// the real influxd cannot give on demand (413, 429, 503, ...) come from the
// same fake server for 1.x too.
//
// Documented facts the fakes follow:
//  - 2.x (influxdata/openapi src/common/paths/{write,buckets,orgs}.yml,
//    docs.influxdata.com/influxdb/v2/write-data/troubleshoot/): write 204;
//    400 {"code":"invalid","message":"partial write error ..."}; 401
//    {"code":"unauthorized","message":"unauthorized access"}; 404 for a
//    missing bucket; 413 {"code":"request too large",...}; 422 for rejected
//    points (OSS 2.5+); 429 and 503 with Retry-After in seconds; 500.
//    GET /api/v2/buckets?name=&org= -> {"buckets":[...]}; GET
//    /api/v2/orgs?org= -> {"orgs":[{id,name}]}; POST /api/v2/buckets
//    {orgID,name,description,retentionRules:[{type:expire,everySeconds}]}
//    -> 201, a duplicate name -> 422 {"code":"conflict",...}.
//  - 3.x (docs-v2 api-docs/influxdb3/core/v3/ref.yml; write-data/http-api/
//    compatibility-apis): POST /api/v2/write?bucket=&precision=ns with a
//    Token (every 3.x product serves it), Bearer on /api/v3; 204; 400
//    {"error":"partial write of line protocol
//    occurred","data":[{original_line,line_number, error_message}]}; 401; 413;
//    422. GET /api/v3/configure/database ?format=json lists databases; POST
//    {"db","retention_period"} -> 201, 409 when it exists. A write into a
//    missing database creates it.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "tests/testing/fake_http_server.h"
#include "tests/testing/influxd_process.h"
#include "tracker-service/failure_point.h"
#include "tracker-service/influx_api.h"
#include "tracker-service/influx_v1_writer.h"
#include "tracker-service/influx_v2_writer.h"
#include "tracker-service/influx_v3_writer.h"
#include "tracker-service/influx_writer.h"
#include "tracker-service/line_protocol.h"
#include "tracker-service/writer_factory.h"

namespace qfp::tracker {
namespace {

using ::qfp::testing::FakeHttpServer;
using ::qfp::testing::InfluxdProcess;
using ::qfp::testing::RecordedRequest;
using ::qfp::testing::ScriptedResponse;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAreArray;
using json = nlohmann::json;
using Kind = WriteResult::Kind;
using failedpolls::v1::PollFailure;

constexpr char kHost[] = "127.0.0.1";
constexpr char kOrg[] = "butler-org";
constexpr char kOrgId[] = "0a1b2c3d4e5f6071";
constexpr char kV2Token[] = "v2-token/with+signs==";
constexpr char kV3Token[] = "apiv3_test-token";

// --- The failures of section 3 of the compatibility reference. ---

PollFailure At(int64_t seconds, int32_t nanos) {
  PollFailure failure;
  failure.mutable_occurred_at()->set_seconds(seconds);
  failure.mutable_occurred_at()->set_nanos(nanos);
  return failure;
}

std::vector<PollFailure> SectionThreeFailures() {
  PollFailure refused = At(1764000000, 123456789);
  refused.set_source(failedpolls::v1::HEALTH_API);
  refused.set_server_name("sense1");
  refused.set_host("10.0.0.5:4747");
  refused.set_error_category(
      failedpolls::v1::ERROR_CATEGORY_CONNECTION_REFUSED);
  refused.set_error_code("ECONNREFUSED");
  refused.set_request_url("https://10.0.0.5:4747/engine/healthcheck");
  refused.set_request_timeout_ms(5000);
  refused.set_remote_address("10.0.0.5");
  refused.set_remote_port(4747);
  refused.set_syscall("connect");

  PollFailure timeout = At(1764000001, 0);
  timeout.set_source(failedpolls::v1::HEALTH_API);
  timeout.set_server_name("sense1");
  timeout.set_host("10.0.0.5:4747");
  timeout.set_error_category(failedpolls::v1::ERROR_CATEGORY_TIMEOUT);
  timeout.set_error_code("ECONNABORTED");
  timeout.set_request_url("https://10.0.0.5:4747/engine/healthcheck");
  timeout.set_request_timeout_ms(5000);

  PollFailure http500 = At(1764000002, 1);
  http500.set_source(failedpolls::v1::PROXY_API);
  http500.set_server_name("sense2");
  http500.set_host("10.0.0.6:4243");
  http500.set_virtual_proxy("/sales");
  http500.set_error_category(failedpolls::v1::ERROR_CATEGORY_HTTP_5XX);
  http500.set_error_code("ERR_BAD_RESPONSE");
  http500.set_http_status(500);
  http500.set_request_url("https://10.0.0.6:4243/qps/sales/session");
  http500.set_request_timeout_ms(5000);
  return {refused, timeout, http500};
}

// The lines a writer with `integer_numbers` is given for those failures.
std::vector<std::string> ExampleLines(bool integer_numbers) {
  PointSchema schema;
  schema.integer_numbers = integer_numbers;
  std::vector<std::string> lines;
  for (const PollFailure& failure : SectionThreeFailures()) {
    absl::StatusOr<std::string> line =
        EncodeLine(FailureToPoint(failure, schema));
    EXPECT_TRUE(line.ok()) << line.status();
    lines.push_back(line.ok() ? *line : "");
  }
  return lines;
}

std::string Body(const std::vector<std::string>& lines) {
  return absl::StrJoin(lines, "\n");
}

// A port with nothing listening (the kernel's pick, released again).
int ClosedPort() {
  FakeHttpServer probe;
  EXPECT_TRUE(probe.Start().ok());
  const int port = probe.port();
  probe.Stop();
  return port;
}

// --- A fake InfluxDB 2.x, as its API reference documents it. ---

class FakeInfluxV2 {
 public:
  FakeInfluxV2() {
    server_.set_handler(
        [this](const RecordedRequest& request) { return Answer(request); });
  }

  absl::Status Start() { return server_.Start(); }
  FakeHttpServer& server() { return server_; }

  void AddBucket(const std::string& name) {
    absl::MutexLock lock(&mu_);
    buckets_[name] = json{{"id", BucketId(name)},
                          {"name", name},
                          {"orgID", kOrgId},
                          {"retentionRules", json::array()}};
  }
  bool HasBucket(const std::string& name) const {
    absl::MutexLock lock(&mu_);
    return buckets_.count(name) > 0;
  }
  json Bucket(const std::string& name) const {
    absl::MutexLock lock(&mu_);
    auto it = buckets_.find(name);
    return it == buckets_.end() ? json() : it->second;
  }
  std::vector<std::string> Stored(const std::string& bucket) const {
    absl::MutexLock lock(&mu_);
    auto it = stored_.find(bucket);
    return it == stored_.end() ? std::vector<std::string>() : it->second;
  }

 private:
  static std::string BucketId(const std::string& name) {
    return absl::StrCat("b", std::hash<std::string>()(name) % 1000000007);
  }

  static ScriptedResponse Error(int status, const std::string& code,
                                const std::string& message) {
    return ScriptedResponse::Json(
        status, json{{"code", code}, {"message", message}}.dump());
  }

  static std::map<std::string, std::string> Params(const RecordedRequest& r) {
    std::map<std::string, std::string> params;
    for (const auto& [key, value] : r.QueryParams()) params[key] = value;
    return params;
  }

  ScriptedResponse Answer(const RecordedRequest& request) {
    if (request.Header("Authorization") != absl::StrCat("Token ", kV2Token)) {
      return Error(401, "unauthorized", "unauthorized access");
    }
    std::map<std::string, std::string> params = Params(request);
    const std::string path = request.path();
    absl::MutexLock lock(&mu_);
    if (request.method == "GET" && path == "/api/v2/buckets") {
      if (params["org"] != kOrg) {
        return Error(404, "not found",
                     absl::StrCat("organization name \"", params["org"],
                                  "\" not found"));
      }
      json list = json::array();
      for (const auto& [name, bucket] : buckets_) {
        if (params.count("name") == 0 || params["name"] == name) {
          list.push_back(bucket);
        }
      }
      return ScriptedResponse::Json(
          200, json{{"links", {{"self", request.target}}}, {"buckets", list}}
                   .dump());
    }
    if (request.method == "GET" && path == "/api/v2/orgs") {
      if (params["org"] != kOrg) {
        return Error(404, "not found",
                     absl::StrCat("organization name \"", params["org"],
                                  "\" not found"));
      }
      return ScriptedResponse::Json(
          200, json{{"links", {{"self", "/api/v2/orgs"}}},
                    {"orgs", {{{"id", kOrgId}, {"name", kOrg}}}}}
                   .dump());
    }
    if (request.method == "POST" && path == "/api/v2/buckets") {
      const json body = json::parse(request.decoded_body, nullptr, false);
      if (!body.is_object() || !body.contains("name") ||
          !body["name"].is_string() || !body.contains("orgID")) {
        return Error(400, "invalid", "name and orgID are required");
      }
      if (body["orgID"] != kOrgId) {
        return Error(404, "not found", "organization not found");
      }
      const std::string name = body["name"].get<std::string>();
      if (buckets_.count(name) > 0) {
        return Error(
            422, "conflict",
            absl::StrCat("bucket with name ", name, " already exists"));
      }
      json bucket = body;
      bucket["id"] = BucketId(name);
      bucket["type"] = "user";
      buckets_[name] = bucket;
      return ScriptedResponse::Json(201, bucket.dump());
    }
    if (request.method == "POST" && path == "/api/v2/write") {
      if (params["precision"] != "ns") {
        return Error(400, "invalid", "invalid precision");
      }
      if (params["org"] != kOrg) {
        return Error(404, "not found",
                     absl::StrCat("organization name \"", params["org"],
                                  "\" not found"));
      }
      if (buckets_.count(params["bucket"]) == 0) {
        return Error(
            404, "not found",
            absl::StrCat("bucket \"", params["bucket"], "\" not found"));
      }
      for (absl::string_view line :
           absl::StrSplit(request.decoded_body, '\n', absl::SkipEmpty())) {
        stored_[params["bucket"]].emplace_back(line);
      }
      return ScriptedResponse::Bare(204);
    }
    return Error(404, "not found", "path not found");
  }

  FakeHttpServer server_;
  mutable absl::Mutex mu_;
  std::map<std::string, json> buckets_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<std::string>> stored_ ABSL_GUARDED_BY(mu_);
};

// --- A fake InfluxDB 3.x (Core), as its API reference documents it. ---

class FakeInfluxV3 {
 public:
  // The database list in each shape InfluxData documents.
  enum class ListShape { kDatabasesObject, kDbObjects, kIoxObjects };

  FakeInfluxV3() {
    server_.set_handler(
        [this](const RecordedRequest& request) { return Answer(request); });
  }

  absl::Status Start() { return server_.Start(); }
  FakeHttpServer& server() { return server_; }
  void set_list_shape(ListShape shape) {
    absl::MutexLock lock(&mu_);
    shape_ = shape;
  }
  // false: a product without the /api/v3 endpoints (Cloud Serverless, ...).
  void set_v3_api(bool v3_api) {
    absl::MutexLock lock(&mu_);
    v3_api_ = v3_api;
  }
  void AddDatabase(const std::string& name) {
    absl::MutexLock lock(&mu_);
    databases_[name] = "";
  }
  bool HasDatabase(const std::string& name) const {
    absl::MutexLock lock(&mu_);
    return databases_.count(name) > 0;
  }
  std::string Retention(const std::string& name) const {
    absl::MutexLock lock(&mu_);
    auto it = databases_.find(name);
    return it == databases_.end() ? "" : it->second;
  }
  std::vector<std::string> Stored(const std::string& db) const {
    absl::MutexLock lock(&mu_);
    auto it = stored_.find(db);
    return it == stored_.end() ? std::vector<std::string>() : it->second;
  }

 private:
  static ScriptedResponse Error(int status, const std::string& message) {
    return ScriptedResponse::Json(status, json{{"error", message}}.dump());
  }

  ScriptedResponse Answer(const RecordedRequest& request) {
    // Bearer on /api/v3 management calls, Token on the v2-compatible write.
    const std::string scheme =
        request.path() == "/api/v2/write" ? "Token " : "Bearer ";
    if (request.Header("Authorization") != absl::StrCat(scheme, kV3Token)) {
      return Error(401, "the request was not authenticated");
    }
    std::map<std::string, std::string> params;
    for (const auto& [key, value] : request.QueryParams()) params[key] = value;
    const std::string path = request.path();
    absl::MutexLock lock(&mu_);
    // Cloud Serverless, Dedicated and Clustered have no /api/v3 endpoints.
    if (!v3_api_ && absl::StartsWith(path, "/api/v3/")) {
      return Error(404, "not found");
    }
    if (request.method == "GET" && path == "/api/v3/configure/database") {
      if (params["format"] != "json") return Error(400, "format required");
      json list;
      switch (shape_) {
        case ListShape::kDatabasesObject:
          list = {{"databases", json::array()}};
          for (const auto& [name, rp] : databases_) {
            list["databases"].push_back(name);
          }
          break;
        case ListShape::kDbObjects:
          list = json::array();
          for (const auto& [name, rp] : databases_) {
            list.push_back(
                {{"db", name}, {"retention_period", rp.empty() ? "none" : rp}});
          }
          break;
        case ListShape::kIoxObjects:
          list = json::array();
          for (const auto& [name, rp] : databases_) {
            list.push_back({{"iox::database", name}});
          }
          break;
      }
      return ScriptedResponse::Json(200, list.dump());
    }
    if (request.method == "POST" && path == "/api/v3/configure/database") {
      const json body = json::parse(request.decoded_body, nullptr, false);
      if (!body.is_object() || !body.contains("db") ||
          !body["db"].is_string()) {
        return Error(400, "db is required");
      }
      const std::string name = body["db"].get<std::string>();
      if (databases_.count(name) > 0) {
        return Error(409, "attempted to create a resource that already exists");
      }
      databases_[name] = body.value("retention_period", "");
      return ScriptedResponse::Bare(201);
    }
    if (request.method == "POST" && path == "/api/v2/write") {
      // The v2-compatible endpoint: the database is `bucket`, precision
      // spelled as in 2.x.
      if (params["precision"] != "ns") {
        return Error(400, "unrecognized precision unit");
      }
      // Documented: a write creates a missing database.
      databases_.emplace(params["bucket"], "");
      for (absl::string_view line :
           absl::StrSplit(request.decoded_body, '\n', absl::SkipEmpty())) {
        stored_[params["bucket"]].emplace_back(line);
      }
      return ScriptedResponse::Bare(204);
    }
    return Error(404, "not found");
  }

  FakeHttpServer server_;
  mutable absl::Mutex mu_;
  ListShape shape_ ABSL_GUARDED_BY(mu_) = ListShape::kDatabasesObject;
  bool v3_api_ ABSL_GUARDED_BY(mu_) = true;
  std::map<std::string, std::string> databases_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<std::string>> stored_ ABSL_GUARDED_BY(mu_);
};

// --- The shared influxd: one per test process, started when first used. ---

std::unique_ptr<InfluxdProcess>& SharedInfluxdSlot() {
  static auto* slot = new std::unique_ptr<InfluxdProcess>();
  return *slot;
}

InfluxdProcess* SharedInfluxd() {
  std::unique_ptr<InfluxdProcess>& slot = SharedInfluxdSlot();
  if (slot == nullptr) {
    absl::StatusOr<std::unique_ptr<InfluxdProcess>> started =
        InfluxdProcess::Start();
    if (!started.ok()) {
      ADD_FAILURE() << started.status();
      return nullptr;
    }
    slot = *std::move(started);
  }
  return slot.get();
}

class InfluxdEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { SharedInfluxdSlot().reset(); }
};
[[maybe_unused]] ::testing::Environment* const kInfluxdEnvironment =
    ::testing::AddGlobalTestEnvironment(new InfluxdEnvironment);

// Rebuilds line protocol from `SELECT * ... GROUP BY *` (epoch=ns): tags
// sorted, fields in column order (InfluxDB lists them sorted, as the tracker
// writes them), numbers as stored.
std::vector<std::string> RowsAsLines(const std::string& answer_text) {
  auto escape_key = [](const std::string& text) {
    return absl::StrReplaceAll(text,
                               {{",", "\\,"}, {"=", "\\="}, {" ", "\\ "}});
  };
  std::vector<std::string> lines;
  const json answer = json::parse(answer_text, nullptr, false);
  if (!answer.is_object()) return lines;
  for (const json& result : answer.value("results", json::array())) {
    for (const json& series : result.value("series", json::array())) {
      std::string key = series.value("name", "");
      const json tags = series.value("tags", json::object());
      std::vector<std::string> tag_keys;
      for (auto it = tags.begin(); it != tags.end(); ++it) {
        if (it->is_string() && !it->get<std::string>().empty()) {
          tag_keys.push_back(it.key());
        }
      }
      std::sort(tag_keys.begin(), tag_keys.end());
      for (const std::string& tag : tag_keys) {
        absl::StrAppend(&key, ",", escape_key(tag), "=",
                        escape_key(tags[tag].get<std::string>()));
      }
      const json columns = series.value("columns", json::array());
      for (const json& row : series.value("values", json::array())) {
        std::vector<std::string> fields;
        for (size_t i = 1; i < columns.size() && i < row.size(); ++i) {
          if (row[i].is_null()) continue;
          std::string value;
          if (row[i].is_string()) {
            value = absl::StrCat(
                "\"",
                absl::StrReplaceAll(row[i].get<std::string>(),
                                    {{"\\", "\\\\"}, {"\"", "\\\""}}),
                "\"");
          } else {
            value = row[i].dump();
          }
          fields.push_back(absl::StrCat(
              escape_key(columns[i].get<std::string>()), "=", value));
        }
        lines.push_back(absl::StrCat(key, " ", absl::StrJoin(fields, ","), " ",
                                     row[0].dump()));
      }
    }
  }
  return lines;
}

// How often `name` appears in the first column of `SHOW ...`'s rows.
int CountInFirstColumn(const std::string& answer_text,
                       const std::string& name) {
  int count = 0;
  const json answer = json::parse(answer_text, nullptr, false);
  if (!answer.is_object()) return -1;
  for (const json& result : answer.value("results", json::array())) {
    for (const json& series : result.value("series", json::array())) {
      for (const json& row : series.value("values", json::array())) {
        if (row.is_array() && !row.empty() && row[0] == name) ++count;
      }
    }
  }
  return count;
}

// --- The seam between the contract and each InfluxDB version. ---

// One documented error answer and what of it the writer's message keeps.
struct ErrorAnswer {
  ScriptedResponse response;
  std::string message;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual absl::Status Start() = 0;
  // A writer for `destination` (database or bucket) on the backend's server.
  virtual std::unique_ptr<InfluxWriter> Writer(
      const std::string& destination) = 0;
  // The same writer talking to 127.0.0.1:`port` instead.
  virtual std::unique_ptr<InfluxWriter> WriterAt(const std::string& destination,
                                                 int port) = 0;
  // How often the server lists `destination` (0 or 1), -1 when it can't tell.
  virtual int Listed(const std::string& destination) = 0;
  // How many create requests the server saw; -1 when it can't tell.
  virtual int CreateRequests() = 0;
  virtual std::vector<std::string> Stored(const std::string& destination) = 0;
  // Asserts every byte that matters of the last write request.
  virtual void ExpectWriteRequest(const std::string& destination,
                                  const std::string& body) = 0;
  // This API's documented answer with `status` to a write.
  virtual ErrorAnswer DocumentedError(int status) = 0;
  virtual bool integer_numbers() const = 0;
};

class V1Backend final : public Backend {
 public:
  std::string name() const override { return "v1"; }
  absl::Status Start() override {
    influxd_ = SharedInfluxd();
    return influxd_ != nullptr ? absl::OkStatus()
                               : absl::UnavailableError("no influxd");
  }
  std::unique_ptr<InfluxWriter> Writer(const std::string& db) override {
    return WriterAt(db, influxd_->http_port());
  }
  std::unique_ptr<InfluxWriter> WriterAt(const std::string& db,
                                         int port) override {
    InfluxV1Settings settings;
    settings.host = kHost;
    settings.port = port;
    settings.database = db;
    // Never expiring: the section 3 examples are dated 2025, and a policy
    // of 10d would (rightly) refuse them as "points beyond retention policy".
    settings.retention_policy_name = "butler_rp";
    settings.retention_policy_duration = "INF";
    return MakeInfluxV1Writer(settings);
  }
  int Listed(const std::string& db) override {
    absl::StatusOr<std::string> answer = influxd_->Query("SHOW DATABASES");
    EXPECT_TRUE(answer.ok()) << answer.status();
    if (!answer.ok()) return -1;
    const int databases = CountInFirstColumn(*answer, db);
    if (databases != 1) return databases;
    // Prepare() also makes the retention policy.
    absl::StatusOr<std::string> policies = influxd_->Query(
        absl::StrCat("SHOW RETENTION POLICIES ON \"", db, "\""));
    EXPECT_TRUE(policies.ok()) << policies.status();
    EXPECT_EQ(CountInFirstColumn(policies.ok() ? *policies : "", "butler_rp"),
              1);
    return databases;
  }
  int CreateRequests() override { return -1; }
  std::vector<std::string> Stored(const std::string& db) override {
    absl::StatusOr<std::string> answer =
        influxd_->Query("SELECT * FROM butler_sos_errors GROUP BY *", db);
    EXPECT_TRUE(answer.ok()) << answer.status();
    return answer.ok() ? RowsAsLines(*answer) : std::vector<std::string>();
  }
  void ExpectWriteRequest(const std::string& db,
                          const std::string& body) override {
    // The real influxd read it back (Stored); what it accepted is also typed
    // as Butler SOS writes to 1.x: numbers as floats.
    absl::StatusOr<std::string> answer =
        influxd_->Query("SHOW FIELD KEYS FROM butler_sos_errors", db);
    ASSERT_TRUE(answer.ok()) << answer.status();
    const json parsed = json::parse(*answer, nullptr, false);
    const json::json_pointer rows("/results/0/series/0/values");
    ASSERT_TRUE(parsed.is_object() && parsed.contains(rows)) << *answer;
    std::map<std::string, std::string> types;
    for (const json& row : parsed[rows]) {
      types[row.at(0).get<std::string>()] = row.at(1).get<std::string>();
    }
    EXPECT_EQ(types["error_count"], "float");
    EXPECT_EQ(types["http_status"], "float");
    EXPECT_EQ(types["request_timeout_ms"], "float");
    EXPECT_EQ(types["remote_port"], "float");
    EXPECT_EQ(types["error_category"], "string");
    EXPECT_FALSE(body.empty());
  }
  ErrorAnswer DocumentedError(int status) override {
    auto error = [status](const std::string& text) {
      return ScriptedResponse::Json(status, json{{"error", text}}.dump());
    };
    switch (status) {
      case 400:
        return {error("partial write: unable to parse 'bad line': missing "
                      "fields dropped=1"),
                "partial write: unable to parse"};
      case 401:
        return {error("authorization failed"), "authorization failed"};
      case 403:
        return {error("user is not authorized to write to database"),
                "not authorized"};
      case 404:
        return {error("database not found: \"senseops\""),
                "database not found"};
      case 413:
        return {error("http: request body too large"), "too large"};
      case 422:
        return {error("unprocessable entity"), "unprocessable"};
      case 500:
        return {error("timeout"), "timeout"};
      default:  // 429, 503: no body, Retry-After
        return {ScriptedResponse::Bare(status), absl::StrCat("HTTP ", status)};
    }
  }
  bool integer_numbers() const override { return false; }

 private:
  InfluxdProcess* influxd_ = nullptr;
};

class V2Backend final : public Backend {
 public:
  std::string name() const override { return "v2"; }
  absl::Status Start() override { return fake_.Start(); }
  FakeInfluxV2& fake() { return fake_; }
  static InfluxV2Settings Settings(const std::string& bucket, int port) {
    InfluxV2Settings settings;
    settings.host = kHost;
    settings.port = port;
    settings.org = kOrg;
    settings.bucket = bucket;
    settings.token = kV2Token;
    settings.description = "Butler SOS metrics";
    settings.retention_duration = "10d";
    return settings;
  }
  std::unique_ptr<InfluxWriter> Writer(const std::string& bucket) override {
    return WriterAt(bucket, fake_.server().port());
  }
  std::unique_ptr<InfluxWriter> WriterAt(const std::string& bucket,
                                         int port) override {
    return MakeInfluxV2Writer(Settings(bucket, port));
  }
  int Listed(const std::string& bucket) override {
    return fake_.HasBucket(bucket) ? 1 : 0;
  }
  int CreateRequests() override {
    return fake_.server().CountRequests("POST", "/api/v2/buckets");
  }
  std::vector<std::string> Stored(const std::string& bucket) override {
    return fake_.Stored(bucket);
  }
  void ExpectWriteRequest(const std::string& bucket,
                          const std::string& body) override {
    const std::vector<RecordedRequest> requests = fake_.server().requests();
    ASSERT_FALSE(requests.empty());
    const RecordedRequest& r = requests.back();
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path(), "/api/v2/write");
    EXPECT_EQ(r.query(),
              absl::StrCat("org=", kOrg, "&bucket=", bucket, "&precision=ns"));
    EXPECT_THAT(r.QueryParams(),
                ElementsAre(Pair("org", kOrg), Pair("bucket", bucket),
                            Pair("precision", "ns")));
    EXPECT_EQ(r.Header("Authorization"), absl::StrCat("Token ", kV2Token));
    EXPECT_EQ(r.HeaderCount("Authorization"), 1);
    EXPECT_EQ(r.Header("Content-Type"), "text/plain; charset=utf-8");
    EXPECT_EQ(r.Header("Content-Encoding"), "gzip");
    EXPECT_EQ(r.Header("Content-Length"), std::to_string(r.body.size()));
    EXPECT_EQ(r.decode_error, "");
    EXPECT_EQ(r.decoded_body, body);
  }
  ErrorAnswer DocumentedError(int status) override {
    auto error = [status](const std::string& code, const std::string& text) {
      return ScriptedResponse::Json(
          status, json{{"code", code}, {"message", text}}.dump());
    };
    switch (status) {
      case 400:
        return {error("invalid",
                      "partial write error (2 written): unable to parse "
                      "'bad line': missing fields"),
                "partial write error (2 written)"};
      case 401:
        return {error("unauthorized", "unauthorized access"),
                "unauthorized access"};
      case 403:
        return {error("forbidden", "insufficient permissions for write"),
                "insufficient permissions"};
      case 404:
        return {error("not found", "bucket \"senseops\" not found"),
                "bucket \"senseops\" not found"};
      case 413:
        return {error("request too large",
                      "unable to read data: points batch is too large"),
                "points batch is too large"};
      case 422:
        return {error("unprocessable entity",
                      "failure writing points to database: partial write: "
                      "points beyond retention policy dropped=1"),
                "points beyond retention policy"};
      case 500:
        return {error("internal error", "an internal error has occurred"),
                "an internal error has occurred"};
      default:  // 429, 503: documented with Retry-After only
        return {ScriptedResponse::Bare(status), absl::StrCat("HTTP ", status)};
    }
  }
  bool integer_numbers() const override { return true; }

 private:
  FakeInfluxV2 fake_;
};

class V3Backend final : public Backend {
 public:
  std::string name() const override { return "v3"; }
  absl::Status Start() override { return fake_.Start(); }
  FakeInfluxV3& fake() { return fake_; }
  static InfluxV3Settings Settings(const std::string& db, int port) {
    InfluxV3Settings settings;
    settings.host = kHost;
    settings.port = port;
    settings.database = db;
    settings.token = kV3Token;
    settings.description = "Butler SOS metrics";
    settings.retention_duration = "10d";
    settings.write_timeout = absl::Seconds(10);
    return settings;
  }
  std::unique_ptr<InfluxWriter> Writer(const std::string& db) override {
    return WriterAt(db, fake_.server().port());
  }
  std::unique_ptr<InfluxWriter> WriterAt(const std::string& db,
                                         int port) override {
    return MakeInfluxV3Writer(Settings(db, port));
  }
  int Listed(const std::string& db) override {
    return fake_.HasDatabase(db) ? 1 : 0;
  }
  int CreateRequests() override {
    return fake_.server().CountRequests("POST", "/api/v3/configure/database");
  }
  std::vector<std::string> Stored(const std::string& db) override {
    return fake_.Stored(db);
  }
  void ExpectWriteRequest(const std::string& db,
                          const std::string& body) override {
    const std::vector<RecordedRequest> requests = fake_.server().requests();
    ASSERT_FALSE(requests.empty());
    const RecordedRequest& r = requests.back();
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path(), "/api/v2/write");
    EXPECT_EQ(r.query(), absl::StrCat("bucket=", db, "&precision=ns"));
    EXPECT_THAT(r.QueryParams(),
                ElementsAre(Pair("bucket", db), Pair("precision", "ns")));
    EXPECT_EQ(r.Header("Authorization"), absl::StrCat("Token ", kV3Token));
    EXPECT_EQ(r.HeaderCount("Authorization"), 1);
    EXPECT_EQ(r.Header("Content-Type"), "text/plain; charset=utf-8");
    EXPECT_EQ(r.Header("Content-Encoding"), "gzip");
    EXPECT_EQ(r.Header("Content-Length"), std::to_string(r.body.size()));
    EXPECT_EQ(r.decode_error, "");
    EXPECT_EQ(r.decoded_body, body);
  }
  ErrorAnswer DocumentedError(int status) override {
    auto error = [status](const json& body) {
      return ScriptedResponse::Json(status, body.dump());
    };
    switch (status) {
      case 400:
        return {error({{"error", "partial write of line protocol occurred"},
                       {"data",
                        {{{"original_line", "bad line"},
                          {"line_number", 2},
                          {"error_message", "No fields were provided"}}}}}),
                "partial write of line protocol occurred: line 2: No fields "
                "were provided"};
      case 401:
        return {error({{"error", "the request was not authenticated"},
                       {"data", nullptr}}),
                "not authenticated"};
      case 403:
        return {error({{"error", "access denied"}, {"data", nullptr}}),
                "access denied"};
      case 404:
        return {error({{"error", "database not found: senseops"}}),
                "database not found"};
      case 413:
        return {error({{"error", "request entity too large"}}), "too large"};
      case 422:
        return {error({{"error", "write of line protocol failed"},
                       {"data",
                        {{{"original_line", "m f=1i"},
                          {"line_number", 1},
                          {"error_message",
                           "invalid column type for column 'f'"}}}}}),
                "write of line protocol failed: line 1: invalid column type"};
      case 500:
        return {error({{"error", "internal error"}}), "internal error"};
      default:  // 429, 503
        return {ScriptedResponse::Bare(status), absl::StrCat("HTTP ", status)};
    }
  }
  bool integer_numbers() const override { return true; }

 private:
  FakeInfluxV3 fake_;
};

enum class Version { kV1 = 1, kV2 = 2, kV3 = 3 };

std::unique_ptr<Backend> MakeBackend(Version version) {
  switch (version) {
    case Version::kV1:
      return std::make_unique<V1Backend>();
    case Version::kV2:
      return std::make_unique<V2Backend>();
    case Version::kV3:
      break;
  }
  return std::make_unique<V3Backend>();
}

std::string VersionName(Version version) {
  return absl::StrCat("V", static_cast<int>(version));
}

// A destination name no earlier test of this process used.
std::string FreshDestination() {
  static std::atomic<int> next{0};
  return absl::StrCat("senseops_", next++);
}

// --- The contract, run against every writer. ---

class WriterContractTest : public ::testing::TestWithParam<Version> {
 protected:
  void SetUp() override {
    backend_ = MakeBackend(GetParam());
    ASSERT_TRUE(backend_->Start().ok());
    destination_ = FreshDestination();
  }

  std::unique_ptr<Backend> backend_;
  std::string destination_;
};

TEST_P(WriterContractTest, PrepareCreatesTheDestinationWhenMissing) {
  ASSERT_EQ(backend_->Listed(destination_), 0);
  std::unique_ptr<InfluxWriter> writer = backend_->Writer(destination_);
  absl::Status status = writer->Prepare();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(backend_->Listed(destination_), 1);
  if (backend_->CreateRequests() >= 0) {
    EXPECT_EQ(backend_->CreateRequests(), 1);
  }
}

TEST_P(WriterContractTest, PrepareIsIdempotentAndKeepsWhatIsStored) {
  std::unique_ptr<InfluxWriter> writer = backend_->Writer(destination_);
  ASSERT_TRUE(writer->Prepare().ok());
  const std::vector<std::string> lines =
      ExampleLines(backend_->integer_numbers());
  ASSERT_EQ(writer->Write(Body(lines)).kind, Kind::kOk);
  for (int i = 0; i < 2; ++i) {
    absl::Status status = writer->Prepare();
    ASSERT_TRUE(status.ok()) << status;
  }
  // A second writer (a restarted tracker) finds it ready too.
  absl::Status again = backend_->Writer(destination_)->Prepare();
  ASSERT_TRUE(again.ok()) << again;
  EXPECT_EQ(backend_->Listed(destination_), 1);
  if (backend_->CreateRequests() >= 0) {
    EXPECT_EQ(backend_->CreateRequests(), 1);
  }
  EXPECT_THAT(backend_->Stored(destination_), UnorderedElementsAreArray(lines));
}

TEST_P(WriterContractTest, HappyWriteStoresTheExactLines) {
  std::unique_ptr<InfluxWriter> writer = backend_->Writer(destination_);
  ASSERT_TRUE(writer->Prepare().ok());
  const std::vector<std::string> lines =
      ExampleLines(backend_->integer_numbers());
  const WriteResult result = writer->Write(Body(lines));
  EXPECT_EQ(result.kind, Kind::kOk) << result.message;
  EXPECT_EQ(result.http_status, 204);
  EXPECT_EQ(result.message, "");
  EXPECT_THAT(backend_->Stored(destination_), UnorderedElementsAreArray(lines));
  backend_->ExpectWriteRequest(destination_, Body(lines));
}

TEST_P(WriterContractTest, NumberTypesFollowTheVersion) {
  std::unique_ptr<InfluxWriter> writer = backend_->Writer(destination_);
  // Section 3: floats on 1.x, integers on 2.x and 3.x.
  EXPECT_EQ(writer->integer_numbers(), GetParam() != Version::kV1);
  EXPECT_THAT(
      writer->Describe(),
      HasSubstr(absl::StrCat("influxdb v", static_cast<int>(GetParam()))));
  EXPECT_THAT(writer->Describe(), HasSubstr(destination_));
}

TEST_P(WriterContractTest, EmptyWriteSendsNothing) {
  std::unique_ptr<InfluxWriter> writer =
      backend_->WriterAt(destination_, ClosedPort());
  EXPECT_EQ(writer->Write("").kind, Kind::kOk);
}

TEST_P(WriterContractTest, ConnectionRefusedIsRetryable) {
  std::unique_ptr<InfluxWriter> writer =
      backend_->WriterAt(destination_, ClosedPort());
  const WriteResult result =
      writer->Write(Body(ExampleLines(backend_->integer_numbers())));
  EXPECT_EQ(result.kind, Kind::kRetryable);
  EXPECT_EQ(result.http_status, 0);
  EXPECT_THAT(result.message, HasSubstr("onnect"));  // "Couldn't connect..."
  // Prepare reports the outage as an error, never as success.
  absl::Status status = writer->Prepare();
  EXPECT_FALSE(status.ok());
}

INSTANTIATE_TEST_SUITE_P(
    Versions, WriterContractTest,
    ::testing::Values(Version::kV1, Version::kV2, Version::kV3),
    [](const ::testing::TestParamInfo<Version>& param_info) {
      return VersionName(param_info.param);
    });

// --- Each documented error answer maps to its WriteResult kind. ---

struct ErrorCase {
  int status;
  Kind kind;
  bool retry_after;  // answered with Retry-After: 7
};

class WriterErrorContractTest
    : public ::testing::TestWithParam<std::tuple<Version, ErrorCase>> {};

TEST_P(WriterErrorContractTest, MapsTheAnswer) {
  const auto& [version, error_case] = GetParam();
  std::unique_ptr<Backend> backend = MakeBackend(version);
  ErrorAnswer answer = backend->DocumentedError(error_case.status);
  if (error_case.retry_after) {
    answer.response.headers.emplace_back("Retry-After", "7");
  }
  FakeHttpServer server(
      [&answer](const RecordedRequest&) { return answer.response; });
  ASSERT_TRUE(server.Start().ok());
  std::unique_ptr<InfluxWriter> writer =
      backend->WriterAt("senseops", server.port());

  const WriteResult result =
      writer->Write(Body(ExampleLines(backend->integer_numbers())));
  EXPECT_EQ(result.kind, error_case.kind);
  EXPECT_EQ(result.http_status, error_case.status);
  EXPECT_THAT(result.message, HasSubstr(answer.message));
  EXPECT_EQ(result.retry_after,
            error_case.retry_after ? absl::Seconds(7) : absl::ZeroDuration());
  // Writers never retry on their own: the pipeline decides.
  EXPECT_EQ(server.request_count(), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Answers, WriterErrorContractTest,
    ::testing::Combine(
        ::testing::Values(Version::kV1, Version::kV2, Version::kV3),
        ::testing::Values(ErrorCase{400, Kind::kBadPoints, false},
                          ErrorCase{401, Kind::kAuth, false},
                          ErrorCase{403, Kind::kAuth, false},
                          ErrorCase{404, Kind::kNotFound, false},
                          ErrorCase{413, Kind::kTooLarge, false},
                          ErrorCase{422, Kind::kBadPoints, false},
                          ErrorCase{429, Kind::kThrottled, true},
                          ErrorCase{503, Kind::kThrottled, true},
                          ErrorCase{500, Kind::kRetryable, false})),
    [](const ::testing::TestParamInfo<std::tuple<Version, ErrorCase>>&
           param_info) {
      return absl::StrCat(VersionName(std::get<0>(param_info.param)), "_HTTP",
                          std::get<1>(param_info.param).status);
    });

// --- A 400 that refuses the request itself drops no point. ---

struct RequestErrorCase {
  Version version;
  std::string body;  // the answer's body, as that version writes it
  Kind kind;
};

class RequestErrorTest : public ::testing::TestWithParam<RequestErrorCase> {};

TEST_P(RequestErrorTest, TellsRequestErrorsFromBadPoints) {
  const RequestErrorCase& c = GetParam();
  std::unique_ptr<Backend> backend = MakeBackend(c.version);
  FakeHttpServer server([&c](const RecordedRequest&) {
    return ScriptedResponse::Json(400, c.body);
  });
  ASSERT_TRUE(server.Start().ok());
  const WriteResult result =
      backend->WriterAt("senseops", server.port())
          ->Write(Body(ExampleLines(backend->integer_numbers())));
  EXPECT_EQ(result.kind, c.kind) << c.body;
  EXPECT_EQ(result.http_status, 400);
}

INSTANTIATE_TEST_SUITE_P(
    Bodies, RequestErrorTest,
    ::testing::Values(
        // 1.x (services/httpd/handler.go): request errors...
        RequestErrorCase{Version::kV1, R"({"error":"database is required"})",
                         Kind::kRequestRejected},
        RequestErrorCase{Version::kV1, R"({"error":"gzip: invalid header"})",
                         Kind::kRequestRejected},
        // ...and lines at fault.
        RequestErrorCase{Version::kV1,
                         R"({"error":"unable to parse 'x': missing fields"})",
                         Kind::kBadPoints},
        RequestErrorCase{
            Version::kV1,
            R"({"error":"partial write: field type conflict: input field )"
            R"("error_count" on measurement "butler_sos_errors" is )"
            R"(type integer, already exists as type float dropped=1"})",
            Kind::kBadPoints},
        // 2.x
        RequestErrorCase{Version::kV2,
                         R"({"code":"invalid","message":"invalid precision"})",
                         Kind::kRequestRejected},
        RequestErrorCase{
            Version::kV2,
            R"({"code":"invalid","message":"unable to parse 'x': bad"})",
            Kind::kBadPoints},
        // 3.x Core: invalid database name, no `data`...
        RequestErrorCase{
            Version::kV3,
            R"({"error":"invalid database name: contains invalid character"})",
            Kind::kRequestRejected},
        // ...lines at fault, listed in `data` (or named, on Cloud).
        RequestErrorCase{
            Version::kV3,
            R"({"error":"partial write of line protocol occurred","data":)"
            R"([{"original_line":"x","line_number":1,"error_message":"e"}]})",
            Kind::kBadPoints},
        RequestErrorCase{
            Version::kV3,
            R"({"message":"parsing failed for write_lp endpoint"})",
            Kind::kBadPoints}),
    [](const ::testing::TestParamInfo<RequestErrorCase>& param_info) {
      return absl::StrCat(VersionName(param_info.param.version), "_",
                          param_info.index);
    });

// --- 1.x: what the real influxd answers by itself. ---

class V1WriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(backend_.Start().ok());
    destination_ = FreshDestination();
  }
  V1Backend backend_;
  std::string destination_;
};

TEST_F(V1WriterTest, BadLineIsAPartialWriteAndTheRestIsStored) {
  std::unique_ptr<InfluxWriter> writer = backend_.Writer(destination_);
  ASSERT_TRUE(writer->Prepare().ok());
  std::vector<std::string> lines = ExampleLines(false);
  const std::string bad = "butler_sos_errors,error_type=HEALTH_API no_fields";
  const WriteResult result =
      writer->Write(Body({lines[0], bad, lines[1], lines[2]}));
  EXPECT_EQ(result.kind, Kind::kBadPoints);
  EXPECT_EQ(result.http_status, 400);
  EXPECT_THAT(result.message, HasSubstr("partial write"));
  EXPECT_THAT(backend_.Stored(destination_), UnorderedElementsAreArray(lines));
}

TEST_F(V1WriterTest, MissingDatabaseIsNotFoundUntilPrepared) {
  std::unique_ptr<InfluxWriter> writer = backend_.Writer(destination_);
  const std::string body = Body(ExampleLines(false));
  const WriteResult before = writer->Write(body);
  EXPECT_EQ(before.kind, Kind::kNotFound) << before.message;
  EXPECT_EQ(before.http_status, 404);
  ASSERT_TRUE(writer->Prepare().ok());
  EXPECT_EQ(writer->Write(body).kind, Kind::kOk);
}

// Issue 9 §1 (a): a database that exists with only autogen is not altered,
// and the points go to its default policy, as Butler SOS's do.
TEST_F(V1WriterTest, ExistingDatabaseIsLeftAsItIs) {
  InfluxdProcess* influxd = SharedInfluxd();
  ASSERT_NE(influxd, nullptr);
  ASSERT_TRUE(
      influxd->Query(absl::StrCat("CREATE DATABASE \"", destination_, "\""))
          .ok());
  std::unique_ptr<InfluxWriter> writer = backend_.Writer(destination_);
  absl::Status status = writer->Prepare();
  ASSERT_TRUE(status.ok()) << status;
  absl::StatusOr<std::string> policies = influxd->Query(
      absl::StrCat("SHOW RETENTION POLICIES ON \"", destination_, "\""));
  ASSERT_TRUE(policies.ok());
  EXPECT_EQ(CountInFirstColumn(*policies, "butler_rp"), 0) << *policies;
  EXPECT_EQ(CountInFirstColumn(*policies, "autogen"), 1) << *policies;
  const std::vector<std::string> lines = ExampleLines(false);
  ASSERT_EQ(writer->Write(Body(lines)).kind, Kind::kOk);
  absl::StatusOr<std::string> in_autogen = influxd->Query(
      "SELECT * FROM \"autogen\".butler_sos_errors GROUP BY *", destination_);
  ASSERT_TRUE(in_autogen.ok());
  EXPECT_THAT(RowsAsLines(*in_autogen), UnorderedElementsAreArray(lines));
}

TEST_F(V1WriterTest, MissingDatabaseGetsThePolicyAsItsDefault) {
  InfluxdProcess* influxd = SharedInfluxd();
  ASSERT_NE(influxd, nullptr);
  InfluxV1Settings settings;
  settings.host = kHost;
  settings.port = influxd->http_port();
  settings.database = destination_;
  settings.retention_policy_name = "10d";
  settings.retention_policy_duration = "30days";
  ASSERT_TRUE(MakeInfluxV1Writer(settings)->Prepare().ok());
  absl::StatusOr<std::string> policies = influxd->Query(
      absl::StrCat("SHOW RETENTION POLICIES ON \"", destination_, "\""));
  ASSERT_TRUE(policies.ok());
  // name, duration, shardGroupDuration, replicaN, default
  EXPECT_THAT(*policies, HasSubstr(R"(["10d","720h0m0s","24h0m0s",1,true])"));
}

// --- 2.x: the management requests, byte for byte. ---

class V2WriterTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(backend_.Start().ok()); }
  std::vector<RecordedRequest> Requests() {
    return backend_.fake().server().requests();
  }
  V2Backend backend_;
};

TEST_F(V2WriterTest, PrepareLooksUpThenCreatesTheBucketAsDocumented) {
  std::unique_ptr<InfluxWriter> writer = backend_.Writer("senseops");
  ASSERT_TRUE(writer->Prepare().ok());
  const std::vector<RecordedRequest> requests = Requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].target, "/api/v2/buckets?name=senseops&org=butler-org");
  EXPECT_EQ(requests[1].method, "GET");
  EXPECT_EQ(requests[1].target, "/api/v2/orgs?org=butler-org");
  EXPECT_EQ(requests[2].method, "POST");
  EXPECT_EQ(requests[2].target, "/api/v2/buckets");
  EXPECT_EQ(requests[2].Header("Content-Type"), "application/json");
  for (const RecordedRequest& r : requests) {
    EXPECT_EQ(r.Header("Authorization"), absl::StrCat("Token ", kV2Token));
  }
  EXPECT_EQ(json::parse(requests[2].body, nullptr, false),
            json::parse(R"({"orgID": "0a1b2c3d4e5f6071", "name": "senseops",
                            "description": "Butler SOS metrics",
                            "retentionRules": [{"type": "expire",
                                                "everySeconds": 864000}]})"));
}

TEST_F(V2WriterTest, ZeroRetentionCreatesABucketThatNeverExpires) {
  InfluxV2Settings settings =
      V2Backend::Settings("forever", backend_.fake().server().port());
  settings.retention_duration = "0";
  ASSERT_TRUE(MakeInfluxV2Writer(settings)->Prepare().ok());
  EXPECT_EQ(backend_.fake().Bucket("forever")["retentionRules"], json::array());
}

TEST_F(V2WriterTest, AnExistingBucketIsLeftAlone) {
  backend_.fake().AddBucket("senseops");
  ASSERT_TRUE(backend_.Writer("senseops")->Prepare().ok());
  ASSERT_EQ(Requests().size(), 1u);
  EXPECT_EQ(Requests()[0].path(), "/api/v2/buckets");
}

TEST_F(V2WriterTest, UnknownOrganizationIsLoggedAndTheWriteDecides) {
  InfluxV2Settings settings =
      V2Backend::Settings("senseops", backend_.fake().server().port());
  settings.org = "no such org";
  std::unique_ptr<InfluxWriter> writer = MakeInfluxV2Writer(settings);
  absl::Status status = writer->Prepare();
  EXPECT_TRUE(status.ok()) << status;
  // Spaces in names are percent-encoded in queries.
  EXPECT_EQ(Requests()[0].target,
            "/api/v2/buckets?name=senseops&org=no%20such%20org");
  EXPECT_EQ(backend_.fake().server().CountRequests("POST", "/api/v2/buckets"),
            0);
  EXPECT_EQ(writer->Write(Body(ExampleLines(true))).kind, Kind::kNotFound);
}

TEST_F(V2WriterTest, WrongTokenPreparesAndTheWriteSaysAuth) {
  InfluxV2Settings settings =
      V2Backend::Settings("senseops", backend_.fake().server().port());
  settings.token = "wrong";
  std::unique_ptr<InfluxWriter> writer = MakeInfluxV2Writer(settings);
  absl::Status status = writer->Prepare();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_FALSE(backend_.fake().HasBucket("senseops"));
  const WriteResult result = writer->Write(Body(ExampleLines(true)));
  EXPECT_EQ(result.kind, Kind::kAuth);
  EXPECT_THAT(result.message, HasSubstr("unauthorized access"));
}

// A token allowed only to write its bucket: 2.x answers the lookups with
// empty lists and refuses the create; Butler SOS writes fine with it.
TEST_F(V2WriterTest, WriteOnlyTokenWrites) {
  std::vector<std::string> stored;
  absl::Mutex mu;
  FakeHttpServer server([&](const RecordedRequest& r) {
    if (r.method == "GET" && r.path() == "/api/v2/buckets") {
      return ScriptedResponse::Json(200, R"({"links":{},"buckets":[]})");
    }
    if (r.method == "GET" && r.path() == "/api/v2/orgs") {
      return ScriptedResponse::Json(200, R"({"links":{},"orgs":[]})");
    }
    if (r.method == "POST" && r.path() == "/api/v2/write") {
      absl::MutexLock lock(&mu);
      stored.push_back(r.decoded_body);
      return ScriptedResponse::Bare(204);
    }
    return ScriptedResponse::Json(
        403, R"({"code":"forbidden","message":"insufficient permissions"})");
  });
  ASSERT_TRUE(server.Start().ok());
  std::unique_ptr<InfluxWriter> writer =
      MakeInfluxV2Writer(V2Backend::Settings("senseops", server.port()));
  absl::Status status = writer->Prepare();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(server.CountRequests("POST", "/api/v2/buckets"), 0);
  const std::string body = Body(ExampleLines(true));
  EXPECT_EQ(writer->Write(body).kind, Kind::kOk);
  absl::MutexLock lock(&mu);
  EXPECT_THAT(stored, ElementsAre(body));
}

TEST_F(V2WriterTest, RefusedCreateIsLoggedAndTheWriteDecides) {
  FakeHttpServer server([](const RecordedRequest& r) {
    if (r.method == "GET" && r.path() == "/api/v2/buckets") {
      return ScriptedResponse::Json(200, R"({"buckets":[]})");
    }
    if (r.path() == "/api/v2/orgs") {
      return ScriptedResponse::Json(
          200, R"({"orgs":[{"id":"0a1b2c3d4e5f6071","name":"butler-org"}]})");
    }
    return ScriptedResponse::Json(
        403, R"({"code":"forbidden","message":"write:buckets is required"})");
  });
  ASSERT_TRUE(server.Start().ok());
  absl::Status status =
      MakeInfluxV2Writer(V2Backend::Settings("senseops", server.port()))
          ->Prepare();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(server.CountRequests("POST", "/api/v2/buckets"), 1);
}

TEST_F(V2WriterTest, ServerErrorsAreRetriedNotWrittenThrough) {
  FakeHttpServer server([](const RecordedRequest&) {
    return ScriptedResponse::Json(500, R"({"message":"internal error"})");
  });
  ASSERT_TRUE(server.Start().ok());
  absl::Status status =
      MakeInfluxV2Writer(V2Backend::Settings("senseops", server.port()))
          ->Prepare();
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
}

TEST_F(V2WriterTest, RetentionWordsAreSentAsSeconds) {
  InfluxV2Settings settings =
      V2Backend::Settings("yearly", backend_.fake().server().port());
  settings.retention_duration = "1y";
  ASSERT_TRUE(MakeInfluxV2Writer(settings)->Prepare().ok());
  EXPECT_EQ(backend_.fake().Bucket("yearly")["retentionRules"],
            json::parse(R"([{"type":"expire","everySeconds":31536000}])"));
  settings.bucket = "forever";
  settings.retention_duration = "INF";
  ASSERT_TRUE(MakeInfluxV2Writer(settings)->Prepare().ok());
  EXPECT_EQ(backend_.fake().Bucket("forever")["retentionRules"], json::array());
  // Under the 2.x minimum of one hour: a new bucket gets the minimum.
  settings.bucket = "brief";
  settings.retention_duration = "30m";
  ASSERT_TRUE(MakeInfluxV2Writer(settings)->Prepare().ok());
  EXPECT_EQ(backend_.fake().Bucket("brief")["retentionRules"],
            json::parse(R"([{"type":"expire","everySeconds":3600}])"));
}

// Where the points go is said once at info level, not again each time a
// "not found" write makes the pipeline prepare again.
TEST_F(V2WriterTest, WherePointsGoIsLoggedOnce) {
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("t", sink));
  spdlog::set_level(spdlog::level::info);
  backend_.fake().AddBucket("senseops");
  std::unique_ptr<InfluxWriter> writer = backend_.Writer("senseops");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(writer->Prepare().ok());
  spdlog::set_default_logger(previous);
  const std::string text = captured.str();
  int times = 0;
  for (size_t at = text.find("points go there"); at != std::string::npos;
       at = text.find("points go there", at + 1)) {
    ++times;
  }
  EXPECT_EQ(times, 1) << text;
}

TEST_F(V2WriterTest, RetentionIsNeverAppliedToAnExistingBucket) {
  backend_.fake().AddBucket("senseops");                     // no expiry
  ASSERT_TRUE(backend_.Writer("senseops")->Prepare().ok());  // 10d config
  EXPECT_EQ(backend_.fake().Bucket("senseops")["retentionRules"],
            json::array());
  for (const RecordedRequest& r : Requests()) EXPECT_EQ(r.method, "GET");
}

TEST_F(V2WriterTest, BucketCreatedMeanwhileCountsAsPrepared) {
  // Another tracker creates the bucket between our lookup and our create:
  // the documented 422 conflict answer.
  FakeHttpServer server([](const RecordedRequest& r) {
    if (r.path() == "/api/v2/buckets" && r.method == "GET") {
      return ScriptedResponse::Json(200, R"({"buckets":[]})");
    }
    if (r.path() == "/api/v2/orgs") {
      return ScriptedResponse::Json(
          200, R"({"orgs":[{"id":"0a1b2c3d4e5f6071","name":"butler-org"}]})");
    }
    return ScriptedResponse::Json(
        422, R"({"code":"conflict",)"
             R"("message":"bucket with name senseops already exists"})");
  });
  ASSERT_TRUE(server.Start().ok());
  absl::Status status =
      MakeInfluxV2Writer(V2Backend::Settings("senseops", server.port()))
          ->Prepare();
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(V2WriterTest, WriteIntoAMissingBucketIsNotFound) {
  const WriteResult result =
      backend_.Writer("senseops")->Write(Body(ExampleLines(true)));
  EXPECT_EQ(result.kind, Kind::kNotFound);
  EXPECT_THAT(result.message, HasSubstr("bucket \"senseops\" not found"));
}

// --- 3.x: the management requests and its particulars. ---

class V3WriterTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(backend_.Start().ok()); }
  std::vector<RecordedRequest> Requests() {
    return backend_.fake().server().requests();
  }
  V3Backend backend_;
};

TEST_F(V3WriterTest, PrepareListsThenCreatesTheDatabaseAsDocumented) {
  ASSERT_TRUE(backend_.Writer("senseops")->Prepare().ok());
  const std::vector<RecordedRequest> requests = Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].target, "/api/v3/configure/database?format=json");
  EXPECT_EQ(requests[1].method, "POST");
  EXPECT_EQ(requests[1].target, "/api/v3/configure/database");
  EXPECT_EQ(requests[1].Header("Content-Type"), "application/json");
  EXPECT_EQ(json::parse(requests[1].body, nullptr, false),
            json::parse(R"({"db": "senseops", "retention_period": "10d"})"));
  for (const RecordedRequest& r : requests) {
    EXPECT_EQ(r.Header("Authorization"), absl::StrCat("Bearer ", kV3Token));
  }
  EXPECT_EQ(backend_.fake().Retention("senseops"), "10d");
}

TEST_F(V3WriterTest, NoRetentionSendsOnlyTheName) {
  InfluxV3Settings settings =
      V3Backend::Settings("senseops", backend_.fake().server().port());
  settings.retention_duration = "";
  ASSERT_TRUE(MakeInfluxV3Writer(settings)->Prepare().ok());
  EXPECT_EQ(json::parse(Requests().back().body, nullptr, false),
            json::parse(R"({"db": "senseops"})"));
}

TEST_F(V3WriterTest, ReadsEveryDocumentedListShape) {
  for (FakeInfluxV3::ListShape shape :
       {FakeInfluxV3::ListShape::kDatabasesObject,
        FakeInfluxV3::ListShape::kDbObjects,
        FakeInfluxV3::ListShape::kIoxObjects}) {
    backend_.fake().set_list_shape(shape);
    backend_.fake().AddDatabase("_internal");
    backend_.fake().AddDatabase("senseops");
    backend_.fake().server().ClearRequests();
    ASSERT_TRUE(backend_.Writer("senseops")->Prepare().ok());
    EXPECT_EQ(Requests().size(), 1u) << "shape " << static_cast<int>(shape);
  }
}

TEST_F(V3WriterTest, DatabaseCreatedMeanwhileCountsAsPrepared) {
  FakeHttpServer server([](const RecordedRequest& r) {
    if (r.method == "GET") return ScriptedResponse::Json(200, "[]");
    return ScriptedResponse::Json(
        409,
        R"({"error":"attempted to create a resource that already exists"})");
  });
  ASSERT_TRUE(server.Start().ok());
  absl::Status status =
      MakeInfluxV3Writer(V3Backend::Settings("senseops", server.port()))
          ->Prepare();
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(V3WriterTest, WrongTokenPreparesAndTheWriteSaysAuth) {
  InfluxV3Settings settings =
      V3Backend::Settings("senseops", backend_.fake().server().port());
  settings.token = "wrong";
  std::unique_ptr<InfluxWriter> writer = MakeInfluxV3Writer(settings);
  absl::Status status = writer->Prepare();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(writer->Write("m f=1i 1").kind, Kind::kAuth);
}

// Cloud Serverless, Dedicated and Clustered: no /api/v3 at all; the
// database is made by its administrator, and the v2-compatible write works.
TEST_F(V3WriterTest, ProductWithoutV3ApiPreparesAndWrites) {
  backend_.fake().set_v3_api(false);
  std::unique_ptr<InfluxWriter> writer = backend_.Writer("senseops");
  absl::Status status = writer->Prepare();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(Requests().size(), 2u);  // list (404), create (404)
  const std::string body = Body(ExampleLines(true));
  EXPECT_EQ(writer->Write(body).kind, Kind::kOk);
  EXPECT_THAT(backend_.fake().Stored("senseops"),
              UnorderedElementsAreArray(ExampleLines(true)));
}

TEST_F(V3WriterTest, RetentionWordsAreSentInInfluxQlForm) {
  InfluxV3Settings settings =
      V3Backend::Settings("senseops", backend_.fake().server().port());
  settings.retention_duration = "1 year";
  ASSERT_TRUE(MakeInfluxV3Writer(settings)->Prepare().ok());
  EXPECT_EQ(backend_.fake().Retention("senseops"), "365d");
}

TEST_F(V3WriterTest, RejectedLinesOfAWholeBatchAreNamed) {
  // accept_partial=false: `data` is one object, not an array.
  FakeHttpServer server([](const RecordedRequest&) {
    return ScriptedResponse::Json(
        400, R"({"error":"parsing failed for write_lp endpoint","data":)"
             R"({"original_line":"x","line_number":1,)"
             R"("error_message":"No fields were provided"}})");
  });
  ASSERT_TRUE(server.Start().ok());
  const WriteResult result =
      MakeInfluxV3Writer(V3Backend::Settings("senseops", server.port()))
          ->Write("x");
  EXPECT_EQ(result.kind, Kind::kBadPoints);
  EXPECT_THAT(result.message, HasSubstr("line 1: No fields were provided"));
}

TEST_F(V3WriterTest, EmptyTokenSendsNoAuthorization) {
  InfluxV3Settings settings =
      V3Backend::Settings("senseops", backend_.fake().server().port());
  settings.token = "";
  MakeInfluxV3Writer(settings)->Write("m f=1i 1");
  ASSERT_EQ(Requests().size(), 1u);
  EXPECT_EQ(Requests()[0].HeaderCount("Authorization"), 0);
}

TEST_F(V3WriterTest, WriteTimeoutBoundsTheRequest) {
  // The server answers only after the client has long given up; no timing
  // is asserted beyond "the writer did not wait for it".
  absl::Notification release;
  FakeHttpServer server([&release](const RecordedRequest&) {
    release.WaitForNotificationWithTimeout(absl::Seconds(10));
    return ScriptedResponse::Bare(204);
  });
  ASSERT_TRUE(server.Start().ok());
  InfluxV3Settings settings = V3Backend::Settings("senseops", server.port());
  settings.write_timeout = absl::Milliseconds(200);
  const WriteResult result = MakeInfluxV3Writer(settings)->Write("m f=1i 1");
  release.Notify();
  EXPECT_EQ(result.kind, Kind::kRetryable);
  EXPECT_THAT(absl::AsciiStrToLower(result.message), HasSubstr("timeout"));
}

TEST_F(V3WriterTest, ManyRejectedLinesAreSummarized) {
  json data = json::array();
  for (int i = 1; i <= 8; ++i) {
    data.push_back({{"original_line", "x"},
                    {"line_number", i},
                    {"error_message", absl::StrCat("bad ", i)}});
  }
  FakeHttpServer server([&data](const RecordedRequest&) {
    return ScriptedResponse::Json(
        400, json{{"error", "partial write of line protocol occurred"},
                  {"data", data}}
                 .dump());
  });
  ASSERT_TRUE(server.Start().ok());
  const WriteResult result =
      MakeInfluxV3Writer(V3Backend::Settings("senseops", server.port()))
          ->Write("x");
  EXPECT_EQ(result.kind, Kind::kBadPoints);
  EXPECT_THAT(result.message, HasSubstr("line 5: bad 5; 3 more"));
  EXPECT_THAT(result.message, ::testing::Not(HasSubstr("line 6")));
}

// --- Golden files: the exact request each writer sends for section 3. ---

// The request as text: request line, headers as sent except those that
// vary with the machine (Host's port, curl's Accept-Encoding list, the
// compressed Content-Length, asserted above), a blank line, the gunzipped
// body and a newline.
std::string RenderRequest(const RecordedRequest& r) {
  std::string text =
      absl::StrCat(r.method, " ", r.target, " ", r.version, "\n");
  for (const auto& [name, value] : r.headers) {
    if (absl::EqualsIgnoreCase(name, "Host") ||
        absl::EqualsIgnoreCase(name, "Accept-Encoding") ||
        absl::EqualsIgnoreCase(name, "Content-Length")) {
      continue;
    }
    absl::StrAppend(&text, name, ": ", value, "\n");
  }
  absl::StrAppend(&text, "\n", r.decoded_body, "\n");
  return text;
}

// The golden file without its leading '#' comment lines.
std::string ReadGolden(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.is_open()) << "cannot open " << path;
  std::string line, text;
  bool header = true;
  while (std::getline(in, line)) {
    if (header && absl::StartsWith(line, "#")) continue;
    header = false;
    absl::StrAppend(&text, line, "\n");
  }
  return text;
}

TEST(WriteRequestGoldenTest, InfluxV2) {
  V2Backend backend;
  ASSERT_TRUE(backend.Start().ok());
  backend.fake().AddBucket("senseops");
  const WriteResult result =
      backend.Writer("senseops")->Write(Body(ExampleLines(true)));
  ASSERT_EQ(result.kind, Kind::kOk) << result.message;
  const std::vector<RecordedRequest> requests =
      backend.fake().server().requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(RenderRequest(requests[0]),
            ReadGolden(QFP_SOURCE_DIR "/tests/golden/write_request_v2.txt"));
}

TEST(WriteRequestGoldenTest, InfluxV3) {
  V3Backend backend;
  ASSERT_TRUE(backend.Start().ok());
  const WriteResult result =
      backend.Writer("senseops")->Write(Body(ExampleLines(true)));
  ASSERT_EQ(result.kind, Kind::kOk) << result.message;
  const std::vector<RecordedRequest> requests =
      backend.fake().server().requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(RenderRequest(requests[0]),
            ReadGolden(QFP_SOURCE_DIR "/tests/golden/write_request_v3.txt"));
}

// --- The factory. ---

TEST(MakeInfluxWriterTest, ChoosesByVersion) {
  TrackerConfig config;
  config.v1.host = config.v2.host = config.v3.host = kHost;
  config.v1.database = "db";
  config.v2 = V2Backend::Settings("bucket", 8086);
  config.v3 = V3Backend::Settings("db3", 8181);
  for (int version : {1, 2, 3}) {
    config.influxdb_version = version;
    absl::StatusOr<std::unique_ptr<InfluxWriter>> writer =
        MakeInfluxWriter(config);
    ASSERT_TRUE(writer.ok()) << writer.status();
    EXPECT_THAT((*writer)->Describe(),
                HasSubstr(absl::StrCat("influxdb v", version, " ")));
    EXPECT_EQ((*writer)->integer_numbers(), version != 1);
  }
  config.influxdb_version = 4;
  EXPECT_TRUE(absl::IsInvalidArgument(MakeInfluxWriter(config).status()));
}

TEST(MakeInfluxWriterTest, RefusesUnusableSettings) {
  TrackerConfig config;
  config.influxdb_version = 2;
  config.v2 = V2Backend::Settings("bucket", 8086);
  config.v2.token = "";
  absl::Status status = MakeInfluxWriter(config).status();
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("influxdbConfig.v2Config.token is empty"));
  config.v2 = V2Backend::Settings("bucket", 8086);
  config.v2.retention_duration = "thirty";
  status = MakeInfluxWriter(config).status();
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("v2Config.retentionDuration"));
  // Under InfluxDB's one hour is raised for a bucket, not refused: Butler
  // SOS accepts it (it never sends it).
  config.v2.retention_duration = "30m";
  EXPECT_TRUE(MakeInfluxWriter(config).ok());

  config.influxdb_version = 3;
  config.v3 = V3Backend::Settings("db", 8181);
  config.v3.retention_duration = "ten days";
  status = MakeInfluxWriter(config).status();
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("influxdbConfig.v3Config.retentionDuration"));
  config.v3 = V3Backend::Settings("", 8181);
  EXPECT_THAT(std::string(MakeInfluxWriter(config).status().message()),
              HasSubstr("v3Config.database is empty"));
}

// --- The settings helpers of influx_api.h. ---

TEST(InfluxApiHelpersTest, BaseUrl) {
  EXPECT_EQ(InfluxBaseUrl("influx.example.com", 8086),
            "http://influx.example.com:8086");
  EXPECT_EQ(InfluxBaseUrl("::1", 8181), "http://[::1]:8181");
  EXPECT_EQ(InfluxBaseUrl("[::1]", 8181), "http://[::1]:8181");
}

}  // namespace
}  // namespace qfp::tracker
