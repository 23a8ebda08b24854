#!/usr/bin/env bash
# Installs pyrogate as a systemd service: release binary, unit, example config, docs and a
# system user. Idempotent: re-running upgrades the binary and unit but never overwrites an
# existing /etc/pyrogate/pyrogate.toml.
#
#   scripts/install.sh              build (cargo, release) and install, then enable the unit
#   scripts/install.sh --no-build   install target/release/pyrogate as it is
#   scripts/install.sh --uninstall  stop and remove binary, unit and docs (config is kept
#                                   unless --purge is given too)
#
# PYROGATE_BIN=path installs that binary instead of target/release/pyrogate.
# DESTDIR=/some/root installs into a staging tree (packaging, tests): no systemctl, no user
# creation, no service start.
set -euo pipefail
cd "$(dirname "$0")/.."

DESTDIR="${DESTDIR:-}"
PREFIX="${PREFIX:-/usr/local}"
BIN="$DESTDIR$PREFIX/bin/pyrogate"
UNIT="$DESTDIR/etc/systemd/system/pyrogate.service"
CONF_DIR="$DESTDIR/etc/pyrogate"
DOC_DIR="$DESTDIR$PREFIX/share/doc/pyrogate"
SRC_BIN="${PYROGATE_BIN:-target/release/pyrogate}"
build=1 uninstall=0 purge=0
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    --uninstall) uninstall=1 ;;
    --purge) purge=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

live() { [ -z "$DESTDIR" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; }

if [ "$uninstall" = 1 ]; then
  if live; then
    systemctl disable --now pyrogate.service 2>/dev/null || true
  fi
  rm -f "$BIN" "$UNIT"
  rm -rf "$DOC_DIR"
  if [ "$purge" = 1 ]; then rm -rf "$CONF_DIR"; fi
  if live; then systemctl daemon-reload; fi
  if [ -z "$DESTDIR" ] && [ "$purge" = 1 ] && id pyrogate >/dev/null 2>&1; then
    userdel pyrogate 2>/dev/null || true
  fi
  if [ "$purge" = 1 ]; then
    echo "pyrogate uninstalled (config purged)"
  else
    echo "pyrogate uninstalled (config kept in $CONF_DIR)"
  fi
  exit 0
fi

if [ "$build" = 1 ]; then
  cargo build --release --bin pyrogate
fi
[ -x "$SRC_BIN" ] || { echo "install.sh: $SRC_BIN missing; build first" >&2; exit 1; }

install -d "$(dirname "$BIN")" "$(dirname "$UNIT")" "$CONF_DIR" "$DOC_DIR"
install -m 0755 "$SRC_BIN" "$BIN.new" && mv -f "$BIN.new" "$BIN"
sed "s#/usr/local/bin/pyrogate#$PREFIX/bin/pyrogate#g; s#/usr/local/share/doc#$PREFIX/share/doc#g" \
  systemd/pyrogate.service > "$UNIT.new"
chmod 0644 "$UNIT.new" && mv -f "$UNIT.new" "$UNIT"
if [ ! -e "$CONF_DIR/pyrogate.toml" ]; then
  install -m 0644 systemd/pyrogate.toml "$CONF_DIR/pyrogate.toml"
  echo "installed example config $CONF_DIR/pyrogate.toml (edit the [[endpoint]] url)"
else
  echo "kept existing $CONF_DIR/pyrogate.toml"
fi
install -m 0644 README.md "$DOC_DIR/README.md"

if [ -z "$DESTDIR" ]; then
  # DynamicUser= covers the running service; a static system user lets operators own
  # secrets files (password_file, bearer_token_file) with group pyrogate.
  id pyrogate >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin pyrogate
  "$BIN" --config "$CONF_DIR/pyrogate.toml" --check-config >/dev/null || {
    echo "install.sh: $CONF_DIR/pyrogate.toml does not validate; fix it, then: systemctl restart pyrogate" >&2
  }
fi
if live; then
  systemctl daemon-reload
  systemctl enable pyrogate.service >/dev/null
  if systemctl is-active --quiet pyrogate.service; then
    systemctl restart pyrogate.service
  fi
  echo "pyrogate installed; start it with: systemctl start pyrogate"
else
  echo "pyrogate installed into ${DESTDIR:-/} (systemd not running here: not enabled)"
fi
