#!/bin/sh
# The container's entry point: creates the user database on first start, then replaces itself
# with the relay (exec: the relay is PID 1 and handles SIGTERM itself: every client is told
# "server shutdown", queued data is flushed, exit 0). Logs go to stderr (the container's log).
#
# With no arguments the relay listens on 0.0.0.0:443 with sqlite auth on the volume's database;
# any arguments replace that command line entirely.
set -eu
dir=/var/lib/xpra-relay
db="$dir/users.db"
mkdir -p "$dir/sockets"
if [ ! -f "$db" ]; then
  xpra-relay-auth "$db" create
  echo "xpra-relay: created the user database $db; add users with:" >&2
  echo "  podman exec CONTAINER xpra-relay-auth $db add USER PASSWORD '' '' tcp://HOST:PORT/" >&2
fi
if [ $# -eq 0 ]; then
  set -- --bind-tcp=0.0.0.0:443 --tcp-auth="sqlite,filename=$db"
fi
exec xpra-relay --socket-dir="$dir/sockets" "$@"
