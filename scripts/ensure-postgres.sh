#!/usr/bin/env bash
# Make sure a PostgreSQL server (initdb + postgres binaries) is installed, then print its
# bin directory on stdout. Idempotent: when the binaries are already there it only prints.
# On a fresh Debian 12 (run as root) it installs Debian's `postgresql` package.
set -euo pipefail

die() {
    echo "ensure-postgres: $*" >&2
    exit 1
}

# Highest-version /usr/lib/postgresql/<N>/bin that holds both initdb and postgres.
find_bindir() {
    local dir best=""
    while IFS= read -r dir; do
        if [[ -x "$dir/initdb" && -x "$dir/postgres" ]]; then
            best="$dir"
        fi
    done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V || true)
    [[ -n "$best" ]] || return 1
    printf '%s\n' "$best"
}

if bindir="$(find_bindir)"; then
    printf '%s\n' "$bindir"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 \
    || die "PostgreSQL is not installed and apt-get is unavailable; install PostgreSQL manually."

if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    die "PostgreSQL is not installed and installing it needs root (run as root or with passwordless sudo)."
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {
    "${as_root[@]}" apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        postgresql >&2
}

echo "ensure-postgres: installing Debian's postgresql package..." >&2
# Refresh the package lists first only when apt does not know the package yet; if the
# install still fails (stale lists pointing at vanished files), refresh once and retry.
if ! apt-cache show postgresql >/dev/null 2>&1; then
    "${as_root[@]}" apt-get update -q >&2 || die "apt-get update failed."
    apt_install || die "apt-get install postgresql failed."
elif ! apt_install; then
    "${as_root[@]}" apt-get update -q >&2 || die "apt-get update failed."
    apt_install || die "apt-get install postgresql failed."
fi

bindir="$(find_bindir)" \
    || die "postgresql was installed but no /usr/lib/postgresql/*/bin/initdb was found."
printf '%s\n' "$bindir"
