#!/usr/bin/env bash
# xpra-relay-auth and xpra 3.1.3's own sqlite_auth.py work on each other's databases:
# same schema, same `list` output, same authenticate results and exit codes.
#   auth_tool_test.sh PATH_TO_xpra_relay_auth
set -u
ours="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
xpra_tool=/usr/lib/python3/dist-packages/xpra/server/auth/sqlite_auth.py
theirs() { /usr/bin/python3 "$xpra_tool" "$@"; }
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
cd "$tmp" || exit 1
passed=0
failed=0

check() {  # check DESCRIPTION EXPECTED_RC COMMAND...
  local what="$1" want="$2"
  shift 2
  "$@" >out.txt 2>err.txt
  local rc=$?
  if { [ "$want" = 0 ] && [ "$rc" -eq 0 ]; } || { [ "$want" != 0 ] && [ "$rc" -ne 0 ]; }; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $what (exit $rc, wanted $( [ "$want" = 0 ] && echo 0 || echo non-zero))"
    sed 's/^/  out: /' out.txt
    sed 's/^/  err: /' err.txt
  fi
}

check_output() {  # check_output DESCRIPTION EXPECTED_STDOUT COMMAND...
  local what="$1" want="$2"
  shift 2
  local got
  got="$("$@" 2>err.txt)"
  if [ "$got" = "$want" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $what"
    echo "  wanted: $want"
    echo "  got:    $got"
    sed 's/^/  err: /' err.txt
  fi
}

if [ ! -f "$xpra_tool" ] || [ ! -x /usr/bin/python3 ]; then
  echo "xpra 3.1.3 (Debian package) is required for this test"
  echo "0 passed, 1 failed"
  exit 1
fi

# --- usage and exit codes ---------------------------------------------------------------------
check "--help exits 0" 0 "$ours" --help
check "no arguments exits 1" 1 "$ours"
check "unknown command exits 1" 1 "$ours" x.db frobnicate
check "add with too few arguments exits 1" 1 "$ours" x.db add onlyuser
check "add with too many arguments exits 1" 1 "$ours" x.db add u p 1 2 3 4 5 6
check "list of a missing database exits 1" 1 "$ours" missing.db list

# --- a database created by our tool, used by xpra's ---------------------------------------------
check "ours: create" 0 "$ours" ours.db create
check "ours: create twice fails" 1 "$ours" ours.db create
check "ours: add minimal" 0 "$ours" ours.db add bob secret
check "ours: add full" 0 "$ours" ours.db add alice 'pw|1' 1000 1001 ':100, :101' 'A=1;B=2' 'compression_level=1;lz4=0'
check "ours: add quoted" 0 "$ours" ours.db add "o'neil" 'p"w' 5 5 'tcp://127.0.0.1:15200/' '' ''
check "ours: add latin-1" 0 "$ours" ours.db add jörg pässword 7 7
check "xpra: authenticate alice" 0 theirs ours.db authenticate alice 'pw|1'
check "xpra: authenticate bob" 0 theirs ours.db authenticate bob secret
check "xpra: authenticate o'neil" 0 theirs ours.db authenticate "o'neil" 'p"w'
check "xpra: authenticate jörg" 0 theirs ours.db authenticate jörg pässword
check "xpra: wrong password refused" 1 theirs ours.db authenticate alice wrong
check "xpra: unknown user refused" 1 theirs ours.db authenticate mallory secret
check_output "same list output" "$(theirs ours.db list)" "$ours" ours.db list
check_output "same sessions for alice" "$(theirs ours.db authenticate alice 'pw|1')" "$ours" ours.db authenticate alice 'pw|1'
check_output "same sessions for o'neil" "$(theirs ours.db authenticate "o'neil" 'p"w')" \
  "$ours" ours.db authenticate "o'neil" 'p"w'
check_output "same sessions for bob (default uid/gid)" "$(theirs ours.db authenticate bob secret)" \
  "$ours" ours.db authenticate bob secret

# --- a database created by xpra's tool, used by ours --------------------------------------------
check "xpra: create" 0 theirs xpra.db create
check "xpra: add minimal" 0 theirs xpra.db add carol carolpw
check "xpra: add full" 0 theirs xpra.db add dave davepw 2000 2000 ':200' 'X=y' 'zlib=1'
check "xpra: add latin-1" 0 theirs xpra.db add zoë crème 9 9
check "ours: authenticate carol" 0 "$ours" xpra.db authenticate carol carolpw
check "ours: authenticate dave" 0 "$ours" xpra.db authenticate dave davepw
check "ours: authenticate zoë" 0 "$ours" xpra.db authenticate zoë crème
check "ours: wrong password refused" 1 "$ours" xpra.db authenticate dave carolpw
check "ours: unknown user refused" 1 "$ours" xpra.db authenticate erin x
check_output "ours: dave's sessions" "success, found sessions: (2000, 2000, [':200'], {'X': 'y'}, {'zlib': '1'})" \
  "$ours" xpra.db authenticate dave davepw
check_output "same list output (xpra db)" "$(theirs xpra.db list)" "$ours" xpra.db list

# --- remove, then both tools agree the user is gone ---------------------------------------------
check "ours: remove with a wrong password keeps the user" 0 "$ours" xpra.db remove dave nope
check "xpra: dave still there" 0 theirs xpra.db authenticate dave davepw
check "ours: remove dave" 0 "$ours" xpra.db remove dave
check "xpra: dave gone" 1 theirs xpra.db authenticate dave davepw
check "ours: dave gone" 1 "$ours" xpra.db authenticate dave davepw
check "xpra: remove carol with password" 0 theirs xpra.db remove carol carolpw
check "ours: carol gone" 1 "$ours" xpra.db authenticate carol carolpw
check "xpra: remove zoë" 0 theirs xpra.db remove zoë
check_output "empty table" "no rows found" "$ours" xpra.db list

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
