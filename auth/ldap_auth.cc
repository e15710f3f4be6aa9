#include "auth/ldap_auth.h"

#include <ldap.h>
#include <netdb.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "auth/bounded_call.h"
#include "auth/module_base.h"

namespace xr::auth {
namespace {

enum class Tls { kNone, kLdaps, kStartTls };

struct LdapSettings {
  std::string host;
  int port = 389;
  Tls tls = Tls::kNone;
  std::string cacert;
  std::string username_format;
  std::string domain;
  std::optional<int64_t> uid, gid;  // uid= / gid=
  std::string search_base, search_filter, bind_dn, bind_password;
  int64_t timeout_ms = 5000;

  std::string uri() const {
    const bool v6 = host.find(':') != std::string::npos;
    return std::string(tls == Tls::kLdaps ? "ldaps://" : "ldap://") + (v6 ? "[" + host + "]" : host) + ":" +
           std::to_string(port);
  }
};

// xpra's %domain: socket.getfqdn() after its first dot, else "localdomain".
std::string LocalDomain() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "localdomain";
  std::string fqdn = name;
  addrinfo hints{};
  hints.ai_flags = AI_CANONNAME;
  addrinfo* res = nullptr;
  if (getaddrinfo(name, nullptr, &hints, &res) == 0 && res != nullptr) {
    if (res->ai_canonname != nullptr) fqdn = res->ai_canonname;
    freeaddrinfo(res);
  }
  size_t dot = fqdn.find('.');
  return dot == std::string::npos || dot + 1 == fqdn.size() ? "localdomain" : fqdn.substr(dot + 1);
}

std::string Replace(std::string s, std::string_view what, std::string_view with) {
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + with.size())) {
    s.replace(at, what.size(), with);
  }
  return s;
}

// Whether an LDAP result means "the directory could not be asked" rather than "refused".
bool Unreachable(int rc) {
  return rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT || rc == LDAP_CONNECT_ERROR || rc == LDAP_UNAVAILABLE ||
         rc == LDAP_BUSY || rc == LDAP_TIMELIMIT_EXCEEDED;
}

// An LDAP handle, unbound on destruction.
class Handle {
 public:
  ~Handle() {
    if (ld_ != nullptr) ldap_unbind_ext_s(ld_, nullptr, nullptr);
  }
  LDAP** out() { return &ld_; }
  LDAP* get() const { return ld_; }

 private:
  LDAP* ld_ = nullptr;
};

// An LDAPMessage chain, freed on destruction.
struct Messages {
  LDAPMessage* m = nullptr;
  ~Messages() {
    if (m != nullptr) ldap_msgfree(m);
  }
};

class Checker {
 public:
  Checker(const LdapSettings& s) : s_(s) {}

  Expected<SessionEntry> Check(const std::string& username, const std::string& password) {
    if (Status st = Connect(); !st.ok()) return st.error();
    std::string dn;
    if (!s_.search_base.empty()) {
      if (!s_.bind_dn.empty()) {
        int rc = Bind(s_.bind_dn, s_.bind_password);
        if (rc != LDAP_SUCCESS) return Failure("search bind as '" + s_.bind_dn + "'", rc, /*refusal_is_config=*/true);
      }
      const std::string filter =
          Replace(Replace(s_.search_filter, "%username", EscapeFilterValue(username)), "%domain", s_.domain);
      Expected<std::string> found = FindOne(filter);
      if (!found.ok()) return found.error();
      dn = std::move(found).value();
    } else {
      dn = Replace(Replace(s_.username_format, "%username", EscapeDnValue(username)), "%domain", s_.domain);
    }
    int rc = Bind(dn, password);
    if (rc != LDAP_SUCCESS) return Failure("bind as '" + dn + "'", rc, false);
    return Entry(username, dn);
  }

 private:
  Status Connect() {
    if (int rc = ldap_initialize(h_.out(), s_.uri().c_str()); rc != LDAP_SUCCESS) {
      return MakeError(ErrorCode::kIo, "LDAP server " + s_.uri() + ": " + ldap_err2string(rc));
    }
    LDAP* ld = h_.get();
    int version = LDAP_VERSION3;
    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
    timeval tv{static_cast<time_t>(s_.timeout_ms / 1000), static_cast<suseconds_t>((s_.timeout_ms % 1000) * 1000)};
    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
    if (s_.tls != Tls::kNone) {
      int demand = LDAP_OPT_X_TLS_DEMAND;
      ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
      if (!s_.cacert.empty()) ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, s_.cacert.c_str());
      int is_server = 0;
      ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &is_server);
    }
    if (s_.tls == Tls::kStartTls) {
      int rc = ldap_start_tls_s(ld, nullptr, nullptr);
      if (rc != LDAP_SUCCESS) {
        return MakeError(Unreachable(rc) ? ErrorCode::kIo : ErrorCode::kAuthFailed,
                         "LDAP server " + s_.uri() + ": StartTLS failed: " + ldap_err2string(rc));
      }
    }
    return Status::Ok();
  }

  int Bind(const std::string& dn, const std::string& password) {
    berval cred;
    cred.bv_val = const_cast<char*>(password.data());
    cred.bv_len = password.size();
    return ldap_sasl_bind_s(h_.get(), dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, nullptr);
  }

  Error Failure(const std::string& what, int rc, bool refusal_is_config) {
    if (Unreachable(rc)) {
      return MakeError(ErrorCode::kIo, "LDAP server " + s_.uri() + " unreachable (" + what + "): " + ldap_err2string(rc));
    }
    if (refusal_is_config) {
      return MakeError(ErrorCode::kIo, "LDAP " + what + " refused (check bind_dn/bind_password): " + ldap_err2string(rc));
    }
    return MakeError(ErrorCode::kAuthFailed, "LDAP " + what + ": " + ldap_err2string(rc));
  }

  timeval Timeout() const {
    return timeval{static_cast<time_t>(s_.timeout_ms / 1000), static_cast<suseconds_t>((s_.timeout_ms % 1000) * 1000)};
  }

  // search_base / filter -> the one matching entry's DN (and its uidNumber/gidNumber).
  Expected<std::string> FindOne(const std::string& filter) {
    char uid_attr[] = "uidNumber";
    char gid_attr[] = "gidNumber";
    char* attrs[] = {uid_attr, gid_attr, nullptr};
    timeval tv = Timeout();
    Messages res;
    int rc = ldap_search_ext_s(h_.get(), s_.search_base.c_str(), LDAP_SCOPE_SUBTREE, filter.c_str(), attrs, 0,
                               nullptr, nullptr, &tv, 2, &res.m);
    if (rc == LDAP_SIZELIMIT_EXCEEDED) {
      return MakeError(ErrorCode::kAuthFailed, "LDAP search " + filter + " matches more than one entry");
    }
    if (rc != LDAP_SUCCESS) return Failure("search under '" + s_.search_base + "'", rc, true);
    if (ldap_count_entries(h_.get(), res.m) != 1) {
      return MakeError(ErrorCode::kAuthFailed, "LDAP search " + filter + " matches no entry");
    }
    LDAPMessage* e = ldap_first_entry(h_.get(), res.m);
    char* dn = ldap_get_dn(h_.get(), e);
    if (dn == nullptr) return MakeError(ErrorCode::kIo, "LDAP search result without a DN");
    std::string out = dn;
    ldap_memfree(dn);
    ReadIds(e);
    return out;
  }

  // Reads uidNumber / gidNumber of entry `e` when present.
  void ReadIds(LDAPMessage* e) {
    for (auto [attr, dest] : {std::pair<const char*, std::optional<int64_t>*>{"uidNumber", &dir_uid_},
                              std::pair<const char*, std::optional<int64_t>*>{"gidNumber", &dir_gid_}}) {
      berval** vals = ldap_get_values_len(h_.get(), e, attr);
      if (vals == nullptr) continue;
      if (vals[0] != nullptr && vals[0]->bv_len > 0 && vals[0]->bv_len < 20) {
        std::string v(vals[0]->bv_val, vals[0]->bv_len);
        char* end = nullptr;
        long long n = std::strtoll(v.c_str(), &end, 10);
        if (end == v.c_str() + v.size() && n >= 0) *dest = n;
      }
      ldap_value_free_len(vals);
    }
  }

  // The bound user's uid/gid: options, else the entry's uidNumber/gidNumber, else NSS.
  Expected<SessionEntry> Entry(const std::string& username, const std::string& dn) {
    if (s_.search_base.empty() && (!s_.uid || !s_.gid)) {
      char uid_attr[] = "uidNumber";
      char gid_attr[] = "gidNumber";
      char* attrs[] = {uid_attr, gid_attr, nullptr};
      char filter[] = "(objectClass=*)";
      timeval tv = Timeout();
      Messages res;
      if (ldap_search_ext_s(h_.get(), dn.c_str(), LDAP_SCOPE_BASE, filter, attrs, 0, nullptr, nullptr, &tv, 1,
                            &res.m) == LDAP_SUCCESS) {
        if (LDAPMessage* e = ldap_first_entry(h_.get(), res.m)) ReadIds(e);
      }
    }
    std::optional<SessionEntry> nss = SystemUserEntry(username);
    SessionEntry entry;
    entry.uid = s_.uid ? *s_.uid : dir_uid_ ? *dir_uid_ : nss ? nss->uid : -1;
    entry.gid = s_.gid ? *s_.gid : dir_gid_ ? *dir_gid_ : nss ? nss->gid : -1;
    if (entry.uid < 0 || entry.gid < 0) {
      return MakeError(ErrorCode::kAuthFailed, "'" + username + "' bound, but has no uid/gid: give the entry "
                                               "uidNumber/gidNumber, or set uid=/gid=");
    }
    return entry;
  }

  const LdapSettings& s_;
  Handle h_;
  std::optional<int64_t> dir_uid_, dir_gid_;
};

class LdapAuth final : public ClearPasswordModuleBase {
 public:
  LdapAuth(const ModuleOptions& options, LdapSettings settings)
      : ClearPasswordModuleBase(options), settings_(std::move(settings)), calls_(kLdapMaxStuck) {}

 protected:
  Expected<SessionEntry> CheckPassword(const std::string& username, const std::string& password,
                                       const AuthRequest&) override {
    if (username.size() > 256) return MakeError(ErrorCode::kAuthFailed, "user name longer than 256 bytes");
    // libldap's own timeouts bound each step; the whole check is bounded again (DNS, TLS).
    Expected<SessionEntry> r = calls_.Run(
        [s = settings_, username, pw = std::string(password)]() mutable -> Expected<SessionEntry> {
          Expected<SessionEntry> out = Checker(s).Check(username, pw);
          WipeSecret(pw);
          return out;
        },
        settings_.timeout_ms * 2 + 500);
    if (!r.ok() && r.error().code == ErrorCode::kTimeout) {
      return MakeError(ErrorCode::kTimeout, "LDAP server " + settings_.uri() + " " + r.error().message);
    }
    return r;
  }

 private:
  static constexpr int kLdapMaxStuck = 4;
  const LdapSettings settings_;
  BoundedCall<SessionEntry> calls_;
};

}  // namespace

std::string EscapeDnValue(std::string_view value) {
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '\0') {
      out += "\\00";
    } else if (std::strchr(",+\"\\<>;=", c) != nullptr || (i == 0 && (c == '#' || c == ' ')) ||
               (i + 1 == value.size() && c == ' ')) {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeFilterValue(std::string_view value) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : value) {
    if (c == '*' || c == '(' || c == ')' || c == '\\' || c == '\0') {
      out += '\\';
      out += kHex[(static_cast<unsigned char>(c) >> 4) & 15];
      out += kHex[static_cast<unsigned char>(c) & 15];
    } else {
      out += c;
    }
  }
  return out;
}

Expected<std::unique_ptr<AuthModule>> CreateLdapAuth(const ModuleOptions& options) {
  if (Status s = options.CheckAllowed({"host", "port", "tls", "cacert", "username_format", "encoding", "uid", "gid",
                                       "search_base", "search_filter", "bind_dn", "bind_password", "timeout"});
      !s.ok()) {
    return s.error();
  }
  auto bad = [&](const std::string& what) {
    return MakeError(ErrorCode::kMalformed, options.module() + " authentication: " + what);
  };
  LdapSettings s;
  Expected<std::string> host = options.GetNonEmpty("host", std::string("localhost"));
  if (!host.ok()) return host.error();
  s.host = std::move(host).value();
  const std::string tls = options.Get("tls").value_or("0");
  if (tls == "0" || tls == "no" || tls == "false") {
    s.tls = Tls::kNone;
  } else if (tls == "1" || tls == "yes" || tls == "true") {
    s.tls = Tls::kLdaps;
  } else if (tls == "starttls") {
    s.tls = Tls::kStartTls;
  } else {
    return bad("tls= must be 0, 1 or starttls, not '" + tls + "'");
  }
  s.port = s.tls == Tls::kLdaps ? 636 : 389;
  if (std::optional<std::string> port = options.Get("port")) {
    char* end = nullptr;
    long p = std::strtol(port->c_str(), &end, 10);
    if (port->empty() || end != port->c_str() + port->size() || p < 1 || p > 65535) {
      return bad("port= must be 1 to 65535, not '" + *port + "'");
    }
    s.port = static_cast<int>(p);
  }
  if (std::optional<std::string> cacert = options.Get("cacert")) {
    s.cacert = AbsolutePath(*cacert);
    if (access(s.cacert.c_str(), R_OK) != 0) {
      return MakeError(ErrorCode::kIo, options.module() + " authentication: cannot read cacert " + s.cacert);
    }
  }
  const std::string encoding = options.Get("encoding").value_or("utf-8");
  if (encoding != "utf-8" && encoding != "utf8" && encoding != "UTF-8") {
    return bad("only encoding=utf-8 is supported");
  }
  s.username_format = options.Get("username_format").value_or("cn=%username, o=%domain");
  if (s.username_format.find("%username") == std::string::npos) return bad("username_format= needs %username");
  s.search_base = options.Get("search_base").value_or("");
  s.search_filter = options.Get("search_filter").value_or("(uid=%username)");
  if (s.search_filter.find("%username") == std::string::npos) return bad("search_filter= needs %username");
  s.bind_dn = options.Get("bind_dn").value_or("");
  s.bind_password = options.Get("bind_password").value_or("");
  if (!s.bind_dn.empty() && s.search_base.empty()) return bad("bind_dn= is used only with search_base=");
  if (!s.bind_dn.empty() && s.bind_password.empty()) return bad("bind_dn= needs bind_password=");
  if (std::optional<std::string> uid = options.Get("uid")) s.uid = ParseUid(*uid);
  if (std::optional<std::string> gid = options.Get("gid")) s.gid = ParseGid(*gid);
  Expected<int64_t> timeout = GetSecondsOption(options, "timeout", 5, 60);
  if (!timeout.ok()) return timeout.error();
  s.timeout_ms = *timeout;
  s.domain = LocalDomain();
  return std::unique_ptr<AuthModule>(new LdapAuth(options, std::move(s)));
}

}  // namespace xr::auth
