#!/usr/bin/env bash
# Runs a Python test script (stdlib only) with Debian's python3: py_test.sh SCRIPT ARGS...
py=/usr/bin/python3
[ -x "$py" ] || py=python3
exec "$py" "$@"
