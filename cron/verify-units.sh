#!/usr/bin/env bash
# Checks the systemd units with `systemd-analyze verify`, where systemd is available.
# The units name /usr/local/bin/zmsync and the user zmsync, which a CI machine does not have: the check runs on
# copies that point at a stand-in executable, so it tests the units' syntax and settings, not the install.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "SKIPPED: systemd-analyze is not installed; the systemd units were not verified"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#!/bin/sh\nexit 0\n' > "$tmp/zmsync" && chmod +x "$tmp/zmsync"
for unit in "$here"/systemd/*; do
    sed -e "s#/usr/local/bin/zmsync#$tmp/zmsync#" "$unit" > "$tmp/$(basename "$unit")"
done
out=$(cd "$tmp" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no ./*.service ./*.timer 2>&1 || true)
# Units for a user that does not exist here, and mail(1) absent, are install-time facts, not unit errors.
problems=$(printf '%s\n' "$out" | grep -v -e '^$' -e 'zmsync-notify@' -e "User=zmsync" -e 'Failed to resolve user' || true)
if [ -n "$problems" ]; then
    printf 'systemd-analyze verify found problems:\n%s\n' "$problems" >&2
    exit 1
fi
echo "systemd units verified: $(ls "$here"/systemd | wc -l) files"
