// Fuzzes the config loader on the input as one YAML document: ConfigNode::
// Parse (common/config_node.h), then both services' readers
// (poller-service/poller_config.h ParsePollerConfig, tracker-service/
// tracker_config.h ParseTrackerConfig). Whatever the bytes, nothing crashes,
// throws or hangs; every refusal is InvalidArgument (a bad config exits 2)
// and names the file.
//
// The poller opens the certificate files a config names, as --check-config
// does; a document naming anything under /dev, /proc or /sys is not read
// further, so that a fuzzed path never reads a device or blocks on one (an
// operator who names /dev/zero as a certificate gets what was asked for).
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "common/config_node.h"
#include "poller-service/poller_config.h"
#include "tests/fuzz/fuzz_support.h"
#include "tracker-service/tracker_config.h"
#include "yaml-cpp/yaml.h"

namespace {

constexpr absl::string_view kSource = "fuzz.yaml";

// Whether any scalar (key or value) could name a device or kernel file.
// `budget` bounds the walk (Parse bounds the document's size already).
bool NamesSystemFile(const YAML::Node& node, int depth, int* budget) {
  if (--*budget < 0 || depth > 64) return true;  // too big to vet: skip it
  switch (node.Type()) {
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      return absl::StrContains(s, "/dev") || absl::StrContains(s, "/proc") ||
             absl::StrContains(s, "/sys");
    }
    case YAML::NodeType::Sequence:
      for (const YAML::Node& item : node) {
        if (NamesSystemFile(item, depth + 1, budget)) return true;
      }
      return false;
    case YAML::NodeType::Map:
      for (const auto& entry : node) {
        if (NamesSystemFile(entry.first, depth + 1, budget) ||
            NamesSystemFile(entry.second, depth + 1, budget)) {
          return true;
        }
      }
      return false;
    default:
      return false;
  }
}

void CheckRefusal(const absl::Status& status, const char* reader) {
  if (status.ok()) return;
  QFP_FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument, "%s: %s",
                 reader, status.ToString().c_str());
  QFP_FUZZ_CHECK(absl::StrContains(status.message(), kSource),
                 "%s: the error does not name the file: %s", reader,
                 status.ToString().c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<YAML::Node> root = qfp::ConfigNode::Parse(text);
  if (!root.ok()) {
    QFP_FUZZ_CHECK(root.status().code() == absl::StatusCode::kInvalidArgument,
                   "Parse: %s", root.status().ToString().c_str());
    return 0;
  }
  int budget = 100000;
  if (NamesSystemFile(*root, 0, &budget)) return 0;
  CheckRefusal(qfp::poller::ParsePollerConfig(*root, kSource).status(),
               "ParsePollerConfig");
  CheckRefusal(qfp::tracker::ParseTrackerConfig(*root, kSource).status(),
               "ParseTrackerConfig");
  return 0;
}
