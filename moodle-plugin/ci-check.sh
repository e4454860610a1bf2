#!/usr/bin/env bash
# Checks of the Moodle plugin that need no Moodle: php -l on every PHP file, then the plain-PHP tests.
# Usage: moodle-plugin/ci-check.sh  (from anywhere; installs php-cli with apt-get when php is absent)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v php >/dev/null 2>&1; then
    echo "php not found: installing php-cli" >&2
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y php-cli
fi

echo "== php -l"
count=0
while IFS= read -r -d '' file; do
    php -l "$file" >/dev/null || { echo "syntax error in $file" >&2; exit 1; }
    count=$((count + 1))
done < <(find "$here" -name '*.php' -not -path '*/node_modules/*' -print0)
echo "php -l: $count files, no syntax errors"

echo "== plain-PHP tests"
php "$here/tests-plain/run.php"

echo "== plain-PHP tests again without any extension loaded (php -n: no intl, the fallbacks)"
php -n "$here/tests-plain/run.php"
