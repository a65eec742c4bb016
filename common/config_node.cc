#include "common/config_node.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/mark.h"
#include "yaml-cpp/parser.h"

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

std::string ChildPath(absl::string_view path, absl::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
}

// Copies a parsed document the way js-yaml reads it: merge keys resolved,
// a key repeated in one mapping recorded as an error. Aliases are expanded
// in the copy, so depth and size are bounded: a recursive alias or an
// exponential "billion laughs" document is an error, not a hang.
class MergeResolver {
 public:
  explicit MergeResolver(ConfigErrors* errors) : errors_(errors) {}

  YAML::Node Resolve(const YAML::Node& node, const std::string& path,
                     int depth) {
    // Once the document is refused for its size or depth, the rest is not
    // walked: each further node would only add errors at ever longer paths.
    // A recursive alias that branches (`d: &d {a: {<<: *d}, b: {<<: *d}}`)
    // otherwise cost kMaxNodes nodes with paths of kMaxDepth keys: 15 MB of
    // errors from 357 bytes (found by tests/fuzz/config_fuzzer).
    if (stopped()) return YAML::Node(YAML::NodeType::Null);
    if (++nodes_ > kMaxNodes) {
      if (!exhausted_) {
        errors_->Add(
            path, absl::StrCat("the document expands to more than ", kMaxNodes,
                               " nodes (aliases repeated?)"));
      }
      exhausted_ = true;
      return YAML::Node(YAML::NodeType::Null);
    }
    if (depth > kMaxDepth) {
      if (!too_deep_) {
        errors_->Add(path, absl::StrCat("nested deeper than ", kMaxDepth,
                                        " levels (a recursive alias?)"));
      }
      too_deep_ = true;
      return YAML::Node(YAML::NodeType::Null);
    }
    switch (node.Type()) {
      case YAML::NodeType::Scalar: {
        YAML::Node copy(node.Scalar());
        copy.SetTag(node.Tag());
        return copy;
      }
      case YAML::NodeType::Sequence: {
        YAML::Node copy(YAML::NodeType::Sequence);
        for (size_t i = 0; i < node.size() && !stopped(); ++i) {
          copy.push_back(
              Resolve(node[i], absl::StrCat(path, "[", i, "]"), depth + 1));
        }
        return copy;
      }
      case YAML::NodeType::Map:
        return ResolveMap(node, path, depth);
      default:
        return YAML::Node(YAML::NodeType::Null);
    }
  }

 private:
  static constexpr int kMaxDepth = 64;
  static constexpr size_t kMaxNodes = 200000;

  bool stopped() const { return exhausted_ || too_deep_; }

  struct Entry {
    std::string key;
    YAML::Node value;
    int line;  // 1-based line of the key as written; 0: merged
  };

  static bool IsMergeKey(const YAML::Node& key) {
    // A plain `<<` or one tagged !!merge; a quoted "<<" is a string.
    return key.IsScalar() && key.Scalar() == "<<" &&
           (key.Tag() == "?" || key.Tag() == "tag:yaml.org,2002:merge");
  }

  // Adds the keys of `source` (resolved) that `entries` lacks.
  static void MergeFrom(const YAML::Node& source, std::vector<Entry>* entries) {
    for (const auto& pair : source) {
      const std::string key = pair.first.Scalar();
      auto same = [&](const Entry& e) { return e.key == key; };
      if (std::none_of(entries->begin(), entries->end(), same)) {
        entries->push_back(Entry{key, pair.second, 0});
      }
    }
  }

  YAML::Node ResolveMap(const YAML::Node& node, const std::string& path,
                        int depth) {
    std::vector<Entry> entries;
    for (const auto& pair : node) {
      const YAML::Node& key = pair.first;
      if (IsMergeKey(key)) {
        const std::string merge_path = ChildPath(path, "<<");
        YAML::Node source = Resolve(pair.second, merge_path, depth + 1);
        if (stopped()) break;
        if (source.IsMap()) {
          MergeFrom(source, &entries);
        } else if (source.IsSequence() &&
                   std::all_of(source.begin(), source.end(),
                               [](const YAML::Node& n) { return n.IsMap(); })) {
          // YAML 1.1: of a list of mappings, the earlier one wins.
          for (const YAML::Node& item : source) MergeFrom(item, &entries);
        } else {
          errors_->Add(merge_path,
                       absl::StrCat("a merge key takes a mapping or a list of "
                                    "mappings (<<: *anchor), got ",
                                    Describe(source)));
        }
        continue;
      }
      if (!key.IsScalar() && !key.IsNull()) {
        errors_->Add(path,
                     absl::StrCat("a key must be a name, got ", Describe(key)));
        continue;
      }
      // js-yaml reads a null key as the name "null".
      const std::string name = key.IsScalar() ? key.Scalar() : "null";
      const std::string child_path = ChildPath(path, name);
      const int line = key.Mark().line + 1;
      YAML::Node value = Resolve(pair.second, child_path, depth + 1);
      if (stopped()) break;
      auto found = std::find_if(entries.begin(), entries.end(),
                                [&](const Entry& e) { return e.key == name; });
      if (found == entries.end()) {
        entries.push_back(Entry{name, value, line});
      } else if (found->line == 0) {
        // A key written in the mapping overrides a merged one, in place.
        found->value = value;
        found->line = line;
      } else {
        errors_->Add(child_path,
                     absl::StrCat("key given twice in one mapping (lines ",
                                  found->line, " and ", line,
                                  "); Butler SOS refuses a repeated key"));
      }
    }
    YAML::Node copy(YAML::NodeType::Map);
    for (const Entry& entry : entries) {
      copy.force_insert(entry.key, entry.value);
    }
    return copy;
  }

  ConfigErrors* errors_;
  size_t nodes_ = 0;
  bool exhausted_ = false;
  bool too_deep_ = false;
};

// The parts of a host key's value.
struct HostParts {
  std::string host;  // without brackets
  std::optional<std::string> port;
};

bool IsIpv4(const std::string& text) {
  in_addr address;
  return inet_pton(AF_INET, text.c_str(), &address) == 1;
}

bool IsIpv6(const std::string& text) {
  in6_addr address;
  return inet_pton(AF_INET6, text.c_str(), &address) == 1;
}

// RFC 1123 host name, also allowing '_' (Windows host names carry it and
// libcurl resolves them). All-numeric last label: only as an IPv4 address.
bool IsHostName(absl::string_view name) {
  if (absl::EndsWith(name, ".")) name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return false;
  std::vector<absl::string_view> labels = absl::StrSplit(name, '.');
  for (absl::string_view label : labels) {
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' &&
          c != '_') {
        return false;
      }
    }
  }
  const absl::string_view last = name.substr(name.rfind('.') + 1);
  return !std::all_of(last.begin(), last.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
}

// Why `value` is not a host as `rule` wants it; nullopt when it is one.
std::optional<std::string> HostProblem(const std::string& value,
                                       PortRule rule) {
  if (absl::StrContains(value, "://")) {
    return "a URL is not a host: write the host name or address only";
  }
  HostParts parts;
  const size_t colons = std::count(value.begin(), value.end(), ':');
  if (absl::StartsWith(value, "[")) {
    const size_t close = value.find(']');
    if (close == std::string::npos) return "\"[\" without \"]\"";
    parts.host = value.substr(1, close - 1);
    const std::string rest = value.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return "expected \":PORT\" after \"]\"";
      parts.port = rest.substr(1);
    }
    if (!IsIpv6(parts.host)) return "not an IPv6 address between [ and ]";
  } else if (colons > 1) {
    if (!IsIpv6(value)) return "not a host name or IP address";
    if (rule != PortRule::kNone) {
      return absl::StrCat("write an IPv6 address in brackets: [", value, "]");
    }
    return std::nullopt;
  } else {
    const size_t colon = value.find(':');
    parts.host = value.substr(0, colon);
    if (colon != std::string::npos) parts.port = value.substr(colon + 1);
    if (!IsIpv4(parts.host) && !IsHostName(parts.host)) {
      if (absl::StrContains(parts.host, "/")) {
        return "a path is not a host: write the host name or address only";
      }
      return "not a host name or IP address";
    }
  }
  if (parts.port.has_value()) {
    if (rule == PortRule::kNone) {
      return "takes no port (the port is a key of its own)";
    }
    int port = -1;
    if (parts.port->empty() || parts.port->size() > 5 ||
        !std::all_of(parts.port->begin(), parts.port->end(),
                     [](char c) { return absl::ascii_isdigit(c); }) ||
        !absl::SimpleAtoi(*parts.port, &port)) {
      return absl::StrCat("\"", *parts.port, "\" is not a port number");
    }
    const int min_port = rule == PortRule::kListen ? 0 : 1;
    if (port < min_port || port > 65535) {
      return absl::StrCat("port ", port, " is not from ", min_port,
                          " to 65535");
    }
  } else if (rule == PortRule::kRequired || rule == PortRule::kListen) {
    return "the port is missing";
  }
  return std::nullopt;
}

// Levenshtein distance, case-insensitive: how far a typo is from a key.
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      const bool same =
          absl::ascii_tolower(static_cast<unsigned char>(a[i - 1])) ==
          absl::ascii_tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] =
          std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
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

namespace {

// The offset of the first byte that breaks UTF-8 (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or npos.
size_t FirstInvalidUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t length;
    unsigned char low = 0x80, high = 0xBF;  // bounds of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) low = 0xA0;   // overlong
      if (c == 0xED) high = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) low = 0x90;   // overlong
      if (c == 0xF4) high = 0x8F;  // above U+10FFFF
    } else {
      return i;
    }
    if (i + length > text.size()) return i;
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if (next < (k == 1 ? low : 0x80) || next > (k == 1 ? high : 0xBF)) {
        return i;
      }
    }
    i += length;
  }
  return absl::string_view::npos;
}

// Counts the documents of a stream without building them, and finds where
// yaml-cpp stops reading. yaml-cpp 0.7's LoadAll never returns on some broken
// input: after a stray ',' (",\x01") each HandleNextDocument reports another
// empty document without reading on, and the list grows until memory runs
// out (jbeder/yaml-cpp#1040, fixed upstream by PR #1319; found by
// tests/fuzz/config_fuzzer). A document starting where the previous one
// started is that loop.
class DocumentCounter final : public YAML::EventHandler {
 public:
  size_t documents() const { return documents_; }
  bool stuck() const { return stuck_; }
  const YAML::Mark& start() const { return start_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    stuck_ = documents_ > 0 && mark.pos == start_.pos;
    start_ = mark;
    ++documents_;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  size_t documents_ = 0;
  bool stuck_ = false;
  YAML::Mark start_;
};

// Parses and resolves. A syntax error starts with `syntax_prefix`; the
// other problems are listed under `source`, each with its key path.
absl::StatusOr<YAML::Node> ParseText(const std::string& text,
                                     absl::string_view source,
                                     absl::string_view syntax_prefix) {
  // Every string of the config may travel in a PollFailure, and protobuf
  // refuses a whole message holding a string that is not UTF-8: the
  // tracker would never accept that poller's failures. Refused here, where
  // the fix (save the file as UTF-8) is plain.
  if (const size_t bad = FirstInvalidUtf8(text);
      bad != absl::string_view::npos) {
    const size_t line_start = text.rfind('\n', bad == 0 ? 0 : bad - 1);
    const int64_t line = 1 + std::count(text.begin(), text.begin() + bad, '\n');
    const size_t column =
        bad - (line_start == std::string::npos ? 0 : line_start + 1) + 1;
    return absl::InvalidArgumentError(absl::StrCat(
        syntax_prefix, "not valid UTF-8 at line ", line, ", column ", column,
        " (byte ", bad, "); save the file as UTF-8"));
  }
  DocumentCounter counter;
  YAML::Node raw;
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(counter)) {
      if (counter.stuck()) {
        return absl::InvalidArgumentError(
            absl::StrCat(syntax_prefix, "YAML syntax error at line ",
                         counter.start().line + 1, ", column ",
                         counter.start().column + 1, ": unexpected token"));
      }
    }
    // js-yaml's load() refuses a stream of several documents; yaml-cpp's Load
    // would read the first and drop the rest unsaid.
    if (counter.documents() > 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          syntax_prefix, "the file holds ", counter.documents(),
          " YAML documents (separated by ---); Butler SOS reads exactly one"));
    }
    raw = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        syntax_prefix, "YAML syntax error at line ", e.mark.line + 1,
        ", column ", e.mark.column + 1, ": ", e.msg));
  }
  ConfigErrors errors;
  YAML::Node resolved = MergeResolver(&errors).Resolve(raw, "", 0);
  if (!errors.empty()) return errors.ToStatus(source);
  return resolved;
}

}  // namespace

absl::StatusOr<YAML::Node> ConfigNode::Parse(absl::string_view yaml_text) {
  return ParseText(std::string(yaml_text), "YAML text", "");
}

absl::StatusOr<YAML::Node> ConfigNode::LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseText(text.str(), path, absl::StrCat("config file ", path, ": "));
}

ConfigNode::ConfigNode(YAML::Node node, std::string path, ConfigErrors* errors)
    // A missing key comes back from yaml-cpp as an "invalid" node whose
    // accessors throw; an Undefined node answers them all safely.
    : node_(node.IsDefined() ? std::move(node)
                             : YAML::Node(YAML::NodeType::Undefined)),
      path_(std::move(path)),
      errors_(errors) {}

bool ConfigNode::present() const {
  return node_.IsDefined() && !node_.IsNull();
}

bool ConfigNode::defined() const { return node_.IsDefined(); }

ConfigNode ConfigNode::operator[](absl::string_view key) const {
  std::string child_path = ChildPath(path_, key);
  if (!node_.IsMap()) {
    return ConfigNode(YAML::Node(YAML::NodeType::Undefined),
                      std::move(child_path), errors_);
  }
  // Const lookup: never inserts the key into the document.
  const YAML::Node& self = node_;
  return ConfigNode(self[std::string(key)], std::move(child_path), errors_);
}

void ConfigNode::Error(absl::string_view what) const {
  errors_->Add(path_, what);
}

std::string ConfigNode::Host(PortRule rule) const {
  static constexpr absl::string_view kExpected[] = {
      "a host name or IP address",
      "a host name or IP address, optionally with :PORT",
      "HOST:PORT",
      "HOST:PORT",
  };
  const absl::string_view expected = kExpected[static_cast<int>(rule)];
  std::optional<std::string> text = Scalar(expected);
  if (!text) return "";
  if (std::optional<std::string> problem = HostProblem(*text, rule)) {
    Error(absl::StrCat("expected ", expected, ", got \"", *text,
                       "\": ", *problem));
    return "";
  }
  return *text;
}

std::string ConfigNode::Host(PortRule rule, absl::string_view fallback) const {
  if (!present()) return std::string(fallback);
  return Host(rule);
}

std::optional<std::string> ConfigNode::CheckHostFlag(absl::string_view flag,
                                                     absl::string_view value,
                                                     PortRule rule) {
  ConfigErrors errors;
  ConfigNode(YAML::Node(std::string(value)), std::string(flag), &errors)
      .Host(rule);
  if (errors.empty()) return std::nullopt;
  return errors.errors().front();
}

std::string ConfigNode::WritableDirectory(absl::string_view unset_means) const {
  if (!present()) return "";
  const std::string path = String();
  if (path.empty()) {
    if (node_.IsScalar()) {
      Error(absl::StrCat("must not be empty (leave it out to ", unset_means,
                         ")"));
    }
    return "";
  }
  // The directory itself, or else the nearest parent that exists: the one
  // the service's mkdir would create the rest in.
  std::filesystem::path existing = std::filesystem::absolute(path);
  std::error_code error;
  while (!std::filesystem::exists(existing, error) &&
         existing != existing.parent_path()) {
    existing = existing.parent_path();
  }
  if (!std::filesystem::is_directory(existing, error)) {
    Error(absl::StrCat("cannot create directory \"", path, "\": \"",
                       existing.string(), "\" is not a directory"));
    return "";
  }
  if (access(existing.c_str(), W_OK | X_OK) != 0) {
    Error(absl::StrCat(
        "directory \"", existing.string(), "\" is not writable: ",
        std::error_code(errno, std::generic_category()).message()));
    return "";
  }
  return path;
}

void ConfigNode::CheckKeys(const std::vector<absl::string_view>& known) const {
  if (!present()) return;
  if (!node_.IsMap()) {
    Error(absl::StrCat("expected a map, got ", Describe(node_)));
    return;
  }
  for (const auto& entry : node_) {
    const std::string key = entry.first.Scalar();
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    // The nearest known key, when near enough to be the intended one.
    absl::string_view nearest;
    size_t best = std::max<size_t>(3, key.size() / 3) + 1;
    for (absl::string_view candidate : known) {
      const size_t distance = EditDistance(key, candidate);
      if (distance < best) {
        best = distance;
        nearest = candidate;
      }
    }
    errors_->Add(ChildPath(path_, key),
                 absl::StrCat("unknown key",
                              nearest.empty() ? std::string()
                                              : absl::StrCat(" (did you mean ",
                                                             nearest, "?)"),
                              "; known here: ", absl::StrJoin(known, ", ")));
  }
}

std::optional<ConfigNode> ConfigNode::ButlerSos(const YAML::Node& root,
                                                ConfigErrors* errors) {
  ConfigNode sos = ConfigNode(root, "", errors)["Butler-SOS"];
  if (!sos.present()) {
    sos.Error("missing (the file's root key must be Butler-SOS)");
    return std::nullopt;
  }
  return sos;
}

std::optional<std::string> ConfigNode::Scalar(
    absl::string_view expected) const {
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
    ConfigNode value(entry.second, ChildPath(path_, key), errors_);
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
