#!/usr/bin/env bash
# Install what the tests drive for real, from Debian's packages:
#   - postgresql: its initdb/pg_ctl (under /usr/lib/postgresql/<version>/bin) let tests/helpers/postgres.py start a
#     throwaway server per test session;
#   - chromium and chromium-driver: tests/e2e/test_page.py opens the page for people in a headless browser.
# Idempotent and quick once installed. Where it cannot install (not root, no apt-get), it says why and exits 0:
# the tests that need the missing part then skip themselves, saying why.
#   bash scripts/install_test_services.sh
set -euo pipefail

missing=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)

if [ ${#missing[@]} -eq 0 ]; then
    echo "test services already installed: PostgreSQL, Chromium $(chromium --version 2>/dev/null | awk '{print $2}')"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "not installed: ${missing[*]} (needs root and apt-get): the tests that need them will be skipped"
    exit 0
fi

echo "Installing ${missing[*]} (Debian packages)..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# The postgresql package creates and may start a system cluster ("main"); tests never use it, so stop it to free its
# port and memory. Errors are ignored: where no init system runs, nothing was started.
if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters --no-header 2>/dev/null | while read -r version name _; do
        pg_ctlcluster "$version" "$name" stop >/dev/null 2>&1 || true
    done
fi
echo "installed: ${missing[*]}"
