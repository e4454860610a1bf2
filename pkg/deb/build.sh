#!/usr/bin/env bash
# Builds the Debian package: target/debian/zmsync_<version>-1_<arch>.deb (see docs/install.md).
#
# cargo-deb packs files; this script makes the ones that are generated first, into
# $CARGO_TARGET_DIR/release/deb-assets (Cargo.toml [package.metadata.deb] names them):
#   - the man page and the bash, zsh and fish completions, from `zmsync man` / `zmsync completions`;
#   - the systemd units of cron/systemd/ with ExecStart pointing at /usr/bin/zmsync (the source tree's copies
#     name /usr/local/bin/zmsync, where a build from source installs);
#   - /etc/zmsync/zmsync.env: .env.example with every variable commented out.
# It builds with the release profile (the tests use the dev profile), then `cargo deb --no-build` reuses that
# binary. Needs cargo-deb (`cargo install cargo-deb --locked`). Extra arguments go to cargo deb.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked
bin="$target/release/zmsync"
out="$target/release/deb-assets"
rm -rf "$out"
mkdir -p "$out/systemd"
"$bin" man | gzip -9n > "$out/zmsync.1.gz"
"$bin" completions bash > "$out/zmsync.bash"
"$bin" completions zsh > "$out/_zmsync"
"$bin" completions fish > "$out/zmsync.fish"
for unit in cron/systemd/*; do
    sed -e 's#/usr/local/bin/zmsync#/usr/bin/zmsync#g' "$unit" > "$out/systemd/$(basename "$unit")"
done
{
    echo "# /etc/zmsync/zmsync.env: read by the zmsync units (EnvironmentFile=). Mode 0640 root:zmsync: it holds"
    echo "# secrets. Uncomment and fill in; docs: /usr/share/doc/zmsync/configuration.md."
    echo "#"
    sed -E -e 's/^([A-Z][A-Z0-9_]*=)/# \1/' .env.example
} > "$out/zmsync.env"
if grep -Eq '^[A-Z][A-Z0-9_]*=' "$out/zmsync.env"; then
    echo "build.sh: a variable is left uncommented in zmsync.env" >&2
    exit 1
fi
cargo deb --no-build "$@"
