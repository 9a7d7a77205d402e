#!/usr/bin/env bash
# Installs Herald as a systemd service: the binary, a system user, /etc/herald,
# /var/lib/herald and a unit. Run as root from a checkout: `sudo ./install.sh`.
#
#   sudo ./install.sh                  install or upgrade (rebuilds when the source is newer)
#   sudo ./install.sh --uninstall      stop and remove the service and binary; keep config and data
#   sudo ./install.sh --uninstall --purge   ... and remove /etc/herald, /var/lib/herald, the user
#   ./install.sh --prefix DIR          stage the files under DIR (packaging, tests): paths inside
#                                      the files stay /etc/herald etc.; no user, no systemd
#   --binary PATH                      install this binary instead of building target/release/herald
#
# On a first install the admin token is generated here, written where only root can read it
# (/etc/herald/admin.env, read by systemd) and printed to this terminal — not to the journal.
set -euo pipefail
cd "$(dirname "$0")"

PREFIX=""
UNINSTALL=0
PURGE=0
BINARY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) PREFIX="${1#--prefix=}"; shift ;;
    --binary) BINARY="${2:?--binary needs a path}"; shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done
PREFIX="${PREFIX%/}"
STAGED=0; [ -n "$PREFIX" ] && STAGED=1

BIN_DIR="$PREFIX/usr/local/bin"
ETC="$PREFIX/etc/herald"
DATA="$PREFIX/var/lib/herald"
UNIT_FILE="$PREFIX/etc/systemd/system/herald.service"

fail() { echo "install.sh: $*" >&2; exit 1; }

# --- prerequisites, all checked before anything is touched -------------------------------
if [ "$STAGED" -eq 0 ]; then
  [ "$(id -u)" -eq 0 ] || fail "run as root (sudo ./install.sh), or stage with --prefix DIR"
  if ! command -v systemctl >/dev/null 2>&1 || [ ! -d /run/systemd/system ]; then
    fail "systemd is not running here; use --prefix DIR to stage the files and start herald yourself"
  fi
  if [ "$UNINSTALL" -eq 0 ]; then
    command -v useradd >/dev/null 2>&1 || fail "useradd is missing"
  fi
fi
[ "$PURGE" -eq 1 ] && [ "$UNINSTALL" -eq 0 ] && fail "--purge goes with --uninstall"

# --- uninstall -----------------------------------------------------------------------------
if [ "$UNINSTALL" -eq 1 ]; then
  if [ "$STAGED" -eq 0 ]; then
    systemctl disable --now herald 2>/dev/null || true
  fi
  rm -f "$UNIT_FILE" "$BIN_DIR/herald"
  [ "$STAGED" -eq 0 ] && systemctl daemon-reload
  if [ "$PURGE" -eq 1 ]; then
    rm -rf "$ETC" "$DATA"
    if [ "$STAGED" -eq 0 ] && id herald >/dev/null 2>&1; then userdel herald; fi
    echo "Herald removed, with its configuration and data."
  else
    echo "Herald removed. Kept $ETC and $DATA (the database); --uninstall --purge removes them."
  fi
  exit 0
fi

# --- the binary: built whenever the source is newer than it --------------------------------
if [ -z "$BINARY" ]; then
  BINARY=target/release/herald
  if [ ! -x "$BINARY" ] || [ -n "$(find src templates schema.sql Cargo.toml Cargo.lock -newer "$BINARY" -print -quit)" ]; then
    command -v cargo >/dev/null 2>&1 || fail "cargo is needed to build Herald (https://rustup.rs)"
    cargo build --release --locked
  fi
fi
[ -x "$BINARY" ] || fail "$BINARY is not an executable"

# --- files ---------------------------------------------------------------------------------
install -d "$BIN_DIR" "$(dirname "$UNIT_FILE")"
install -m 0755 "$BINARY" "$BIN_DIR/herald"
if [ "$STAGED" -eq 0 ]; then
  id herald >/dev/null 2>&1 || useradd --system --home /var/lib/herald --shell /usr/sbin/nologin herald
  install -d -o herald -g herald -m 0750 "$DATA"
else
  install -d -m 0750 "$DATA"
fi
install -d -m 0755 "$ETC"
if [ ! -f "$ETC/herald.toml" ]; then
  sed -e 's|^db = .*|db = "/var/lib/herald/herald.db"|' config.example.toml > "$ETC/herald.toml"
  chmod 0640 "$ETC/herald.toml"
  [ "$STAGED" -eq 0 ] && chgrp herald "$ETC/herald.toml"
fi

# The admin token: chosen here on a first install (no database yet), so it never goes
# through the journal. systemd reads admin.env as root; the herald user cannot read it.
NEW_TOKEN=""
if [ ! -f "$ETC/admin.env" ] && [ ! -f "$DATA/herald.db" ]; then
  NEW_TOKEN="hadm_$(head -c 30 /dev/urandom | base64 | tr -d '/+=\n' | cut -c1-40)"
  (umask 077 && printf 'HERALD_ADMIN_TOKEN=%s\n' "$NEW_TOKEN" > "$ETC/admin.env")
fi
[ -f "$ETC/admin.env" ] && chmod 0600 "$ETC/admin.env"

# The unit is dist/herald.service, shared with the Debian package (which installs the
# binary as /usr/bin/herald; this script installs it under /usr/local/bin).
sed -e 's|^ExecStart=/usr/bin/herald |ExecStart=/usr/local/bin/herald |' dist/herald.service > "$UNIT_FILE"
chmod 0644 "$UNIT_FILE"

if [ "$STAGED" -eq 0 ]; then
  systemctl daemon-reload
  systemctl enable herald
  systemctl restart herald # an upgrade runs the new binary
  echo "Herald is running (systemctl status herald)."
else
  echo "Herald staged under $PREFIX."
fi
if [ -n "$NEW_TOKEN" ]; then
  echo "The admin token (also in $ETC/admin.env, readable by root only):"
  echo
  echo "    $NEW_TOKEN"
  echo
else
  echo "The admin token is unchanged (see $ETC/admin.env, or README: lost admin token)."
fi
