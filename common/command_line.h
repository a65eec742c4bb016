// Command-line parsing shared by both services' main().
#ifndef QFP_COMMON_COMMAND_LINE_H_
#define QFP_COMMON_COMMAND_LINE_H_

#include "absl/strings/string_view.h"

namespace qfp {

// Parses absl flags. `--help` lists the flags defined in the service's own
// main.cc (absl would otherwise look for a file named after the binary);
// `--helpfull` lists every flag, gRPC's and abseil's included. Dashes in
// flag names are accepted for underscores (--check-config).
void ParseCommandLine(int argc, char** argv, absl::string_view usage);

}  // namespace qfp

#endif  // QFP_COMMON_COMMAND_LINE_H_
