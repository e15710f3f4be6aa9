#!/usr/bin/env bash
# Runs relay_smoke_test.py with Debian's python3 (stdlib only).
py=/usr/bin/python3
[ -x "$py" ] || py=python3
exec "$py" "$(dirname "$0")/relay_smoke_test.py" "$@"
