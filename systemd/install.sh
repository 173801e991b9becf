#!/usr/bin/env bash
# Installs the edgecam agent from a provisioning bundle (`edgecam provision` writes one into
# OUT/boot/edgecam/): what cloud-init runs at first boot, and what an already running Pi runs
# by hand:   sudo bash /path/to/edgecam/install.sh
#
#   --root DIR    install under DIR instead of / (a staging root; nothing is started)
#   --from DIR    the bundle: edgecam.toml, ca.pem, device.pem, device.key, edgecam-*.whl
#                 (default: the directory of this script)
#   --wheel PATH  the agent's wheel (default: the one edgecam-*.whl in --from)
#   --python PATH the interpreter the venv is made from (default: python3)
#   --no-deps     install the wheel alone: its dependencies are already importable
#   --no-start    install everything but do not enable or start the service
#
# Running it again is harmless: what is in place is kept or updated, never duplicated.
# The bundle's device.key is moved (0640 root:edgecam) and the bundle's copy shredded; the key
# is never printed.
set -euo pipefail

root=/
from=$(dirname "$(readlink -f "$0")")
wheel=
python=python3
no_deps=0
start=1
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    --wheel) wheel=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --no-deps) no_deps=1; shift ;;
    --no-start) start=0; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'edgecam install: %s\n' "$*"; }
die() { printf 'edgecam install: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo bash $0)"
root=$(readlink -f "$root")
at() { if [ "$root" = / ]; then printf '%s' "$1"; else printf '%s%s' "$root" "$1"; fi; }
venv=$(at /opt/edgecam)
etc=$(at /etc/edgecam)
state=$(at /var/lib/edgecam)
unit=$(at /etc/systemd/system/edgecam.service)

for name in edgecam.toml ca.pem device.pem; do
  [ -f "$from/$name" ] || die "$from/$name missing: is --from an edgecam provision bundle?"
done
if [ -z "$wheel" ]; then
  shopt -s nullglob
  wheels=("$from"/edgecam-*.whl)
  shopt -u nullglob
  [ ${#wheels[@]} -eq 1 ] || die "expected one edgecam-*.whl in $from, found ${#wheels[@]} (give --wheel)"
  wheel=${wheels[0]}
fi
[ -f "$wheel" ] || die "$wheel: no such file"
say "installing into $root from $from"

# --- 1. the system user, in group video (the camera) --------------------------------------
if [ "$root" = / ]; then
  getent group video >/dev/null || groupadd --system video
  if id edgecam >/dev/null 2>&1; then
    usermod --append --groups video edgecam
    say "user edgecam: exists (group video ensured)"
  else
    useradd --system --user-group --groups video --home-dir /var/lib/edgecam \
      --no-create-home --shell /usr/sbin/nologin edgecam
    say "user edgecam: created (group video)"
  fi
else
  # A staging root has its own account files; useradd --prefix writes those, not the host's.
  mkdir -p "$root/etc"
  for f in passwd group; do [ -e "$root/etc/$f" ] || install -m 0644 /dev/null "$root/etc/$f"; done
  for f in shadow gshadow; do [ -e "$root/etc/$f" ] || install -m 0600 /dev/null "$root/etc/$f"; done
  grep -q '^video:' "$root/etc/group" || groupadd --prefix "$root" --system video
  if grep -q '^edgecam:' "$root/etc/passwd"; then
    say "user edgecam: exists in $root/etc/passwd"
  else
    useradd --prefix "$root" --system --user-group --groups video \
      --home-dir /var/lib/edgecam --no-create-home --shell /usr/sbin/nologin edgecam
    say "user edgecam: created in $root/etc/passwd (group video)"
  fi
fi
uid=$(awk -F: '$1 == "edgecam" { print $3 }' "$(at /etc/passwd)")
gid=$(awk -F: '$1 == "edgecam" { print $3 }' "$(at /etc/group)")
[ -n "$uid" ] && [ -n "$gid" ] || die "user or group edgecam missing after creating them"

# --- 2. the venv, seeing the OS's libcamera/picamera2 --------------------------------------
if [ -x "$venv/bin/python" ]; then
  say "venv $venv: exists"
else
  "$python" -m venv --system-site-packages "$venv"
  say "venv $venv: created (--system-site-packages)"
fi

# --- 3. the agent ---------------------------------------------------------------------------
pip_args=(--disable-pip-version-check --no-input --quiet)
say "agent: pip install $(basename "$wheel")"
"$venv/bin/python" -m pip install "${pip_args[@]}" --force-reinstall --no-deps "$wheel"
if [ "$no_deps" -eq 0 ]; then
  "$venv/bin/python" -m pip install "${pip_args[@]}" "$wheel"
fi
say "agent: $("$venv/bin/edgecam" --version)"

# --- 4. config and certificates: readable by the service, the key by nobody else ------------
install -d -m 0755 -o 0 -g 0 "$etc"
install -m 0640 -o 0 -g "$gid" "$from/edgecam.toml" "$etc/edgecam.toml"
install -m 0644 -o 0 -g 0 "$from/ca.pem" "$etc/ca.pem"
install -m 0644 -o 0 -g 0 "$from/device.pem" "$etc/device.pem"
say "config: $etc/edgecam.toml (0640 root:edgecam), ca.pem and device.pem (0644)"
if [ -f "$from/device.key" ]; then
  install -m 0640 -o 0 -g "$gid" "$from/device.key" "$etc/device.key"
  shred --remove "$from/device.key" 2>/dev/null || rm -f "$from/device.key"
  say "key: $etc/device.key (0640 root:edgecam); the bundle's copy shredded"
elif [ -f "$etc/device.key" ]; then
  chown 0:"$gid" "$etc/device.key" && chmod 0640 "$etc/device.key"
  say "key: $etc/device.key kept (0640 root:edgecam)"
else
  die "no device.key in $from nor in $etc"
fi
install -d -m 0700 -o "$uid" -g "$gid" "$state"
say "state: $state (0700 edgecam)"

# --- 5. the unit (and the README it names as Documentation=) --------------------------------
share=$venv/share/edgecam
[ -f "$share/systemd/edgecam.service" ] || die "$share/systemd/edgecam.service missing from the wheel"
install -D -m 0644 -o 0 -g 0 "$share/systemd/edgecam.service" "$unit"
if [ -f "$venv/share/doc/edgecam/README.md" ]; then
  install -D -m 0644 -o 0 -g 0 "$venv/share/doc/edgecam/README.md" "$(at /usr/share/doc/edgecam/README.md)"
fi
say "unit: $unit"

# --- 6. the service ---------------------------------------------------------------------------
if [ "$start" -eq 0 ]; then
  say "service: not started (--no-start)"
elif [ "$root" != / ]; then
  say "service: not started ($root is not /)"
elif [ ! -d /run/systemd/system ]; then
  say "service: not started (systemd is not running here)"
else
  systemctl daemon-reload
  systemctl enable --quiet edgecam.service
  # --no-block: readiness waits for the broker, and cloud-init must not wait on it.
  systemctl restart --no-block edgecam.service
  say "service: enabled and (re)started; follow it with journalctl -u edgecam -f"
fi
say "done"
