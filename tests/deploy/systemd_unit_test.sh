#!/bin/bash
# deploy/xpra-relay.service passes `systemd-analyze verify` with no diagnostic at all, and
# `systemd-analyze security --offline` rates its exposure OK (below 3.0). verify needs the
# ExecStart binary to exist: a drop-in in the test's own unit dir points ExecStart at a stub
# the test creates; everything else is the unit as shipped.
set -euo pipefail
unit_src="$1"
command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze missing (package systemd, tools/lib.sh XR_TEST_PACKAGES)"; exit 1; }

dir="$(mktemp -d "${TEST_TMPDIR:-/tmp}/xr-unit-XXXXXX")"
trap 'rm -rf "$dir"' EXIT
cp "$unit_src" "$dir/xpra-relay.service"
# Without the drop-in verify must complain about the missing binary (so the check below can fail).
if [ ! -e /usr/bin/xpra-relay ]; then
  if SYSTEMD_UNIT_PATH="$dir:" systemd-analyze verify "$dir/xpra-relay.service" >"$dir/out0" 2>&1 \
     || ! grep -q 'not executable' "$dir/out0"; then
    echo "FAIL: verify did not notice /usr/bin/xpra-relay is missing; the test would prove nothing"; cat "$dir/out0"; exit 1
  fi
fi
printf '#!/bin/sh\nexit 0\n' > "$dir/xpra-relay"
chmod +x "$dir/xpra-relay"
mkdir "$dir/xpra-relay.service.d"
printf '[Service]\nExecStart=\nExecStart=%s/xpra-relay --config=/etc/xpra-relay/xpra-relay.conf\n' "$dir" \
  > "$dir/xpra-relay.service.d/test-execstart.conf"

if ! SYSTEMD_UNIT_PATH="$dir:" systemd-analyze verify "$dir/xpra-relay.service" >"$dir/out" 2>&1; then
  echo "FAIL: systemd-analyze verify"; cat "$dir/out"; exit 1
fi
if [ -s "$dir/out" ]; then
  echo "FAIL: systemd-analyze verify printed diagnostics:"; cat "$dir/out"; exit 1
fi
echo "ok: systemd-analyze verify"

for want in 'Type=notify' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'PrivateTmp=yes' \
            'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' 'AmbientCapabilities=CAP_NET_BIND_SERVICE' \
            'StateDirectory=xpra-relay' 'ExecReload=/bin/kill -HUP $MAINPID'; do
  grep -qxF "$want" "$dir/xpra-relay.service" || { echo "FAIL: unit lacks $want"; exit 1; }
done
grep -qE '^SystemCallFilter=.*\bio_uring_setup\b.*\bio_uring_enter\b.*\bio_uring_register\b' "$dir/xpra-relay.service" \
  || { echo "FAIL: SystemCallFilter does not keep io_uring"; exit 1; }
SYSTEMD_UNIT_PATH="$dir:" systemd-analyze security --offline=yes --no-pager "$dir/xpra-relay.service" > "$dir/sec" 2>&1 || true
level="$(sed -n 's/.*Overall exposure level for xpra-relay.service: \([0-9.]*\).*/\1/p' "$dir/sec")"
[ -n "$level" ] || { echo "FAIL: no exposure level from systemd-analyze security"; cat "$dir/sec"; exit 1; }
awk -v l="$level" 'BEGIN { exit !(l < 3.0) }' || { echo "FAIL: exposure level $level (want < 3.0)"; cat "$dir/sec"; exit 1; }
echo "ok: exposure level $level"
