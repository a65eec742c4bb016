#include "common/config_node.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qfp {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

ConfigNode Root(const std::string& text, YAML::Node& storage,
                ConfigErrors& errors) {
  absl::StatusOr<YAML::Node> parsed = ConfigNode::Parse(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  storage = *parsed;
  return ConfigNode(storage, "", &errors);
}

TEST(ConfigNodeTest, ReadsTypedValuesWithFullPaths) {
  YAML::Node doc;
  ConfigErrors errors;
  ConfigNode root = Root(
      "a:\n  b:\n    s: hello\n    n: 42\n    t: true\n    l: [x, y]\n"
      "    m: {k: v}\n",
      doc, errors);
  ConfigNode b = root["a"]["b"];
  EXPECT_EQ(b.path(), "a.b");
  EXPECT_EQ(b["s"].String(), "hello");
  EXPECT_EQ(b["n"].Int(0, 100), 42);
  EXPECT_TRUE(b["t"].Bool());
  EXPECT_THAT(b["l"].StringList(), ElementsAre("x", "y"));
  EXPECT_EQ(b["m"].StringMap().at("k"), "v");
  EXPECT_TRUE(errors.empty()) << errors.ToStatus("test");
}

TEST(ConfigNodeTest, DefaultsApplyOnlyWhenNotSet) {
  YAML::Node doc;
  ConfigErrors errors;
  ConfigNode root = Root("x:\n  empty:\n  n: 7\n", doc, errors);
  EXPECT_EQ(root["x"]["missing"].String("dflt"), "dflt");
  EXPECT_EQ(root["x"]["empty"].Int(5, 0, 10), 5);  // null counts as not set
  EXPECT_EQ(root["x"]["n"].Int(5, 0, 10), 7);
  EXPECT_FALSE(root["nothing"]["deeper"].Bool(false));
  EXPECT_TRUE(errors.empty());
}

struct BadValueCase {
  std::string yaml;
  std::string expected_error;
};

class ConfigNodeErrorTest : public ::testing::TestWithParam<BadValueCase> {};

TEST_P(ConfigNodeErrorTest, NamesKeyPathAndProblem) {
  YAML::Node doc;
  ConfigErrors errors;
  ConfigNode root = Root(GetParam().yaml, doc, errors);
  ConfigNode v = root["top"]["value"];
  // Each case reads `top.value` as the type its name implies.
  if (GetParam().yaml.find("#int") != std::string::npos) {
    v.Int(1, 10);
  } else if (GetParam().yaml.find("#bool") != std::string::npos) {
    v.Bool();
  } else if (GetParam().yaml.find("#list") != std::string::npos) {
    v.Items();
  } else if (GetParam().yaml.find("#map") != std::string::npos) {
    v.StringMap();
  } else {
    v.String();
  }
  ASSERT_EQ(errors.errors().size(), 1u) << errors.ToStatus("t");
  EXPECT_EQ(errors.errors()[0], GetParam().expected_error);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ConfigNodeErrorTest,
    ::testing::Values(
        BadValueCase{"top: {}  #string",
                     "top.value: missing (expected a string)"},
        BadValueCase{"top:\n  value: [1]  #string",
                     "top.value: expected a string, got a list"},
        BadValueCase{"top:\n  value: abc  #int",
                     "top.value: expected an integer from 1 to 10, got "
                     "\"abc\""},
        BadValueCase{"top:\n  value: 11  #int",
                     "top.value: expected an integer from 1 to 10, got 11"},
        BadValueCase{"top:\n  value: 2.5  #int",
                     "top.value: expected an integer from 1 to 10, got "
                     "\"2.5\""},
        BadValueCase{"top:\n  value: yes please  #bool",
                     "top.value: expected true or false, got \"yes please\""},
        BadValueCase{"top:\n  value: {a: 1}  #list",
                     "top.value: expected a list, got a map"},
        BadValueCase{"top:\n  value: scalar  #map",
                     "top.value: expected a map of names to values, got "
                     "\"scalar\""}));

TEST(ConfigNodeTest, ListItemsCarryTheirIndex) {
  YAML::Node doc;
  ConfigErrors errors;
  ConfigNode root = Root("servers:\n  - host: a\n  - {}\n", doc, errors);
  std::vector<ConfigNode> items = root["servers"].Items();
  ASSERT_EQ(items.size(), 2u);
  items[1]["host"].String();
  EXPECT_THAT(errors.errors(),
              ElementsAre("servers[1].host: missing (expected a string)"));
}

TEST(ConfigNodeTest, LookupNeverAltersTheDocument) {
  YAML::Node doc;
  ConfigErrors errors;
  ConfigNode root = Root("a: 1\n", doc, errors);
  root["b"]["c"].String("x");
  EXPECT_FALSE(doc["b"].IsDefined());
}

TEST(ConfigNodeTest, SyntaxErrorsGiveLineAndColumn) {
  absl::StatusOr<YAML::Node> parsed = ConfigNode::Parse("a: [1, 2\nb: 3\n");
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(std::string(parsed.status().message()),
              HasSubstr("YAML syntax error at line"));
}

TEST(ConfigNodeTest, StatusListsEveryProblem) {
  ConfigErrors errors;
  EXPECT_TRUE(errors.ToStatus("f.yaml").ok());
  errors.Add("a.b", "missing");
  errors.Add("c", "wrong");
  absl::Status status = errors.ToStatus("f.yaml");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "invalid config f.yaml (2 problems):\n  a.b: missing\n  c: wrong");
}

TEST(ConfigNodeTest, MissingFileIsNotFound) {
  absl::StatusOr<YAML::Node> loaded =
      ConfigNode::LoadFile("/nonexistent/qfp/config.yaml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(loaded.status().message()),
              HasSubstr("/nonexistent/qfp/config.yaml"));
}

TEST(ConfigNodeTest, ExplicitlyEmptyMapValueIsEmptyString) {
  YAML::Node doc;
  ConfigErrors errors;
  ConfigNode root = Root("h:\n  X-Empty:\n  X-Set: v\n", doc, errors);
  auto map = root["h"].StringMap();
  EXPECT_EQ(map.at("X-Empty"), "");
  EXPECT_EQ(map.at("X-Set"), "v");
  EXPECT_THAT(errors.errors(), IsEmpty());
}

}  // namespace
}  // namespace qfp
