#!/usr/bin/env bash
# Print the directory for the test suite's temporary files (TMPDIR of `make test`): pytest's
# tmp_path folders, the throwaway PostgreSQL cluster, the servers' and fork servers' stores.
# A folder of our own on /dev/shm when it is a tmpfs with room for a run: every test copies a
# migrated store and the PostgreSQL cluster holds a cloned database per test (~14 MiB each, about
# 440 in a run), and on a disk each clone costs ~0.25 s and each SQLite commit an fsync, on RAM
# ~0.03 s and nothing. Otherwise $TMPDIR or /tmp, as before.
set -euo pipefail

fallback="${TMPDIR:-/tmp}"
need_kib=$((8 * 1024 * 1024))

if [[ "$(stat -f -c %T /dev/shm 2>/dev/null || true)" == tmpfs ]]; then
    avail_kib="$(df -Pk /dev/shm | awk 'NR == 2 { print $4 }')"
    if (( avail_kib >= need_kib )); then
        dir="/dev/shm/carnet-tests-$(id -u)"
        mkdir -p "$dir" 2>/dev/null || true
        # Ours and a real folder, never one another user made for us to write into. 0711: the
        # PostgreSQL server runs as the postgres user under root and must reach its own folder.
        if [[ -d "$dir" && ! -L "$dir" && -O "$dir" ]] && chmod 0711 "$dir"; then
            printf '%s\n' "$dir"
            exit 0
        fi
    fi
fi
printf '%s\n' "$fallback"
