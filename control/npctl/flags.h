// Command-line flags of npctl's subcommands to control-protocol arguments.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "control/protocol.h"
#include "core/result.h"

namespace nodeplane::control::npctl {

// Parses "--key value" pairs after a subcommand into JSON args, mapping CLI names to fields; the
// fields named in `numeric` are sent as numbers. A name in `switches` takes no value (sent as
// true).
inline Result<Json> flagsToArgs(const std::vector<std::string>& words, size_t from,
                                const std::map<std::string, std::string>& names,
                                const std::set<std::string>& numeric = {},
                                const std::set<std::string>& switches = {}) {
  Json args = Json::object();
  for (size_t i = from; i < words.size(); ++i) {
    const std::string& w = words[i];
    auto it = names.find(w);
    if (it != names.end() && switches.count(it->second)) {
      args[it->second] = true;
      continue;
    }
    if (it == names.end() || i + 1 >= words.size())
      return invalidArgument("unexpected argument '" + w + "'");
    const std::string& value = words[++i];
    if (!numeric.count(it->second)) {
      args[it->second] = value;
      continue;
    }
    try {
      size_t used = 0;
      args[it->second] = std::stoll(value, &used);
      if (used != value.size()) return invalidArgument(w + " needs a number");
    } catch (const std::exception&) {
      return invalidArgument(w + " needs a number");
    }
  }
  return args;
}

}  // namespace nodeplane::control::npctl
