#include "auth/multifile_auth.h"

#include "auth/cached_file.h"
#include "auth/module_base.h"

namespace xr::auth {
namespace {

// Python's bytes.strip(): ASCII whitespace.
std::string_view StripBytes(std::string_view s) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Python's bytes.splitlines(): "\n", "\r" and "\r\n" end a line.
std::vector<std::string_view> SplitLines(std::string_view data) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '\n' || data[i] == '\r') {
      lines.push_back(data.substr(start, i - start));
      if (data[i] == '\r' && i + 1 < data.size() && data[i + 1] == '\n') ++i;
      start = i + 1;
    }
  }
  if (start < data.size()) lines.push_back(data.substr(start));
  return lines;
}

std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  while (true) {
    const size_t bar = line.find('|');
    fields.push_back(line.substr(0, bar));
    if (bar == std::string_view::npos) break;
    line.remove_prefix(bar + 1);
  }
  return fields;
}

class MultifileAuth final : public PasswordModuleBase {
 public:
  MultifileAuth(const ModuleOptions& options, std::string path)
      : PasswordModuleBase(options),
        file_(std::move(path), [](std::string data) { return ParseMultifile(data); }) {}

  // Reads the file for the first time.
  Status Load() { return file_.Load(); }

  // Re-reads the file; on failure the previous entries are kept.
  Status Reload() override { return file_.Load(); }

 protected:
  // The user's password from the file; none for an unknown user or an empty password.
  Expected<std::vector<Credential>> GetCredentials(const std::string& username) override {
    Expected<std::shared_ptr<const MultifileData>> data = file_.Get();
    if (!data.ok()) return data.error();
    auto it = (*data)->users.find(username);
    if (it == (*data)->users.end()) {
      return MakeError(ErrorCode::kAuthFailed, "no entry for '" + username + "' in '" + file_.path() + "'");
    }
    if (it->second.password.empty()) return std::vector<Credential>{};
    return std::vector<Credential>{{it->second.password, it->second.password}};
  }

  // The session entry of the user's line (re-checked against the password that matched, in case
  // the file changed in between).
  Expected<std::vector<SessionEntry>> GetSessions(const std::string& username, const Credential& credential) override {
    Expected<std::shared_ptr<const MultifileData>> data = file_.Get();
    if (!data.ok()) return data.error();
    auto it = (*data)->users.find(username);
    if (it == (*data)->users.end() || it->second.password != credential.password) {
      return MakeError(ErrorCode::kAuthFailed, "the entry for '" + username + "' changed during authentication");
    }
    return std::vector<SessionEntry>{it->second.session};
  }

 private:
  CachedFile<MultifileData> file_;
};

}  // namespace

MultifileData ParseMultifile(std::string_view data) {
  MultifileData out;
  int line_no = 0;
  for (std::string_view raw : SplitLines(data)) {
    ++line_no;
    std::string_view line = StripBytes(raw);
    if (line.empty() || line.front() == '#') continue;
    std::vector<std::string_view> f = SplitFields(line);
    if (f.size() < 2) {
      out.problems.push_back("line " + std::to_string(line_no) + ": not enough fields: " + std::to_string(f.size()));
      continue;
    }
    std::string username(f[0]);
    MultifileUser user;
    user.password = std::string(f[1]);
    if (f.size() >= 5) {
      user.session.uid = ParseUid(f[2]);
      user.session.gid = ParseGid(f[3]);
      user.session.displays = SplitDisplays(f[4]);
    } else {
      user.session.uid = ParseUid("");
      user.session.gid = ParseGid("");
    }
    if (f.size() >= 6) user.session.env_options = ParseEnvOptions(f[5]);
    if (f.size() >= 7) user.session.session_options = ParseSimpleDict(f[6], ';');
    if (out.users.count(username) != 0) {
      out.problems.push_back("line " + std::to_string(line_no) + ": duplicate entry for username '" + username + "'");
      continue;
    }
    out.users.emplace(std::move(username), std::move(user));
  }
  return out;
}

Expected<std::unique_ptr<AuthModule>> CreateMultifileAuth(const ModuleOptions& options) {
  if (Status s = options.CheckAllowed({"filename"}); !s.ok()) return s.error();
  Expected<std::string> filename = options.GetNonEmpty("filename", std::nullopt);
  if (!filename.ok()) return filename.error();
  auto module = std::make_unique<MultifileAuth>(options, AbsolutePath(*filename));
  if (Status s = module->Load(); !s.ok()) {
    return MakeError(s.error().code, "multifile authentication: " + s.error().message);
  }
  return std::unique_ptr<AuthModule>(std::move(module));
}

}  // namespace xr::auth
