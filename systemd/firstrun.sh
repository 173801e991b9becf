#!/usr/bin/env bash
# First boot on Raspberry Pi OS Bookworm, whose images ignore cloud-init's user-data: the
# kernel command line (cmdline.txt, see the README) runs this script once, very early,
# before the network is up:
#   systemd.run=/boot/firmware/edgecam/firstrun.sh systemd.run_success_action=reboot
#   systemd.unit=kernel-command-line.target
# install.sh needs the network (pip), so this only enables edgecam-firstboot.service, which
# runs install.sh after network-online.target on the next boot and then disables itself.
# A firstrun.sh that Raspberry Pi Imager wrote (user, ssh, Wi-Fi) runs first; the
# systemd.run arguments are removed from cmdline.txt, so nothing here runs twice.
#
#   FIRSTRUN_ROOT  the root to change (default /; tests use a temp dir)
set -euo pipefail

root=${FIRSTRUN_ROOT:-/}
boot=$root/boot/firmware
[ -d "$boot" ] || boot=$root/boot
here=$(dirname "$(readlink -f "$0")")
say() { printf 'edgecam firstrun: %s\n' "$*"; }

cmdline=$boot/cmdline.txt
if [ -f "$cmdline" ]; then
  # One line: drop every systemd.run* argument (ours and Imager's) and the target they need.
  sed -i -e 's/ systemd\.run[^ ]*//g' -e 's/ systemd\.unit=kernel-command-line\.target//g' \
    "$cmdline"
  say "cmdline.txt: first-run arguments removed"
fi

imager=$boot/firstrun.sh
if [ -f "$imager" ] && [ "$(readlink -f "$imager")" != "$(readlink -f "$0")" ]; then
  say "running Raspberry Pi Imager's firstrun.sh first"
  # Imager's script edits cmdline.txt and deletes itself; its failure is not ours to hide.
  bash "$imager"
fi

units=$root/etc/systemd/system
install -d "$units/multi-user.target.wants"
install -m 0644 "$here/edgecam-firstboot.service" "$units/edgecam-firstboot.service"
ln -sf ../edgecam-firstboot.service "$units/multi-user.target.wants/edgecam-firstboot.service"
say "edgecam-firstboot.service enabled: install.sh runs once the network is up"
