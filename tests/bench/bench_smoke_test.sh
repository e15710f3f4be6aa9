#!/usr/bin/env bash
# Smoke test of the load tools: starts xpra-synthetic-server on a free port and runs
# xpra-relay-bench against it in every mode for ~2 s with a few connections. Checks that the
# runs succeed and their JSON figures are sane (pings and bytes arrive, zero errors), that the
# password challenge works, that a wrong password fails with "authentication", and that stream
# corruption and gaps are caught. Not how fast.
#   bench_smoke_test.sh PATH_TO_synthetic_server PATH_TO_bench_client
set -u
abspath() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
server_bin="$(abspath "$1")"
bench_bin="$(abspath "$2")"
py=/usr/bin/python3
[ -x "$py" ] || py=python3
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
cd "$tmp" || exit 1
passed=0
failed=0
server_pids=()

pass() { passed=$((passed + 1)); }
fail() {
  failed=$((failed + 1))
  echo "FAIL: $1"
  shift
  for f in "$@"; do [ -f "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -20; done
}

cleanup() {
  for p in "${server_pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT

# start_server NAME ARGS... : starts a server on a free port; sets PORT and PID.
start_server() {
  local name="$1"
  shift
  "$server_bin" --bind=127.0.0.1:0 --threads=2 "$@" >"$name.log" 2>"$name.err" &
  PID=$!
  server_pids+=("$PID")
  PORT=""
  for _ in $(seq 1 100); do
    PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$name.log")
    [ -n "$PORT" ] && return 0
    sleep 0.05
  done
  echo "server $name did not start"
  cat "$name.err"
  return 1
}

# json_check FILE PYTHON_EXPR : the expression (over `j`, the parsed JSON) must be true.
json_check() {
  "$py" - "$1" "$2" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
ok = eval(sys.argv[2], {"j": j})
if not ok:
    print("  json check failed: %s" % sys.argv[2])
    print(json.dumps(j, indent=1)[:3000])
sys.exit(0 if ok else 1)
EOF
}

# run_ok NAME JSON_EXPR BENCH_ARGS... : the bench must exit 0 and its JSON satisfy JSON_EXPR.
run_ok() {
  local name="$1" expr="$2"
  shift 2
  "$bench_bin" "$@" --json "$name.json" >"$name.out" 2>"$name.err"
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "$name: exit $rc" "$name.out" "$name.err"
  elif ! json_check "$name.json" "$expr"; then
    fail "$name: figures" "$name.out"
  else
    pass
  fi
}

# run_fails NAME PATTERN BENCH_ARGS... : the bench must exit non-zero with PATTERN on stderr.
run_fails() {
  local name="$1" pattern="$2"
  shift 2
  timeout 60 "$bench_bin" "$@" --json "$name.json" >"$name.out" 2>"$name.err"
  local rc=$?
  if [ "$rc" -eq 0 ]; then
    fail "$name: exit 0, wanted non-zero" "$name.out" "$name.err"
  elif ! grep -qi -- "$pattern" "$name.err"; then
    fail "$name: no '$pattern' in the message" "$name.err"
  elif ! json_check "$name.json" 'j["errors"] > 0'; then
    fail "$name: JSON does not count the error"
  else
    pass
  fi
}

# --- usage -----------------------------------------------------------------------------------
"$bench_bin" --help >/dev/null 2>&1 && pass || fail "bench --help"
"$server_bin" --help >/dev/null 2>&1 && pass || fail "server --help"
"$bench_bin" nosuchmode tcp://127.0.0.1:1/ >/dev/null 2>&1; [ $? -eq 2 ] && pass || fail "unknown mode exits 2"
"$server_bin" >/dev/null 2>&1; [ $? -eq 2 ] && pass || fail "server without --bind exits 2"
printf 'smoke-key\n' >aes.key
: >empty.key
"$bench_bin" handshake tcp://127.0.0.1:1/ --encryption=AES >/dev/null 2>&1; [ $? -eq 2 ] && pass || fail "--encryption=AES without a keyfile exits 2"
"$bench_bin" handshake tcp://127.0.0.1:1/ --encryption=DES --encryption-keyfile=aes.key >/dev/null 2>&1; [ $? -eq 2 ] && pass || fail "--encryption=DES exits 2"
"$bench_bin" handshake tcp://127.0.0.1:1/ --encryption=AES --encryption-keyfile=empty.key >/dev/null 2>&1; [ $? -eq 2 ] && pass || fail "an empty keyfile exits 2"

# --- every mode against an open server --------------------------------------------------------
start_server open || exit 1
open_pid=$PID
url="tcp://bench@127.0.0.1:$PORT/"
common=(--connections=3 --duration=2 --quiet)
run_ok handshake 'j["errors"] == 0 and j["sessions"] > 0 and j["sessions_per_s"] > 0 and j["time_to_attached_us"]["count"] > 0 and 0 < j["time_to_attached_us"]["p50"] <= j["time_to_attached_us"]["p99"]' \
  handshake "$url" "${common[@]}"
run_ok latency 'j["errors"] == 0 and j["pings"] > 0 and j["rtt_us"]["count"] == j["pings"] and 0 < j["rtt_us"]["p50"] <= j["rtt_us"]["p99"] <= j["rtt_us"]["p999"] <= j["rtt_us"]["max"]' \
  latency "$url" "${common[@]}"
run_ok latency_rate 'j["errors"] == 0 and 20 <= j["pings"] <= 3 * 2 * 10 * 1.5' \
  latency "$url" "${common[@]}" --rate=10
run_ok throughput 'j["errors"] == 0 and j["payload_bytes"] > 0 and j["packets"] > 0 and j["payload_bytes"] == j["packets"] * 65536 and j["mb_per_s"] > 0' \
  throughput "$url" "${common[@]}"
run_ok throughput_small 'j["errors"] == 0 and j["packets"] > 0 and j["payload_bytes"] == j["packets"] * 100' \
  throughput "$url" "${common[@]}" --size=100
run_ok throughput_rate 'j["errors"] == 0 and 3 * 2 * 50 * 0.6 <= j["packets"] <= 3 * 2 * 50 * 1.4' \
  throughput "$url" "${common[@]}" --size=4096 --rate=50
run_ok throughput_pid_cpu 'j["errors"] == 0 and j["packets"] > 0 and j["pid_cpu_seconds"] >= 0 and 0 <= j["pid_cpu_cores"] <= 64 and ("mb_per_s_per_pid_core" in j or j["pid_cpu_seconds"] == 0)' \
  throughput "$url" "${common[@]}" --pid="$open_pid"
run_ok idle "j['errors'] == 0 and j['held'] == 3 and 'rss_bytes_per_connection' in j and j['rss_after_bytes'] > 0" \
  idle "$url" "${common[@]}" --pid="$open_pid"
run_ok idle_many 'j["errors"] == 0 and j["held"] == 300' \
  idle "$url" --connections=300 --duration=1 --quiet

# An AES client against a server that does not encrypt: its plain hello is refused.
run_fails aes_plain_server "encrypt" handshake "$url" --connections=1 --duration=1 --quiet \
  --encryption=AES --encryption-keyfile=aes.key

# A server that is not there: a connect error, reported.
run_fails refused "connect" latency "tcp://127.0.0.1:1/" --connections=1 --duration=1 --quiet

# A server that accepts and never answers: no session, so a failed handshake run.
"$py" -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
print(s.getsockname()[1], flush=True); time.sleep(120)' >silent.port &
server_pids+=("$!")
for _ in $(seq 1 100); do [ -s silent.port ] && break; sleep 0.05; done
"$bench_bin" handshake "tcp://127.0.0.1:$(cat silent.port)/" --connections=2 --duration=1 --quiet >silent.out 2>silent.err
rc=$?
if [ "$rc" -ne 0 ] && grep -q "no session completed" silent.err; then pass; else fail "silent server: exit $rc" silent.err; fi

# --- password: the challenge path -------------------------------------------------------------
start_server secret --password=s3cr3t || exit 1
run_ok password_handshake 'j["errors"] == 0 and j["sessions"] > 0 and j["challenges"] >= j["sessions"]' \
  handshake "tcp://bench:s3cr3t@127.0.0.1:$PORT/" "${common[@]}"
run_ok password_latency 'j["errors"] == 0 and j["pings"] > 0 and j["challenges"] == 3' \
  latency "tcp://bench:s3cr3t@127.0.0.1:$PORT/" "${common[@]}"
run_fails wrong_password "authentication" latency "tcp://bench:nope@127.0.0.1:$PORT/" "${common[@]}"
run_fails no_password "authentication" handshake "tcp://bench@127.0.0.1:$PORT/" "${common[@]}"

# --- stream integrity: corruption and gaps must be errors -------------------------------------
start_server corrupt --inject-fault=corrupt:5 || exit 1
run_fails corrupt "corrupt" throughput "tcp://127.0.0.1:$PORT/" --connections=2 --duration=2 --quiet
start_server gap --inject-fault=gap:5 || exit 1
run_fails gap "gap" throughput "tcp://127.0.0.1:$PORT/" --connections=2 --duration=2 --quiet

# --- clean shutdown with a summary ------------------------------------------------------------
kill -TERM "$open_pid"
wait "$open_pid"
rc=$?
if [ "$rc" -eq 0 ] && grep -q "stopped after" open.log; then pass; else fail "server SIGTERM: exit $rc" open.log open.err; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
