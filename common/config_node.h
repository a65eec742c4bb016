// Typed, path-aware reading of a YAML config file.
//
// Every accessor records a problem (missing key, wrong type, out of range) in a
// shared ConfigErrors list with the full key path, instead of failing at the
// first one, so a user fixes every problem of a file in one pass. yaml-cpp's
// exceptions never leave this module.
//
// The document is read as Butler SOS reads it (js-yaml): a key given twice in
// one mapping is refused, and YAML 1.1 merge keys (`<<: *anchor`) are
// resolved, where yaml-cpp alone would keep the first duplicate and treat
// `<<` as an ordinary key.
#ifndef QFP_COMMON_CONFIG_NODE_H_
#define QFP_COMMON_CONFIG_NODE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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

// Which port a host key takes (ConfigNode::Host).
enum class PortRule {
  kNone,      // a host only: influxdbConfig.host (the port is its own key)
  kOptional,  // host or host:port: servers[].host, appNames.hostIP
  kRequired,  // host:port, port 1 to 65535: an address to connect to
  kListen,    // host:port, port 0 to 65535 (0: any free port): to listen on
};

// A node of the document together with its key path. Cheap to copy. Absent
// and null nodes are treated alike: "not set". Not thread-safe (nor is
// yaml-cpp's Node): a config is read at start, on one thread.
class ConfigNode {
 public:
  // Parses `yaml_text` as Butler SOS's js-yaml would: a syntax error is
  // returned with line and column; a key repeated in one mapping, a merge
  // key whose value is not a mapping or a list of mappings, and aliases
  // nested too deeply or expanding to too many nodes are InvalidArgument
  // naming each key path. Merge keys are resolved as YAML 1.1 defines them:
  // keys written in the mapping win over merged ones, and of a list of
  // merged mappings the earlier wins. The returned document holds no merge
  // key and no duplicate.
  static absl::StatusOr<YAML::Node> Parse(absl::string_view yaml_text);
  // Reads and parses a file; errors name the file.
  static absl::StatusOr<YAML::Node> LoadFile(const std::string& path);

  ConfigNode(YAML::Node node, std::string path, ConfigErrors* errors);

  const std::string& path() const { return path_; }
  ConfigErrors* errors() const { return errors_; }
  // True when the key exists and is not null.
  bool present() const;
  // True when the key is written, even with nothing after it (null).
  bool defined() const;

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

  // A list; not set (absent or null, as Butler SOS reads `servers:` with
  // nothing under it) gives an empty list, a non-list is an error.
  std::vector<ConfigNode> Items() const;
  // A map of scalars (headers, tags); not set gives an empty map.
  std::map<std::string, std::string> StringMap() const;
  // The same, in file order (HTTP headers are sent in the order written).
  std::vector<std::pair<std::string, std::string>> StringPairs() const;
  // A list of scalars; not set gives an empty list.
  std::vector<std::string> StringList() const;

  // A host name (letters, digits, '-' and '_' in dot-separated labels of at
  // most 63 characters), an IPv4 address or an IPv6 address, with a port as
  // `rule` says; an IPv6 address with a port, or where the value becomes
  // part of a URL (kOptional), is written in brackets ("[::1]:4747"). A URL
  // ("http://influx"), a path ("influx/") or a template placeholder
  // ("<IP or FQDN>") is an error. Returns the value as written (empty on
  // error or when not set, where the overload with a fallback returns it).
  std::string Host(PortRule rule) const;
  std::string Host(PortRule rule, absl::string_view fallback) const;
  // The same check for a host given on the command line: nullopt when
  // `value` is one, else the problem as "--flag: expected ...".
  static std::optional<std::string> CheckHostFlag(absl::string_view flag,
                                                  absl::string_view value,
                                                  PortRule rule);

  // A directory the service creates at start when missing and writes in:
  // it exists and is a writable directory, or it is missing and its nearest
  // existing parent is one. Checked without changing anything on disk. Not
  // set: "". An empty string is an error (`unset_means` says what leaving
  // the key out does).
  std::string WritableDirectory(absl::string_view unset_means) const;

  // Records "unknown key" for every key of this mapping not in `known`,
  // suggesting the known key a typo most likely meant.
  void CheckKeys(const std::vector<absl::string_view>& known) const;

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
