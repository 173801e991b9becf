#!/usr/bin/env bash
# Installs the Debian packages the tests need (browsers, broker, TURN server) when missing.
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "run 'sudo apt-get install ${missing[*]}' (or run make as root) and try again" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt (unattended-upgrades on a fresh machine) instead of failing.
wait_s=600
lock=(-o DPkg::Lock::Timeout=$wait_s)
# DPkg::Lock::Timeout covers dpkg's locks only: `apt-get update` (apt 2.6) still fails at
# once on /var/lib/apt/lists/lock, so that one is retried here for as long.
update_lists() {
  local deadline=$((SECONDS + wait_s)) err
  until err=$(apt-get "${lock[@]}" update -qq 2>&1 >/dev/null); do
    if ! grep -q "Could not get lock" <<<"$err" || [ "$SECONDS" -ge "$deadline" ]; then
      echo "$err" >&2
      return 1
    fi
    echo "waiting for another apt to release its lock..." >&2
    sleep 5
  done
}
update_lists
apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
