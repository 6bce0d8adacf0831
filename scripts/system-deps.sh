#!/usr/bin/env bash
# Install the Debian packages Takt's tests need, when they are missing.
#
# Idempotent and quiet when everything is already there. Each requirement is a
# `path:package` pair: the package is installed when the path does not exist.
# Add a line to REQUIREMENTS to need another package.
set -euo pipefail

REQUIREMENTS=(
    # Network UPS Tools: the real upsd and its dummy-ups driver (tests/nut_server.py).
    "/lib/nut/upsd:nut-server"
    "/lib/nut/dummy-ups:nut-server"
)

missing=()
for requirement in "${REQUIREMENTS[@]}"; do
    path="${requirement%%:*}"
    package="${requirement#*:}"
    if [[ ! -e "$path" ]]; then
        # One package may provide several paths; ask for it once.
        if [[ " ${missing[*]-} " != *" $package "* ]]; then
            missing+=("$package")
        fi
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: missing ${missing[*]}, and apt-get is not available;" \
        "install them with this system's package manager" >&2
    exit 1
fi

as_root=()
if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "system-deps: missing ${missing[*]}; run this script as root (no sudo found)" >&2
        exit 1
    fi
    as_root=(sudo)
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

apt_install() {
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1
}

# Only refresh the package index when the install fails without it (a fresh machine
# has none, an old one may point at versions the mirror no longer has).
if ! apt_install; then
    if ! "${as_root[@]}" apt-get update >>"$log" 2>&1 || ! apt_install; then
        cat "$log" >&2
        echo "system-deps: could not install ${missing[*]} (apt-get output above)" >&2
        exit 1
    fi
fi

for requirement in "${REQUIREMENTS[@]}"; do
    path="${requirement%%:*}"
    if [[ ! -e "$path" ]]; then
        echo "system-deps: installed ${missing[*]} but $path is still missing" >&2
        exit 1
    fi
done
