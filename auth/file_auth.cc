#include "auth/file_auth.h"

#include "auth/cached_file.h"
#include "auth/module_base.h"

namespace xr::auth {
namespace {

class FileAuth final : public PasswordModuleBase {
 public:
  bool per_user() const override { return false; }  // one password, whatever the name
  FileAuth(const ModuleOptions& options, std::string path)
      : PasswordModuleBase(options), file_(std::move(path), [](std::string data) { return data; }) {}

  // Reads the file for the first time.
  Status Load() { return file_.Load(); }

  // Re-reads the file; on failure the previous password is kept.
  Status Reload() override { return file_.Load(); }

 protected:
  // The file's content; none when the file is empty.
  Expected<std::vector<Credential>> GetCredentials(const std::string& username) override {
    Expected<std::shared_ptr<const std::string>> data = file_.Get();
    if (!data.ok()) return data.error();
    if ((*data)->empty()) return std::vector<Credential>{};
    return std::vector<Credential>{{**data, **data}};
  }

  // Explains the usual mistake: a newline at the end of the file is part of the password.
  std::string MismatchHint(const std::string& password) const override {
    if (password.find_first_of("\r\n") != std::string::npos) {
      return " (the password file '" + file_.path() + "' contains a newline, which is part of the password)";
    }
    return {};
  }

 private:
  CachedFile<std::string> file_;
};

}  // namespace

Expected<std::unique_ptr<AuthModule>> CreateFileAuth(const ModuleOptions& options) {
  if (Status s = options.CheckAllowed({"filename"}); !s.ok()) return s.error();
  Expected<std::string> filename = options.GetNonEmpty("filename", std::nullopt);
  if (!filename.ok()) return filename.error();
  auto module = std::make_unique<FileAuth>(options, AbsolutePath(*filename));
  if (Status s = module->Load(); !s.ok()) {
    return MakeError(s.error().code, "file authentication: " + s.error().message);
  }
  return std::unique_ptr<AuthModule>(std::move(module));
}

}  // namespace xr::auth
