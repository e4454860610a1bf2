#!/usr/bin/env bash
# Checks the systemd units with `systemd-analyze verify`, where systemd is available (in CI, CI=true, it must
# be: a missing systemd-analyze fails there instead of skipping).
# The units name /usr/local/bin/zmsync, /usr/libexec/zmsync/zmsync-notify and the user zmsync, which a CI machine
# does not have: the check runs on copies that point at stand-in executables, so it tests the units' syntax and
# settings, not the install (.ci/run verifies the installed package's units too).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v systemd-analyze >/dev/null 2>&1; then
    if [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; then
        echo "FAILED: systemd-analyze is not installed, and CI must verify the systemd units (apt-get install systemd)" >&2
        exit 1
    fi
    echo "SKIPPED: systemd-analyze is not installed; the systemd units were not verified"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#!/bin/sh\nexit 0\n' > "$tmp/zmsync" && chmod +x "$tmp/zmsync"
cp "$tmp/zmsync" "$tmp/zmsync-notify"
for unit in "$here"/systemd/*; do
    sed -e "s#/usr/local/bin/zmsync#$tmp/zmsync#" -e "s#/usr/libexec/zmsync/zmsync-notify#$tmp/zmsync-notify#" \
        "$unit" > "$tmp/$(basename "$unit")"
done
out=$(cd "$tmp" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no ./*.service ./*.timer 2>&1 || true)
# Units for a user that does not exist here, and mail(1) absent, are install-time facts, not unit errors.
problems=$(printf '%s\n' "$out" | grep -v -e '^$' -e 'zmsync-notify@' -e "User=zmsync" -e 'Failed to resolve user' || true)
if [ -n "$problems" ]; then
    printf 'systemd-analyze verify found problems:\n%s\n' "$problems" >&2
    exit 1
fi
echo "systemd units verified: $(ls "$here"/systemd | wc -l) files"
