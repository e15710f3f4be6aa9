# Shared helpers for tools/run, tools/test and bench scripts. Source it; do not run it.

XR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian packages each job needs.
XR_BUILD_PACKAGES=(bazel-bootstrap bazel-rules-java g++ liburing-dev libssl-dev libsqlite3-dev
  liblz4-dev zlib1g-dev libfmt-dev doctest-dev libcli11-dev nlohmann-json3-dev sqlite3)
XR_TEST_PACKAGES=(clang-14 libclang-rt-14-dev python3-rencode xpra xvfb xterm python3-gi-cairo
  xdotool x11-apps netcat-openbsd)

xr_log() { echo "[xpra-relay] $*" >&2; }

# Installs the packages that are not installed yet; runs apt-get update only when needed.
xr_ensure_packages() {
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  xr_log "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q >/dev/null || { xr_log "apt-get update failed"; return 1; }
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { xr_log "apt-get install failed for: ${missing[*]}"; return 1; }
}

xr_bazel() { (cd "$XR_ROOT" && bazel "$@"); }

# The project's packages. `//...` would also descend into Bazel's own bazel-<dir> symlink.
XR_TARGETS=(//codec/... //engine/... //auth/... //session_registry/... //tools/... //bench/... //tests/... //:all)
