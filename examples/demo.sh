#!/usr/bin/env bash
# On a fresh Debian machine: install Dovecot and bridge, then run bridge in front of a
# throwaway Dovecot with sample mail. Ctrl-C stops both and removes the demo mail.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
PACKAGES="dovecot-imapd dovecot-submissiond dovecot-managesieved dovecot-sieve"
if ! dpkg-query -W $PACKAGES >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq $PACKAGES python3-pip python3-venv >/dev/null
fi
python3 -m pip install -q -e . 2>/dev/null || {
    python3 -m venv .venv && .venv/bin/pip install -q -e . && export PATH="$PWD/.venv/bin:$PATH"
}
exec python3 -m bridge demo "$@"
