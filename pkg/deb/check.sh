#!/usr/bin/env bash
# Checks a built zmsync .deb on this machine (as root; CI runs it, see .ci/run): its contents and conffiles,
# lintian, then installs it with dpkg -i, runs the binary, verifies the installed units with systemd-analyze,
# removes it (user, store directory and env file stay) and purges it (all gone).
# Usage: pkg/deb/check.sh target/debian/zmsync_<version>_<arch>.deb
set -euo pipefail
deb=${1:?usage: pkg/deb/check.sh PACKAGE.deb}
fail() { echo "pkg/deb/check.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "must run as root (it installs and purges the package)"

echo "--- contents"
contents=$(dpkg-deb -c "$deb" | awk '{print $1, $NF}')
owners=$(dpkg-deb -c "$deb" | awk '{print $2}' | sort -u | tr '\n' ' ')
case "$owners" in "0/0 " | "root/root ") ;; *) fail "files not all owned by root: $owners" ;; esac
for want in \
    "-rwxr-xr-x ./usr/bin/zmsync" \
    "-rw-r----- ./etc/zmsync/zmsync.env" \
    "-rw-r--r-- ./usr/share/man/man1/zmsync.1.gz" \
    "-rw-r--r-- ./usr/share/bash-completion/completions/zmsync" \
    "-rw-r--r-- ./usr/share/zsh/vendor-completions/_zmsync" \
    "-rw-r--r-- ./usr/share/fish/vendor_completions.d/zmsync.fish" \
    "-rw-r--r-- ./lib/systemd/system/zmsync-nightly.service" \
    "-rw-r--r-- ./lib/systemd/system/zmsync-nightly.timer" \
    "-rw-r--r-- ./lib/systemd/system/zmsync-incremental.service" \
    "-rw-r--r-- ./lib/systemd/system/zmsync-incremental.timer" \
    "-rw-r--r-- ./lib/systemd/system/zmsync-follow.service" \
    "-rw-r--r-- ./lib/systemd/system/zmsync-serve.service" \
    "-rw-r--r-- ./lib/systemd/system/zmsync-notify@.service" \
    "-rw-r--r-- ./lib/systemd/system/zmsync-zoho-watch.service" \
    "-rw-r--r-- ./lib/systemd/system/zmsync-zoho-watch.timer" \
    "-rwxr-xr-x ./usr/libexec/zmsync/zmsync-notify" \
    "-rw-r--r-- ./usr/share/doc/zmsync/examples/zmsync.crontab" \
    "-rw-r--r-- ./usr/share/doc/zmsync/runbook.md" \
    "-rw-r--r-- ./usr/share/doc/zmsync/copyright"; do
    grep -qxF -- "$want" <<<"$contents" || fail "not in the package: $want"$'\n'"$contents"
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/root"
dpkg-deb -e "$deb" "$tmp/control"
grep -l /usr/local/bin "$tmp"/root/lib/systemd/system/* && fail "a packaged unit names /usr/local/bin"
grep -qx /etc/zmsync/zmsync.env "$tmp/control/conffiles" || fail "/etc/zmsync/zmsync.env is not a conffile"
grep -Eq '^[A-Z][A-Z0-9_]*=' "$tmp/root/etc/zmsync/zmsync.env" && fail "zmsync.env has an uncommented variable"
grep -q '^# ZOHO_CLIENT_SECRET=' "$tmp/root/etc/zmsync/zmsync.env" || fail "zmsync.env lacks ZOHO_CLIENT_SECRET"
echo "contents as expected: $(wc -l <<<"$contents") entries"

echo "--- lintian"
# Every tag the package keeps is overridden with its reason in pkg/deb/lintian-overrides.
lintian --fail-on error,warning,info --display-info --tag-display-limit 0 "$deb"
echo "lintian: clean"

echo "--- install"
if dpkg -s zmsync >/dev/null 2>&1; then dpkg -P zmsync >/dev/null; fi
dpkg -i "$deb"
zmsync --version
[ "$(stat -c '%a %U %G' /etc/zmsync/zmsync.env)" = "640 root zmsync" ] || fail "env file: $(stat -c '%a %U %G' /etc/zmsync/zmsync.env)"
[ "$(stat -c '%U %G' /var/lib/zmsync)" = "zmsync zmsync" ] || fail "/var/lib/zmsync: $(stat -c '%U %G' /var/lib/zmsync)"
getent passwd zmsync | grep -q ':/var/lib/zmsync:/usr/sbin/nologin$' || fail "user: $(getent passwd zmsync)"
for unit in /lib/systemd/system/zmsync-*; do
    if systemctl is-enabled "$(basename "$unit")" 2>/dev/null | grep -qx enabled; then fail "$unit is enabled"; fi
done
# The service user can run it from its directory (an SQLite store in /var/lib/zmsync).
su -s /bin/sh zmsync -c 'cd /var/lib/zmsync && zmsync init >/dev/null && zmsync db status' >/dev/null
man -l /usr/share/man/man1/zmsync.1.gz >/dev/null 2>&1 || zcat /usr/share/man/man1/zmsync.1.gz | grep -q '^\.TH'

echo "--- systemd-analyze verify (installed units)"
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no /lib/systemd/system/zmsync-*.service \
    /lib/systemd/system/zmsync-*.timer 2>&1 || true)
# mail(1) is only Recommended; the notify script falls back to the journal. Nothing else may be reported.
problems=$(printf '%s\n' "$out" | grep -v -e '^$' || true)
[ -z "$problems" ] || fail "systemd-analyze verify:"$'\n'"$problems"
echo "installed units verified: $(ls /lib/systemd/system/zmsync-* | wc -l) files"

echo "--- remove, then purge"
dpkg -r zmsync >/dev/null
[ ! -e /usr/bin/zmsync ] || fail "remove left /usr/bin/zmsync"
getent passwd zmsync >/dev/null || fail "remove deleted the user"
[ -f /var/lib/zmsync/zmsync.db ] || fail "remove deleted the store"
[ -f /etc/zmsync/zmsync.env ] || fail "remove deleted the env file (a conffile)"
dpkg -P zmsync >/dev/null
! getent passwd zmsync >/dev/null || fail "purge left the user"
[ ! -e /var/lib/zmsync ] || fail "purge left /var/lib/zmsync"
[ ! -e /etc/zmsync ] || fail "purge left /etc/zmsync"
! dpkg-statoverride --list /etc/zmsync/zmsync.env >/dev/null || fail "purge left the statoverride"
echo "package checked: contents, lintian, install, units, remove, purge"
