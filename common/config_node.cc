#include "common/config_node.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace qfp {
namespace {

// Describes what a node holds, for "expected X, got Y" messages.
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Scalar:
      return absl::StrCat("\"", node.Scalar(), "\"");
    default:
      return "nothing";
  }
}

}  // namespace

void ConfigErrors::Add(absl::string_view path, absl::string_view what) {
  errors_.push_back(absl::StrCat(path, ": ", what));
}

absl::Status ConfigErrors::ToStatus(absl::string_view source) const {
  if (errors_.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("invalid config ", source, " (", errors_.size(),
                   errors_.size() == 1 ? " problem" : " problems", "):\n  ",
                   absl::StrJoin(errors_, "\n  ")));
}

absl::StatusOr<YAML::Node> ConfigNode::Parse(absl::string_view yaml_text) {
  try {
    return YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("YAML syntax error at line ", e.mark.line + 1,
                     ", column ", e.mark.column + 1, ": ", e.msg));
  }
}

absl::StatusOr<YAML::Node> ConfigNode::LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read config file ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<YAML::Node> node = Parse(text.str());
  if (!node.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file ", path, ": ", node.status().message()));
  }
  return node;
}

ConfigNode::ConfigNode(YAML::Node node, std::string path, ConfigErrors* errors)
    // A missing key comes back from yaml-cpp as an "invalid" node whose
    // accessors throw; an Undefined node answers them all safely.
    : node_(node.IsDefined() ? std::move(node)
                             : YAML::Node(YAML::NodeType::Undefined)),
      path_(std::move(path)),
      errors_(errors) {}

bool ConfigNode::present() const { return node_.IsDefined() && !node_.IsNull(); }

ConfigNode ConfigNode::operator[](absl::string_view key) const {
  std::string child_path =
      path_.empty() ? std::string(key) : absl::StrCat(path_, ".", key);
  if (!node_.IsMap()) {
    return ConfigNode(YAML::Node(YAML::NodeType::Undefined),
                      std::move(child_path), errors_);
  }
  // Const lookup: never inserts the key into the document.
  const YAML::Node& self = node_;
  return ConfigNode(self[std::string(key)], std::move(child_path), errors_);
}

void ConfigNode::Error(absl::string_view what) const { errors_->Add(path_, what); }

std::optional<ConfigNode> ConfigNode::ButlerSos(const YAML::Node& root,
                                                ConfigErrors* errors) {
  ConfigNode sos = ConfigNode(root, "", errors)["Butler-SOS"];
  if (!sos.present()) {
    sos.Error("missing (the file's root key must be Butler-SOS)");
    return std::nullopt;
  }
  return sos;
}

std::optional<std::string> ConfigNode::Scalar(absl::string_view expected) const {
  if (!present()) {
    Error(absl::StrCat("missing (expected ", expected, ")"));
    return std::nullopt;
  }
  if (!node_.IsScalar()) {
    Error(absl::StrCat("expected ", expected, ", got ", Describe(node_)));
    return std::nullopt;
  }
  return node_.Scalar();
}

std::string ConfigNode::String() const {
  return Scalar("a string").value_or("");
}

std::string ConfigNode::String(absl::string_view fallback) const {
  if (!present()) return std::string(fallback);
  return String();
}

bool ConfigNode::Bool() const {
  std::optional<std::string> text = Scalar("true or false");
  if (!text) return false;
  if (*text == "true" || *text == "True" || *text == "TRUE") return true;
  if (*text == "false" || *text == "False" || *text == "FALSE") return false;
  Error(absl::StrCat("expected true or false, got \"", *text, "\""));
  return false;
}

bool ConfigNode::Bool(bool fallback) const {
  if (!present()) return fallback;
  return Bool();
}

int64_t ConfigNode::Int(int64_t min, int64_t max) const {
  std::string expected = absl::StrCat("an integer from ", min, " to ", max);
  std::optional<std::string> text = Scalar(expected);
  if (!text) return 0;
  int64_t value = 0;
  if (!absl::SimpleAtoi(*text, &value)) {
    Error(absl::StrCat("expected ", expected, ", got \"", *text, "\""));
    return 0;
  }
  if (value < min || value > max) {
    Error(absl::StrCat("expected ", expected, ", got ", value));
    return 0;
  }
  return value;
}

int64_t ConfigNode::Int(int64_t fallback, int64_t min, int64_t max) const {
  if (!present()) return fallback;
  return Int(min, max);
}

std::vector<ConfigNode> ConfigNode::Items() const {
  std::vector<ConfigNode> items;
  if (!present()) return items;
  if (!node_.IsSequence()) {
    Error(absl::StrCat("expected a list, got ", Describe(node_)));
    return items;
  }
  for (size_t i = 0; i < node_.size(); ++i) {
    items.emplace_back(node_[i], absl::StrCat(path_, "[", i, "]"), errors_);
  }
  return items;
}

std::map<std::string, std::string> ConfigNode::StringMap() const {
  std::vector<std::pair<std::string, std::string>> pairs = StringPairs();
  return std::map<std::string, std::string>(pairs.begin(), pairs.end());
}

std::vector<std::pair<std::string, std::string>> ConfigNode::StringPairs()
    const {
  std::vector<std::pair<std::string, std::string>> result;
  if (!present()) return result;
  if (!node_.IsMap()) {
    Error(absl::StrCat("expected a map of names to values, got ",
                       Describe(node_)));
    return result;
  }
  for (const auto& entry : node_) {
    const std::string key = entry.first.Scalar();
    ConfigNode value(entry.second, absl::StrCat(path_, ".", key), errors_);
    // An explicitly empty value ("key:") is a value, not an omission.
    result.emplace_back(key, entry.second.IsNull() ? "" : value.String());
  }
  return result;
}

std::vector<std::string> ConfigNode::StringList() const {
  std::vector<std::string> result;
  for (const ConfigNode& item : Items()) result.push_back(item.String());
  return result;
}

}  // namespace qfp
