#!/usr/bin/env bash
# Install what the PostgreSQL tests need: Debian's `postgresql` package, whose initdb/pg_ctl
# (under /usr/lib/postgresql/<version>/bin) let tests/helpers/postgres.py start a throwaway server per test session.
# Idempotent and quick once installed. Where it cannot install (not root, no apt-get), it says why and exits 0:
# the PostgreSQL tests then skip themselves.
#   bash scripts/install_test_services.sh
set -euo pipefail

have_postgres() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if have_postgres; then
    echo "PostgreSQL already installed: $(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n1)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL not installed and not running as root: the PostgreSQL tests will be skipped"
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "PostgreSQL not installed and apt-get not found: the PostgreSQL tests will be skipped"
    exit 0
fi

echo "Installing PostgreSQL (Debian package postgresql)..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null

# The package creates and may start a system cluster ("main"); tests never use it, so stop it to free its port and
# memory. Errors are ignored: where no init system runs, nothing was started.
if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters --no-header 2>/dev/null | while read -r version name _; do
        pg_ctlcluster "$version" "$name" stop >/dev/null 2>&1 || true
    done
fi

if have_postgres; then
    echo "PostgreSQL installed: $(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n1)"
else
    echo "PostgreSQL install finished but no initdb under /usr/lib/postgresql/*/bin: the PostgreSQL tests will be skipped"
fi
