// What both services know of the one Butler SOS file they share: the key
// names of this project's section `Butler-SOS.failedPolls`, and `logLevel`.
//
// Both services read the same file, so each knows the key names of both
// parts of `failedPolls` (poller and tracker): a service validates the
// values of its own part strictly (its parser) and the names of the other's
// here, so a typo in either part (`walDirectry`) is an error in both
// services, never a setting silently ignored. A key added to either parser
// is added to its list here too (the `tls` sections' keys: GrpcTlsKeys in
// common/grpc_tls.h).
#ifndef QFP_COMMON_CONFIG_SCHEMA_H_
#define QFP_COMMON_CONFIG_SCHEMA_H_

#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/config_node.h"

namespace qfp {

// Keys of Butler-SOS.failedPolls.poller (poller-service/poller_config.cc).
const std::vector<absl::string_view>& PollerKeys();
// Keys of Butler-SOS.failedPolls.poller.cluster (poller_config.cc).
const std::vector<absl::string_view>& PollerClusterKeys();
// Keys of Butler-SOS.failedPolls.tracker (tracker-service/tracker_config.cc);
// the keys of its maps pollAttempts and coverage are checked by
// CheckFailedPollsKeys.
const std::vector<absl::string_view>& TrackerKeys();

// Records, with its key path, every key under `failedPolls`,
// `failedPolls.poller` or `failedPolls.tracker` that neither service knows,
// and a non-map in their place. `sos` is the Butler-SOS node.
void CheckFailedPollsKeys(const ConfigNode& sos);

// Butler-SOS.logLevel: Butler SOS's silly, debug, verbose, info, warn, error,
// plus trace and warning (common/logging.h); not set: `fallback`. Anything
// else is an error with the key path.
std::string ReadLogLevel(const ConfigNode& sos, absl::string_view fallback);

// Butler-SOS.serversToMonitor.serverTagsDefinition, the server tag keys
// every server lists (a missing or null list: none). Records, with the key
// path of the item, a key the tracker would refuse on every failure
// (CheckTagKey in common/failure_names.h: empty once line protocol cleans it,
// `time`, one of our own tags once cleaned, as `host\` or `poller_id\`, or
// exactly one of them but `host` and `server_name`, as `error_type`) and a
// key that cleans to the same key as an earlier one (`site` and `site\`):
// Butler SOS configs may hold such keys, and InfluxDB refuses or renames
// them, so both services refuse the file at load rather than lose every
// failure at run time.
std::vector<std::string> ReadServerTagsDefinition(const ConfigNode& sos);

// Records, with the key path of the key, a key of the map `tags` (the
// tracker's static tags) that CheckTagKey refuses, that is exactly one of our
// own tags (IsOwnTag: even `host` and `server_name`, which CheckTagKey keeps
// for Butler SOS's server tags; a static tag is ours, and would be left off
// every point without a word), or that cleans to the same
// key as another of `tags` or, when `server_tag_keys` is not null, as a
// different key of it (the two would be one tag on every point).
void CheckStaticTagKeys(const ConfigNode& tags,
                        const std::map<std::string, std::string>& static_tags,
                        const std::vector<std::string>* server_tag_keys);

}  // namespace qfp

#endif  // QFP_COMMON_CONFIG_SCHEMA_H_
