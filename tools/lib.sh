# Shared helpers for tools/run, tools/test and bench scripts. Source it; do not run it.

XR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian packages each job needs: the one place tools/run, tools/test and bench/compare read
# (bench/compare sources this file). Installed with --no-install-recommends, so every package a
# test or tool uses is named here, even when Debian would pull it in as a recommendation
# (xpra 3.1.3's server imports PIL to send a window: python3-pil is only a Recommends of xpra).
# systemd: systemd-analyze for //tests/deploy:systemd_unit_test.
XR_BUILD_PACKAGES=(bazel-bootstrap bazel-rules-java g++ liburing-dev libssl-dev libsqlite3-dev
  liblz4-dev zlib1g-dev libfmt-dev doctest-dev libcli11-dev nlohmann-json3-dev sqlite3
  libpam0g-dev libldap-dev libpq-dev)
XR_TEST_PACKAGES=(python3-seccomp clang-14 libclang-rt-14-dev python3-rencode python3-yaml xpra python3-pil xvfb xterm
  python3-gi-cairo xdotool x11-apps netcat-openbsd systemd libjs-jquery openssl curl
  chromium chromium-driver python3-selenium util-linux
  slapd ldap-utils passwd postgresql-15)
XR_BENCH_PACKAGES=(xpra python3-pil haproxy nginx-core libnginx-mod-stream python3-matplotlib openssl)
# Issue 19: a real Prometheus scrapes --bind-metrics (//tests/engine:relay_prometheus_test); a real
# HAProxy sends PROXY protocol v2 (//tests/engine:relay_proxy_protocol_test).
XR_TEST_PACKAGES+=(prometheus haproxy)
# xpra 6.5.3, built once per machine by tests/interop/xpra_modern.py from ../shared/xpra-modern
# (its build script's list; the tests and tools/golden/rencodeplus.py install nothing themselves).
XR_TEST_PACKAGES+=(gcc pkg-config python3-dev python3-setuptools libxxhash-dev liblz4-dev libx11-dev
  libxcomposite-dev libxdamage-dev libxtst-dev libxkbfile-dev libxres-dev libxrandr-dev libxfixes-dev libxi-dev
  libgtk-3-dev python-gi-dev python3-cairo-dev python3-gi python3-gi-cairo python3-cairo python3-pil xvfb xauth
  x11-xkb-utils xterm)
# AES of xpra 6.5.3 (test_modern's AES client, tools/golden/crypto6.py): only a Recommends of xpra.
XR_TEST_PACKAGES+=(python3-cryptography)
# Issue 16: bench/cluster_logins runs a real PostgreSQL 15 (psql and pg_stat_statements come with it).
XR_BENCH_PACKAGES+=(postgresql-15)
# The bridge's golden packets (tools/golden/bridge.py): xpra 3.1.3's lz4 as python writes it
# (a dependency of Debian's xpra today, named so a slimmer xpra cannot drop it).
XR_TEST_PACKAGES+=(python3-lz4)
# What the relay binary links against at run time (deploy/Containerfile's runtime stage reads this).
XR_RUNTIME_PACKAGES=(liburing2 libssl3 libsqlite3-0 liblz4-1 zlib1g libfmt9 libstdc++6
  libpam0g libpam-modules libldap-2.5-0 libpq5)
# tools/container and its test: podman with runc (crun 1.8 refuses the hybrid cgroups of hosts that
# are containers themselves), debootstrap for the base image when no registry has it.
XR_CONTAINER_PACKAGES=(podman runc debootstrap uidmap fuse-overlayfs slirp4netns)

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

# What the real xpra 3.1.3 programs of the interop suite need, checked before it starts so a
# missing package fails at once with its name instead of as dozens of timeouts. Prints one line
# per missing piece (and the package that brings it); returns non-zero when anything is missing.
xr_interop_preflight() {
  local bad=0 mod cmd
  for mod in "PIL python3-pil" "rencode python3-rencode" "gi python3-gi-cairo" "cairo python3-gi-cairo" "xpra xpra"; do
    set -- $mod
    /usr/bin/python3 -c "import $1" 2>/dev/null || { echo "missing python module '$1' for /usr/bin/python3 (package $2)"; bad=1; }
  done
  for cmd in "Xvfb xvfb" "xterm xterm" "xdotool xdotool" "xwd x11-apps" "xpra xpra" "nc netcat-openbsd"; do
    set -- $cmd
    command -v "$1" >/dev/null 2>&1 || { echo "missing program '$1' (package $2)"; bad=1; }
  done
  return $bad
}

xr_bazel() { (cd "$XR_ROOT" && bazel "$@"); }

# The project's packages. `//...` would also descend into Bazel's own bazel-<dir> symlink.
XR_TARGETS=(//codec/... //engine/... //auth/... //session_registry/... //tools/... //bench/... //tests/... //:all)
