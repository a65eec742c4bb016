// Typed, path-aware reading of a YAML config file.
//
// Every accessor records a problem (missing key, wrong type, out of range) in a
// shared ConfigErrors list with the full key path, instead of failing at the
// first one, so a user fixes every problem of a file in one pass. yaml-cpp's
// exceptions never leave this module.
#ifndef QFP_COMMON_CONFIG_NODE_H_
#define QFP_COMMON_CONFIG_NODE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "yaml-cpp/yaml.h"

namespace qfp {

// The problems found in one config file, each "key.path: what is wrong".
class ConfigErrors {
 public:
  void Add(absl::string_view path, absl::string_view what);
  bool empty() const { return errors_.empty(); }
  const std::vector<std::string>& errors() const { return errors_; }
  // OK when empty; otherwise InvalidArgument listing every problem, one per
  // line, prefixed with `source` (the file name).
  absl::Status ToStatus(absl::string_view source) const;

 private:
  std::vector<std::string> errors_;
};

// A node of the document together with its key path. Cheap to copy. Absent
// and null nodes are treated alike: "not set".
class ConfigNode {
 public:
  // Parses `yaml_text`; a syntax error is returned with line and column.
  static absl::StatusOr<YAML::Node> Parse(absl::string_view yaml_text);
  // Reads and parses a file; errors name the file.
  static absl::StatusOr<YAML::Node> LoadFile(const std::string& path);

  ConfigNode(YAML::Node node, std::string path, ConfigErrors* errors);

  const std::string& path() const { return path_; }
  ConfigErrors* errors() const { return errors_; }
  // True when the key exists and is not null.
  bool present() const;

  ConfigNode operator[](absl::string_view key) const;

  // Required scalars: a missing key or a wrong type is recorded as an error
  // and a zero value returned. The overloads with a default return it when
  // the key is not set (a wrong type is still an error).
  std::string String() const;
  std::string String(absl::string_view fallback) const;
  bool Bool() const;
  bool Bool(bool fallback) const;
  int64_t Int(int64_t min, int64_t max) const;
  int64_t Int(int64_t fallback, int64_t min, int64_t max) const;

  // A list; not set gives an empty list, a non-list is an error.
  std::vector<ConfigNode> Items() const;
  // A map of scalars (headers, tags); not set gives an empty map.
  std::map<std::string, std::string> StringMap() const;
  // The same, in file order (HTTP headers are sent in the order written).
  std::vector<std::pair<std::string, std::string>> StringPairs() const;
  // A list of scalars; not set gives an empty list.
  std::vector<std::string> StringList() const;

  // Records an error at this node's path.
  void Error(absl::string_view what) const;

  // The `Butler-SOS` section of a parsed Butler SOS file, where both
  // services' keys live; nullopt (with the error recorded) when the file has
  // no such root key.
  static std::optional<ConfigNode> ButlerSos(const YAML::Node& root,
                                             ConfigErrors* errors);

 private:
  std::optional<std::string> Scalar(absl::string_view expected) const;

  YAML::Node node_;
  std::string path_;
  ConfigErrors* errors_;
};

}  // namespace qfp

#endif  // QFP_COMMON_CONFIG_NODE_H_
