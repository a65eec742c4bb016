#include "tracker-service/line_protocol.h"

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/influxd_process.h"
#include "tracker-service/influx_v1_writer.h"

namespace qfp::tracker {
namespace {

using ::testing::HasSubstr;

struct GoldenCase {
  const char* name;  // test name suffix
  Point point;
  const char* line;
};

Point P(std::string measurement,
        std::vector<std::pair<std::string, std::string>> tags,
        std::vector<std::pair<std::string, FieldValue>> fields,
        int64_t timestamp_ns = 1700000000000000000) {
  return Point{std::move(measurement), std::move(tags), std::move(fields),
               timestamp_ns};
}

// Field value helpers: `FieldValue(1)` would be ambiguous.
FieldValue F(double v) { return FieldValue(v); }
FieldValue I(int64_t v) { return FieldValue(v); }
FieldValue S(std::string v) { return FieldValue(std::move(v)); }
FieldValue B(bool v) { return FieldValue(v); }

// The expected lines are raw strings: what is shown is exactly what InfluxDB
// receives. Every expectation with a backslash was also written to
// InfluxDB 1.6.7 and read back as the input value.
std::vector<GoldenCase> GoldenCases() {
  return {
      {"Minimal", P("m", {}, {{"f", F(1)}}, 0), R"(m f=1 0)"},
      {"TagsSortedByKey",
       P("m", {{"zone", "b"}, {"app", "a"}, {"Host", "h"}}, {{"f", F(1)}}),
       R"(m,Host=h,app=a,zone=b f=1 1700000000000000000)"},
      {"EmptyTagValueDropped",
       P("m", {{"a", ""}, {"b", "x"}, {"c", ""}}, {{"f", F(1)}}),
       R"(m,b=x f=1 1700000000000000000)"},
      {"AllTagsEmpty", P("m", {{"a", ""}}, {{"f", F(1)}}),
       R"(m f=1 1700000000000000000)"},
      {"MeasurementEscapesCommaAndSpaceOnly",
       P("my meas,x=y\"z", {}, {{"f", F(1)}}),
       R"(my\ meas\,x=y"z f=1 1700000000000000000)"},
      {"TagKeyAndValueEscapes",
       P("m", {{"a key,=", "a value, with=all"}}, {{"f", F(1)}}),
       R"(m,a\ key\,\==a\ value\,\ with\=all f=1 1700000000000000000)"},
      {"FieldKeyEscapes", P("m", {}, {{"a b,c=d", F(1)}}),
       R"(m a\ b\,c\=d=1 1700000000000000000)"},
      {"ServerNameWithSpaces",
       P("butler_sos_errors", {{"server_name", "sense http404 east"}},
         {{"error_count", F(1)}}),
       R"(butler_sos_errors,server_name=sense\ http404\ east error_count=1 1700000000000000000)"},
      {"StringFieldEscapesQuoteAndBackslash",
       P("m", {}, {{"s", S(R"(say "hi" from C:\dir\)")}}),
       R"(m s="say \"hi\" from C:\\dir\\" 1700000000000000000)"},
      {"StringFieldKeepsCommaSpaceEquals", P("m", {}, {{"s", S("a, b=c")}}),
       R"(m s="a, b=c" 1700000000000000000)"},
      {"EmptyStringField", P("m", {}, {{"s", S("")}}),
       R"(m s="" 1700000000000000000)"},
      {"BackslashInTagKeptAsIs", P("m", {{"path", R"(C:\dir)"}}, {{"f", F(1)}}),
       R"(m,path=C:\dir f=1 1700000000000000000)"},
      {"BackslashBeforeEscapedChar", P("m", {{"t", R"(a\,b)"}}, {{"f", F(1)}}),
       R"(m,t=a\\,b f=1 1700000000000000000)"},
      {"TrailingBackslashDroppedFromNames",
       P(R"(m\)", {{R"(k\)", R"(C:\\)"}}, {{R"(f\)", F(1)}}),
       R"(m,k=C: f=1 1700000000000000000)"},
      {"TagOfOnlyBackslashesDropped", P("m", {{"t", R"(\\)"}}, {{"f", F(1)}}),
       R"(m f=1 1700000000000000000)"},
      {"NewlineAndCrBecomeSpaces",
       P("me\nas", {{"ta\rg", "line1\nline2\r\n"}},
         {{"fi\neld", F(1)}, {"s", S("a\nb\r\nc")}}),
       R"(me\ as,ta\ g=line1\ line2\ \  fi\ eld=1,s="a b  c" 1700000000000000000)"},
      {"NewlineAfterBackslashInTag", P("m", {{"t", "a\\\n"}}, {{"f", F(1)}}),
       R"(m,t=a\\  f=1 1700000000000000000)"},
      {"Utf8PassesThrough",
       P("mätning", {{"stad", "Göteborg"}, {"emoji", "🚀 go"}},
         {{"fält", S("Malmö 🚀")}}),
       R"(mätning,emoji=🚀\ go,stad=Göteborg fält="Malmö 🚀" 1700000000000000000)"},
      {"TabPassesThrough", P("m", {{"t", "a\tb"}}, {{"f", F(1)}}),
       "m,t=a\tb f=1 1700000000000000000"},
      {"FloatOne", P("m", {}, {{"f", F(1.0)}}), R"(m f=1 1700000000000000000)"},
      {"FloatTenth", P("m", {}, {{"f", F(0.1)}}),
       R"(m f=0.1 1700000000000000000)"},
      {"FloatSumIsShortestRoundTrip", P("m", {}, {{"f", F(0.1 + 0.2)}}),
       R"(m f=0.30000000000000004 1700000000000000000)"},
      {"FloatBig", P("m", {}, {{"f", F(1e21)}}),
       R"(m f=1e+21 1700000000000000000)"},
      {"FloatSmall", P("m", {}, {{"f", F(1e-7)}}),
       R"(m f=1e-07 1700000000000000000)"},
      {"FloatNegative", P("m", {}, {{"f", F(-2.5)}}),
       R"(m f=-2.5 1700000000000000000)"},
      {"FloatNegativeZero", P("m", {}, {{"f", F(-0.0)}}),
       R"(m f=-0 1700000000000000000)"},
      {"FloatWholeNumber", P("m", {}, {{"f", F(5000)}}),
       R"(m f=5000 1700000000000000000)"},
      {"FloatMax", P("m", {}, {{"f", F(std::numeric_limits<double>::max())}}),
       R"(m f=1.7976931348623157e+308 1700000000000000000)"},
      {"Integer", P("m", {}, {{"i", I(1)}}), R"(m i=1i 1700000000000000000)"},
      {"IntegerNegative", P("m", {}, {{"i", I(-42)}}),
       R"(m i=-42i 1700000000000000000)"},
      {"IntegerLimits",
       P("m", {},
         {{"max", I(std::numeric_limits<int64_t>::max())},
          {"min", I(std::numeric_limits<int64_t>::min())}}),
       R"(m max=9223372036854775807i,min=-9223372036854775808i 1700000000000000000)"},
      {"Bools", P("m", {}, {{"t", B(true)}, {"f", B(false)}}),
       R"(m t=true,f=false 1700000000000000000)"},
      {"FieldsKeepTheirOrder",
       P("m", {}, {{"z", F(1)}, {"a", I(2)}, {"m", S("x")}}),
       R"(m z=1,a=2i,m="x" 1700000000000000000)"},
      {"NegativeTimestamp", P("m", {}, {{"f", F(1)}}, -1), R"(m f=1 -1)"},
  };
}

class LineProtocolGoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(LineProtocolGoldenTest, EncodesExactly) {
  absl::StatusOr<std::string> line = EncodeLine(GetParam().point);
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(*line, GetParam().line);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LineProtocolGoldenTest, ::testing::ValuesIn(GoldenCases()),
    [](const ::testing::TestParamInfo<GoldenCase>& case_info) {
      return std::string(case_info.param.name);
    });

struct ErrorCase {
  const char* name;
  Point point;
  const char* message_part;  // what the message must name
};

std::vector<ErrorCase> ErrorCases() {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  return {
      {"EmptyMeasurement", P("", {}, {{"f", F(1)}}), "empty measurement"},
      {"MeasurementOnlyBackslash", P(R"(\)", {}, {{"f", F(1)}}),
       "empty measurement"},
      {"MeasurementStartsWithHash", P("#m", {}, {{"f", F(1)}}),
       "\"#m\" starts with '#'"},
      {"NoFields", P("m", {{"t", "v"}}, {}), "\"m\" has no fields"},
      {"EmptyTagKey", P("m", {{"", "v"}}, {{"f", F(1)}}), "empty tag key"},
      {"EmptyTagKeyWithEmptyValue", P("m", {{"", ""}}, {{"f", F(1)}}),
       "empty tag key"},
      {"EmptyFieldKey", P("m", {}, {{"", F(1)}}), "empty field key"},
      {"DuplicateTagKey", P("m", {{"t", "1"}, {"t", "2"}}, {{"f", F(1)}}),
       "duplicate tag key \"t\""},
      {"DuplicateTagKeyAfterNewlineReplaced",
       P("m", {{"a b", "1"}, {"a\nb", "2"}}, {{"f", F(1)}}),
       "duplicate tag key \"a b\""},
      {"DuplicateFieldKey", P("m", {}, {{"f", F(1)}, {"f", I(2)}}),
       "duplicate field key \"f\""},
      // InfluxDB 1.x would store another name, or a series no query finds.
      {"MeasurementBackslashBeforeSpace", P(R"(m\ x)", {}, {{"f", F(1)}}),
       R"(measurement "m\ x" has a backslash before)"},
      {"MeasurementBackslashBeforeEquals", P(R"(m\=x)", {}, {{"f", F(1)}}),
       R"(measurement "m\=x" has a backslash before)"},
      {"MeasurementBackslashBeforeQuote", P(R"(m\"x)", {}, {{"f", F(1)}}),
       R"(measurement "m\"x" has a backslash before)"},
      {"MeasurementBackslashBeforeLineBreak", P("m\\\nx", {}, {{"f", F(1)}}),
       "has a backslash before"},
      {"FieldKeyBackslashBeforeComma", P("m", {}, {{R"(a\,b)", F(1)}}),
       R"(field key "a\,b" in measurement "m" has a backslash before)"},
      {"FieldKeyBackslashBeforeQuote", P("m", {}, {{R"(a\\"b)", F(1)}}),
       R"(field key "a\\"b" in measurement "m" has a backslash before)"},
      {"NaN", P("m", {}, {{"f", F(nan)}}), "field \"f\""},
      {"PositiveInfinity", P("m", {}, {{"f", F(inf)}}), "not a finite number"},
      {"NegativeInfinity", P("m", {}, {{"g", F(1)}, {"f", F(-inf)}}),
       "field \"f\" in measurement \"m\""},
  };
}

class LineProtocolErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(LineProtocolErrorTest, IsInvalidArgument) {
  absl::StatusOr<std::string> line = EncodeLine(GetParam().point);
  ASSERT_FALSE(line.ok()) << "encoded as: " << *line;
  EXPECT_EQ(line.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(line.status().message()),
              HasSubstr(GetParam().message_part));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LineProtocolErrorTest, ::testing::ValuesIn(ErrorCases()),
    [](const ::testing::TestParamInfo<ErrorCase>& case_info) {
      return std::string(case_info.param.name);
    });

// The shortest form must still read back as the same double.
TEST(LineProtocolFloatTest, RoundTripsExactly) {
  const std::vector<double> values = {
      1.0 / 3,       2.0 / 3, 0.1,     1e-300, 5e-324,
      123456789.125, -1e-5,   6.02e23, 2.5e15, 9007199254740993.0,
      1e22,          4.35};
  for (double value : values) {
    absl::StatusOr<std::string> line =
        EncodeLine(P("m", {}, {{"f", F(value)}}, 0));
    ASSERT_TRUE(line.ok()) << line.status();
    const std::string prefix = "m f=";
    const std::string suffix = " 0";
    ASSERT_EQ(line->compare(0, prefix.size(), prefix), 0) << *line;
    const std::string text = line->substr(
        prefix.size(), line->size() - prefix.size() - suffix.size());
    EXPECT_EQ(std::strtod(text.c_str(), nullptr), value) << text;
    EXPECT_EQ(text.find_first_of(" ,"), std::string::npos) << text;
  }
}

// Whatever the input, one point is one line.
TEST(LineProtocolLineBreakTest, NeverEmitsLineBreaks) {
  const std::string nasty = "\n\r\\\n,= \"\r";
  // Without the backslash, which EncodeLine refuses there before a space.
  const std::string name = "\n\r\n,= \"\r";
  Point point = P(name + "m", {{nasty + "k", nasty + "v"}},
                  {{name + "f", S(nasty)}, {"g", F(1)}});
  absl::StatusOr<std::string> line = EncodeLine(point);
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->find_first_of("\r\n"), std::string::npos) << *line;
}

// What EncodeLine writes is what InfluxDB 1.x stores: each text below goes
// into a real influxd in a tag key, a tag value and a string field value,
// and, when EncodeLine takes it there (CheckMeasurementName), in the
// measurement and a field key; then it is read back. Names come back as
// CleanLineProtocolName says (trailing backslashes dropped, the one
// documented loss); string field values exactly. The texts are the ones
// where a backslash meets a character line protocol escapes.
TEST(LineProtocolInfluxdTest, BackslashesAndQuotesReadBackAsWritten) {
  absl::StatusOr<std::unique_ptr<testing::InfluxdProcess>> influxd =
      testing::InfluxdProcess::Start();
  ASSERT_TRUE(influxd.ok()) << influxd.status();
  ASSERT_TRUE((*influxd)->Query("CREATE DATABASE \"rt\"").ok());
  InfluxV1Settings settings;
  settings.host = (*influxd)->host();
  settings.port = (*influxd)->http_port();
  settings.database = "rt";
  std::unique_ptr<InfluxWriter> writer = MakeInfluxV1Writer(settings);

  const std::vector<std::string> texts = {
      R"(a\ b)",  R"(a\,b)",  R"(a\=b)",    R"(a\)",    R"(a\\)",   R"(a\\ b)",
      R"(a\\,b)", R"(a\\=b)", R"(a\\\ b)",  R"(\a)",    R"(\ a)",   R"(\,a)",
      R"(\=a)",   R"(a\b)",   R"(a\\b)",    R"(a"b)",   R"(a\"b)",  R"(a\\"b)",
      R"(")",     R"(\")",    R"(C:\dir\)", R"(a \ b)", R"(a=\,b)", R"(a,\=b)",
      R"(\\)",    "a,b c=d"};
  std::vector<std::string> lines;
  // Whether the text is in the measurement and a field key too.
  std::vector<bool> in_names;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string& text = texts[i];
    // The timestamp tells the cases apart when they are read back.
    Point point = P(absl::StrCat("m", i, text),
                    {{"t", text}, {absl::StrCat("k", text), "v"}},
                    {{"s", S(text)}, {absl::StrCat("f", text), F(1)}},
                    static_cast<int64_t>(i + 1));
    in_names.push_back(CheckMeasurementName(point.measurement).ok());
    absl::StatusOr<std::string> line = EncodeLine(point);
    if (!in_names[i]) {
      EXPECT_EQ(line.status().code(), absl::StatusCode::kInvalidArgument)
          << text;
      point.measurement = absl::StrCat("m", i);
      point.fields[1].first = "f";
      line = EncodeLine(point);
    }
    ASSERT_TRUE(line.ok()) << text << ": " << line.status();
    lines.push_back(*std::move(line));
  }
  const WriteResult written = writer->Write(absl::StrJoin(lines, "\n"));
  ASSERT_EQ(written.kind, WriteResult::Kind::kOk) << written.message << "\n"
                                                  << absl::StrJoin(lines, "\n");

  absl::StatusOr<std::string> answer =
      (*influxd)->Query("SELECT * FROM /.*/ GROUP BY *", "rt");
  ASSERT_TRUE(answer.ok()) << answer.status();
  const nlohmann::json json = nlohmann::json::parse(*answer);
  std::vector<bool> seen(texts.size(), false);
  for (const nlohmann::json& series : json["results"][0]["series"]) {
    ASSERT_EQ(series["values"].size(), 1u) << series.dump();
    const nlohmann::json& row = series["values"][0];
    const size_t i = row[0].get<size_t>() - 1;
    ASSERT_LT(i, texts.size()) << series.dump();
    seen[i] = true;
    const std::string& text = texts[i];
    const std::string name = CleanLineProtocolName(text);
    const std::string in_name = in_names[i] ? name : "";
    SCOPED_TRACE(absl::StrCat("text ", text, ", line ", lines[i]));
    EXPECT_EQ(series["name"], absl::StrCat("m", i, in_name));
    nlohmann::json want_tags = {{absl::StrCat("k", name), "v"}};
    if (!name.empty()) want_tags["t"] = name;  // an empty value is left out
    // GROUP BY * lists every tag key of the database, "" where absent.
    nlohmann::json got_tags = nlohmann::json::object();
    for (const auto& [key, value] : series["tags"].items()) {
      if (value != "") got_tags[key] = value;
    }
    EXPECT_EQ(got_tags, want_tags);
    nlohmann::json got_fields = nlohmann::json::object();
    for (size_t c = 1; c < series["columns"].size(); ++c) {
      if (!row[c].is_null()) got_fields[series["columns"][c]] = row[c];
    }
    EXPECT_EQ(got_fields,
              (nlohmann::json{{"s", text}, {absl::StrCat("f", in_name), 1}}));
  }
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_TRUE(seen[i]) << "not stored: " << lines[i];
  }
}

}  // namespace
}  // namespace qfp::tracker
