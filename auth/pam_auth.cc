#include "auth/pam_auth.h"

#include <security/pam_appl.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "auth/bounded_call.h"
#include "auth/module_base.h"

namespace xr::auth {
namespace {

struct ConvData {
  const std::string* username;
  const std::string* password;
};

// Answers the password prompt(s) with the password and a visible prompt with the user name;
// messages are ignored. Responses are malloc'd: PAM frees them.
int Converse(int n, const struct pam_message** msg, struct pam_response** resp, void* appdata) {
  if (n <= 0 || n > PAM_MAX_NUM_MSG) return PAM_CONV_ERR;
  auto* data = static_cast<ConvData*>(appdata);
  auto* out = static_cast<pam_response*>(calloc(static_cast<size_t>(n), sizeof(pam_response)));
  if (out == nullptr) return PAM_BUF_ERR;
  for (int i = 0; i < n; ++i) {
    const char* answer = nullptr;
    switch (msg[i]->msg_style) {
      case PAM_PROMPT_ECHO_OFF: answer = data->password->c_str(); break;
      case PAM_PROMPT_ECHO_ON: answer = data->username->c_str(); break;
      default: break;  // PAM_ERROR_MSG, PAM_TEXT_INFO: nothing to answer
    }
    if (answer != nullptr) {
      out[i].resp = strdup(answer);
      if (out[i].resp == nullptr) {
        for (int j = 0; j < i; ++j) {
          if (out[j].resp != nullptr) {
            explicit_bzero(out[j].resp, strlen(out[j].resp));
            free(out[j].resp);
          }
        }
        free(out);
        return PAM_BUF_ERR;
      }
    }
  }
  *resp = out;
  return PAM_SUCCESS;
}

// PAM_FAIL_DELAY callback: no sleep. pam_unix asks for 2 s after a failure, which would hold a
// worker thread; the relay's own failed-login back-off does that job without a thread.
void NoFailDelay(int, unsigned, void*) {}

// Whether a PAM result means "the stack could not decide" (not "wrong password").
bool Unavailable(int rc) {
  return rc == PAM_AUTHINFO_UNAVAIL || rc == PAM_BUF_ERR || rc == PAM_ABORT ||
         rc == PAM_SERVICE_ERR || rc == PAM_CONV_ERR || rc == PAM_OPEN_ERR || rc == PAM_SYMBOL_ERR ||
         rc == PAM_MODULE_UNKNOWN;
}

struct PamSettings {
  std::string service;
  std::string confdir;  // empty: /etc/pam.d
  bool check_account = true;
};

// One PAM transaction: start, authenticate, (account), end. Blocks as long as the stack does.
Expected<SessionEntry> RunPam(const PamSettings& s, const std::string& username, const std::string& password,
                              const std::string& rhost) {
  ConvData data{&username, &password};
  struct pam_conv conv = {Converse, &data};
  pam_handle_t* h = nullptr;
  int rc = s.confdir.empty() ? pam_start(s.service.c_str(), username.c_str(), &conv, &h)
                             : pam_start_confdir(s.service.c_str(), username.c_str(), &conv, s.confdir.c_str(), &h);
  if (rc != PAM_SUCCESS || h == nullptr) {
    return MakeError(ErrorCode::kIo, "cannot start PAM service '" + s.service + "': " +
                                         (h != nullptr ? pam_strerror(h, rc) : "pam_start failed"));
  }
  (void)pam_set_item(h, PAM_RHOST, rhost.c_str());
  (void)pam_set_item(h, PAM_RUSER, username.c_str());
  (void)pam_set_item(h, PAM_FAIL_DELAY, reinterpret_cast<const void*>(&NoFailDelay));
  const char* step = "authenticate";
  rc = pam_authenticate(h, PAM_DISALLOW_NULL_AUTHTOK | PAM_SILENT);
  if (rc == PAM_SUCCESS && s.check_account) {
    step = "account";
    rc = pam_acct_mgmt(h, PAM_DISALLOW_NULL_AUTHTOK | PAM_SILENT);
  }
  std::string text = pam_strerror(h, rc);
  pam_end(h, rc);
  if (rc != PAM_SUCCESS) {
    const ErrorCode code = Unavailable(rc) ? ErrorCode::kIo : ErrorCode::kAuthFailed;
    return MakeError(code, "PAM " + std::string(step) + " for '" + username + "' (service " + s.service +
                               "): " + text);
  }
  std::optional<SessionEntry> entry = SystemUserEntry(username);
  if (!entry) {
    return MakeError(ErrorCode::kAuthFailed, "PAM accepted '" + username + "' but the system has no such user (no uid)");
  }
  return std::move(*entry);
}

class PamAuth final : public ClearPasswordModuleBase {
 public:
  PamAuth(const ModuleOptions& options, PamSettings settings, int64_t timeout_ms)
      : ClearPasswordModuleBase(options), settings_(std::move(settings)), timeout_ms_(timeout_ms), calls_(kPamMaxStuck) {}

 protected:
  Expected<SessionEntry> CheckPassword(const std::string& username, const std::string& password,
                                       const AuthRequest& req) override {
    if (username.size() > 256) return MakeError(ErrorCode::kAuthFailed, "user name longer than 256 bytes");
    // The thread may outlive this call (a hung stack): it owns copies, and wipes its password copy.
    Expected<SessionEntry> r = calls_.Run(
        [s = settings_, username, pw = std::string(password), rhost = PeerHost(req.peer)]() mutable -> Expected<SessionEntry> {
          Expected<SessionEntry> out = RunPam(s, username, pw, rhost);
          WipeSecret(pw);
          return out;
        },
        timeout_ms_);
    if (!r.ok() && r.error().code == ErrorCode::kTimeout) {
      return MakeError(ErrorCode::kTimeout, "PAM service '" + settings_.service + "' " + r.error().message +
                                                " (the check goes on in the background; " +
                                                std::to_string(calls_.stuck()) + " hanging)");
    }
    if (!r.ok() && r.error().code == ErrorCode::kIo && r.error().message.find("hanging") != std::string::npos) {
      return MakeError(ErrorCode::kIo, "PAM service '" + settings_.service + "' refused without asking: " +
                                           r.error().message);
    }
    return r;
  }

 private:
  const PamSettings settings_;
  const int64_t timeout_ms_;
  BoundedCall<SessionEntry> calls_;
};

}  // namespace

Expected<std::unique_ptr<AuthModule>> CreatePamAuth(const ModuleOptions& options) {
  if (Status s = options.CheckAllowed({"service", "check-account", "timeout", "confdir"}); !s.ok()) return s.error();
  PamSettings settings;
  Expected<std::string> service = options.GetNonEmpty("service", std::string("xpra"));
  if (!service.ok()) return service.error();
  if (service->find('/') != std::string::npos) {
    return MakeError(ErrorCode::kMalformed, "pam authentication: service= is a name in /etc/pam.d, not a path");
  }
  settings.service = std::move(service).value();
  Expected<bool> check_account = GetBoolOption(options, "check-account", true);
  if (!check_account.ok()) return check_account.error();
  settings.check_account = *check_account;
  if (std::optional<std::string> dir = options.Get("confdir")) settings.confdir = AbsolutePath(*dir);
  Expected<int64_t> timeout = GetSecondsOption(options, "timeout", 10, 300);
  if (!timeout.ok()) return timeout.error();
  return std::unique_ptr<AuthModule>(new PamAuth(options, std::move(settings), *timeout));
}

}  // namespace xr::auth
