#!/usr/bin/env bash
# Two bridge instances behind nginx on one Debian 12 machine, as root, from a checkout of
# bridge: `bash examples/instances/setup.sh`. Then edit /etc/bridge/bridge.toml (your IMAP
# server, your public URL) and `systemctl restart bridge@8081 bridge@8082`; nginx serves
# both on port 8080 (TLS: see /etc/nginx/conf.d/bridge.conf). With POSTGRES=1, the caches
# (store) and the coordination live in a local PostgreSQL database instead of the data
# directory (uploads stay in the data directory).
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD
export DEBIAN_FRONTEND=noninteractive
packages="nginx python3-venv"
[ "${POSTGRES:-0}" = 1 ] && packages="$packages postgresql"
apt-get update -qq
apt-get install -y -qq $packages >/dev/null

# A system user owns the data directory; the code lives in a virtualenv of its own, on
# Debian's Python (a python3 of root's own, e.g. pyenv's under /root, is out of the bridge
# user's reach).
id bridge >/dev/null 2>&1 || adduser --system --group --home /var/lib/bridge --no-create-home bridge
install -d -o bridge -g bridge -m 0700 /var/lib/bridge
/usr/bin/python3 -m venv --clear /opt/bridge
/opt/bridge/bin/pip install -q "$here/../..[postgresql]"

install -d -m 0755 /etc/bridge
[ -e /etc/bridge/bridge.toml ] || install -m 0644 "$here/bridge.toml" /etc/bridge/bridge.toml
touch /etc/bridge/secrets.env && chmod 0600 /etc/bridge/secrets.env
if [ "${POSTGRES:-0}" = 1 ]; then
    password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
    su postgres -c "psql -q" <<SQL
DO \$\$ BEGIN CREATE ROLE bridge LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
ALTER ROLE bridge PASSWORD '$password';
SQL
    su postgres -c "createdb -O bridge bridge" 2>/dev/null || true
    sed -i '/^coordination *=/d' /etc/bridge/bridge.toml
    grep -v '^BRIDGE_COORDINATION=\|^BRIDGE_STORE=' /etc/bridge/secrets.env > /etc/bridge/secrets.env.new || true
    echo "BRIDGE_STORE=postgresql://bridge:$password@127.0.0.1/bridge" >> /etc/bridge/secrets.env.new
    echo "BRIDGE_COORDINATION=postgresql://bridge:$password@127.0.0.1/bridge" >> /etc/bridge/secrets.env.new
    install -m 0600 /etc/bridge/secrets.env.new /etc/bridge/secrets.env && rm /etc/bridge/secrets.env.new
fi

install -m 0644 "$here/bridge@.service" /etc/systemd/system/bridge@.service
install -m 0644 "$here/nginx-bridge.conf" /etc/nginx/conf.d/bridge.conf
systemctl daemon-reload
systemctl enable --now bridge@8081 bridge@8082
nginx -t && systemctl reload nginx
echo "bridge@8081 and bridge@8082 run; nginx balances them on http://127.0.0.1:8080/"
