#pragma once
// A real PostgreSQL 15 server for tests (Debian package postgresql-15): initdb in a temporary
// directory under /tmp, then `postgres` started as this process's child on a free port of
// 127.0.0.1 and stopped by its pid (SIGINT: fast shutdown). Under root (PostgreSQL refuses to run
// as root) both run as the `postgres` user, which owns the directory.
//
// The superuser is "xr" with a random password (scram-sha-256 over TCP), so URIs carry a real
// password the tests can look for in messages.

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <postgresql/libpq-fe.h>

namespace xr::auth::testing {

inline constexpr char kPgBin[] = "/usr/lib/postgresql/15/bin";

class PgServer {
 public:
  // Makes the cluster and starts it; ok() / why() tell whether that worked.
  PgServer() {
    if (access((std::string(kPgBin) + "/initdb").c_str(), X_OK) != 0 ||
        access((std::string(kPgBin) + "/postgres").c_str(), X_OK) != 0) {
      why_ = std::string("PostgreSQL 15 is not installed (") + kPgBin +
             "/initdb, postgres missing): install the Debian package postgresql-15 (tools/lib.sh XR_TEST_PACKAGES)";
      return;
    }
    char tmpl[] = "/tmp/xr-pg-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      why_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    if (geteuid() == 0) {
      struct passwd* pw = getpwnam("postgres");
      if (pw == nullptr) {
        why_ = "running as root and there is no 'postgres' user to run PostgreSQL as (package postgresql-common)";
        return;
      }
      uid_ = pw->pw_uid;
      gid_ = pw->pw_gid;
      if (chown(dir_.c_str(), uid_, gid_) != 0) {
        why_ = "cannot chown " + dir_;
        return;
      }
    }
    std::random_device rd;
    for (int i = 0; i < 24; ++i) password_ += "abcdefghijkmnpqrstuvwxyz23456789"[rd() % 32];
    const std::string pwfile = dir_ + "/pwfile";
    std::ofstream(pwfile) << password_ << "\n";
    if (uid_ >= 0 && chown(pwfile.c_str(), uid_, gid_) != 0) {
      why_ = "cannot chown " + pwfile;
      return;
    }
    if (Run({std::string(kPgBin) + "/initdb", "-D", data(), "-U", "xr", "--pwfile=" + pwfile,
             "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"},
            dir_ + "/initdb.log") != 0) {
      why_ = "initdb failed, see " + dir_ + "/initdb.log";
      keep_ = true;
      return;
    }
    port_ = FreePort();
    if (!Start()) keep_ = true;
  }

  ~PgServer() {
    Stop();
    if (!dir_.empty() && !keep_) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  bool ok() const { return why_.empty(); }
  const std::string& why() const { return why_; }
  int port() const { return port_; }
  const std::string& password() const { return password_; }
  pid_t pid() const { return pid_; }

  // postgresql://xr:PASSWORD@127.0.0.1:PORT/postgres
  std::string uri() const {
    return "postgresql://xr:" + password_ + "@127.0.0.1:" + std::to_string(port_) + "/postgres";
  }

  // Starts `postgres` on port() and waits (30 s at most) until it accepts connections.
  bool Start() {
    if (pid_ > 0) return true;
    why_.clear();
    pid_ = Spawn({std::string(kPgBin) + "/postgres", "-D", data(), "-p", std::to_string(port_), "-k", dir_, "-c",
                  "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=40"},
                 dir_ + "/postgres.log");
    if (pid_ < 0) {
      why_ = "cannot start postgres";
      return false;
    }
    const std::string ping = "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=postgres connect_timeout=2";
    for (int i = 0; i < 300; ++i) {
      if (PQping(ping.c_str()) == PQPING_OK) return true;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        why_ = "postgres exited at start-up, see " + dir_ + "/postgres.log";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    why_ = "postgres did not accept connections within 30 s, see " + dir_ + "/postgres.log";
    Stop();
    return false;
  }

  // Fast shutdown of the server this object started, waiting for it to exit.
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGINT);
    int status = 0;
    for (int i = 0; i < 300 && waitpid(pid_, &status, WNOHANG) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (waitpid(pid_, &status, WNOHANG) == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }

  // Runs SQL as the superuser; the error message, empty on success.
  std::string Sql(const std::string& sql) const {
    PGconn* c = PQconnectdb(("host=127.0.0.1 port=" + std::to_string(port_) + " dbname=postgres user=xr password=" +
                             password_ + " connect_timeout=5")
                                .c_str());
    std::string err;
    if (PQstatus(c) != CONNECTION_OK) {
      err = PQerrorMessage(c);
    } else {
      PGresult* r = PQexec(c, sql.c_str());
      const ExecStatusType s = PQresultStatus(r);
      if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) err = PQresultErrorMessage(r);
      PQclear(r);
    }
    PQfinish(c);
    return err;
  }

 private:
  std::string data() const { return dir_ + "/data"; }

  static int FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
  }

  // Forks and execs argv (as the postgres user under root), output to `log`; the child's pid.
  pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) const {
    const pid_t pid = fork();
    if (pid != 0) return pid;
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      if (uid_ >= 0 && fchown(fd, uid_, gid_) != 0) _exit(125);
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (uid_ >= 0 && (setgroups(0, nullptr) != 0 || setgid(gid_) != 0 || setuid(uid_) != 0)) _exit(126);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }

  int Run(const std::vector<std::string>& argv, const std::string& log) const {
    const pid_t pid = Spawn(argv, log);
    if (pid < 0) return -1;
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string dir_, password_, why_;
  int port_ = -1;
  pid_t pid_ = -1;
  int uid_ = -1, gid_ = -1;
  bool keep_ = false;
};

}  // namespace xr::auth::testing
