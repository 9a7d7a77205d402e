#!/usr/bin/env bash
# Installs Herald as a systemd service: the binary, a system user, /etc/herald,
# /var/lib/herald and a unit. Run as root from a checkout: `sudo ./install.sh`
# (builds a release binary first when target/release/herald is missing).
set -euo pipefail
cd "$(dirname "$0")"

BIN=target/release/herald
[ -x "$BIN" ] || cargo build --release --locked

install -m 0755 "$BIN" /usr/local/bin/herald
id herald >/dev/null 2>&1 || useradd --system --home /var/lib/herald --shell /usr/sbin/nologin herald
install -d -o herald -g herald -m 0750 /var/lib/herald
install -d -m 0755 /etc/herald
if [ ! -f /etc/herald/herald.toml ]; then
  sed -e 's|^db = .*|db = "/var/lib/herald/herald.db"|' config.example.toml > /etc/herald/herald.toml
  chmod 0640 /etc/herald/herald.toml
  chgrp herald /etc/herald/herald.toml
fi

cat > /etc/systemd/system/herald.service <<'UNIT'
[Unit]
Description=Herald webhook delivery server
After=network-online.target
Wants=network-online.target

[Service]
User=herald
Group=herald
ExecStart=/usr/local/bin/herald serve --config /etc/herald/herald.toml
Restart=on-failure
# SIGTERM: Herald stops claiming, lets in-flight deliveries finish, then exits.
KillSignal=SIGTERM
TimeoutStopSec=30
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
ReadWritePaths=/var/lib/herald
PrivateTmp=true
# Room for many connections (each is a file descriptor) beside workers and SQLite.
LimitNOFILE=65536
# Files Herald creates are private to its user (it also creates them 0600 itself).
UMask=0077

[Install]
WantedBy=multi-user.target
UNIT

systemctl daemon-reload
systemctl enable --now herald
echo "Herald is running. The admin token was printed once in its log:"
echo "    journalctl -u herald | grep -A2 'Generated the admin token'"
