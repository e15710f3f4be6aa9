#pragma once
// `xpra_relay cluster [--cluster=URI] list|info ID|stop ID|migrate` (issue 16): what operators
// run against the cluster's database from any machine that reaches it. engine/main.cc finds the
// URI (--cluster=, or the `cluster` key of the relay's config file) and calls this.

#include <iosfwd>
#include <string>
#include <vector>

namespace xr::cluster {

struct CliOptions {
  std::string uri;             // postgresql://...
  int64_t limit = 1000;        // list: rows printed at most (1..kMaxListRows)
  int64_t stop_wait_ms = 5000; // stop: how long to wait for the holding node to end it
  int64_t timeout_ms = 5000;   // connect and each statement
};

// `words`: the verb and its argument ("list"; "info", ID; "stop", ID; "migrate"). Prints the
// result to `out`, errors to `err` (never the URI's password); returns the exit status (0 ok,
// 1 failed, 2 usage).
int RunClusterCommand(const CliOptions& o, const std::vector<std::string>& words, std::ostream& out,
                      std::ostream& err);

// The usage text.
const char* ClusterUsage();

}  // namespace xr::cluster
