#include "common/command_line.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"

namespace qfp {

void ParseCommandLine(int argc, char** argv, absl::string_view usage) {
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "-service/main.cc");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  // Accept --check-config as well as absl's --check_config.
  std::vector<std::string> storage(argv, argv + argc);
  for (std::string& arg : storage) {
    if (arg == "--") break;
    if (!absl::StartsWith(arg, "--")) continue;
    const size_t end = std::min(arg.find('='), arg.size());
    std::replace(arg.begin() + 2, arg.begin() + static_cast<long>(end), '-',
                 '_');
  }
  std::vector<char*> args;
  for (std::string& arg : storage) args.push_back(arg.data());
  absl::ParseCommandLine(argc, args.data());
}

}  // namespace qfp
