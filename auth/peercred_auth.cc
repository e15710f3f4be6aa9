#include "auth/peercred_auth.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "auth/module_base.h"

namespace xr::auth {
namespace {

class PeercredAuth final : public ModuleBase {
 public:
  PeercredAuth(const ModuleOptions& options, std::optional<std::vector<int64_t>> uids,
               std::optional<std::vector<int64_t>> gids)
      : ModuleBase(options), uids_(std::move(uids)), gids_(std::move(gids)) {}
  bool requires_challenge() const override { return false; }

  Expected<AuthResult> Authenticate(const AuthRequest& req) override {
    if (req.peer_uid < 0 || req.peer_gid < 0) {
      return MakeError(ErrorCode::kAuthFailed, "peercred: no peer credentials (only unix-socket binds have them)");
    }
    auto listed = [](const std::vector<int64_t>& ids, int64_t id) {
      return std::find(ids.begin(), ids.end(), id) != ids.end();
    };
    if (uids_ && !listed(*uids_, req.peer_uid)) {
      return MakeError(ErrorCode::kAuthFailed, "peercred: uid " + std::to_string(req.peer_uid) + " is not allowed");
    }
    if (gids_ && !listed(*gids_, req.peer_gid)) {
      return MakeError(ErrorCode::kAuthFailed, "peercred: gid " + std::to_string(req.peer_gid) + " is not allowed");
    }
    SessionEntry entry;
    entry.uid = req.peer_uid;
    entry.gid = req.peer_gid;
    std::string username = UserNameOfUid(req.peer_uid).value_or(std::to_string(req.peer_uid));
    return AuthResult{std::move(username), {std::move(entry)}};
  }

 private:
  const std::optional<std::vector<int64_t>> uids_, gids_;
};

}  // namespace

Expected<std::unique_ptr<AuthModule>> CreatePeercredAuth(const ModuleOptions& options) {
  if (Status s = options.CheckAllowed({"uid", "gid"}); !s.ok()) return s.error();
  std::optional<std::vector<int64_t>> uids, gids;
  for (auto [key, users, dest] : {std::tuple{"uid", true, &uids}, std::tuple{"gid", false, &gids}}) {
    std::optional<std::string> v = options.Get(key);
    if (!v) continue;
    Expected<std::vector<int64_t>> ids = ParseIdList(*v, users);
    if (!ids.ok()) return MakeError(ErrorCode::kMalformed, "peercred authentication: " + ids.error().message);
    *dest = std::move(ids).value();
  }
  return std::unique_ptr<AuthModule>(new PeercredAuth(options, std::move(uids), std::move(gids)));
}

}  // namespace xr::auth
