#!/usr/bin/env bash
# Runs a command in a fresh network namespace that has only loopback, so browsers and the
# agent see 127.0.0.1 alone and no test traffic can leave the machine. Needs root (or
# unprivileged user namespaces).
set -euo pipefail
inner='ip link set lo up && ip route add default dev lo src 127.0.0.1 && exec "$@"'
if [ "$(id -u)" -eq 0 ]; then
  exec unshare --net --mount --propagation private -- bash -c "$inner" isolated "$@"
fi
exec unshare --user --map-root-user --net --mount -- bash -c "$inner" isolated "$@"
