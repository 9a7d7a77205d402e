#!/usr/bin/env bash
# Builds Herald's container image (Containerfile, FROM scratch) with podman: stages a root
# file system holding the binary, every shared object `ldd` says it loads (libc, libm,
# libgcc_s, the loader) at the path the loader looks for it, an /etc/passwd naming the
# unprivileged user, /tmp and /data; then `podman build` on it.
#
#   dist/container.sh                       build target/release/herald, tag herald:<version>
#   dist/container.sh --binary PATH         package this binary instead (tests/container.rs)
#   dist/container.sh --tag NAME:TAG        another tag
set -euo pipefail
cd "$(dirname "$0")/.."

BINARY=""
TAG=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) BINARY="${2:?--binary needs a path}"; shift 2 ;;
    --tag) TAG="${2:?--tag needs a name}"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "container.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done
fail() { echo "container.sh: $*" >&2; exit 1; }
command -v podman >/dev/null 2>&1 || fail "podman is needed (apt install podman)"
command -v ldd >/dev/null 2>&1 || fail "ldd is needed (libc-bin)"

if [ -z "$BINARY" ]; then
  cargo build --release --locked
  BINARY=target/release/herald
fi
[ -x "$BINARY" ] || fail "$BINARY is not an executable"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
TAG="${TAG:-herald:$VERSION}"

CONTEXT=target/container
ROOT="$CONTEXT/rootfs"
rm -rf "$CONTEXT"
install -d "$ROOT/usr/bin" "$ROOT/etc"
install -d -m 0700 "$CONTEXT/data"
install -d -m 1777 "$ROOT/tmp"
install -m 0755 "$BINARY" "$ROOT/usr/bin/herald"

# `ldd` lines are `libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x…)` and, for the
# loader, `/lib64/ld-linux-x86-64.so.2 (0x…)`; the vDSO has no file. Each is copied with
# its symlinks resolved, at the path the binary asks for.
libs="$(ldd "$BINARY" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')"
[ -n "$libs" ] || fail "ldd names no shared objects for $BINARY (a static binary needs none of this)"
for lib in $libs; do
  install -D -m 0755 "$(readlink -f "$lib")" "$ROOT$lib"
done

# Names for the two users the image knows, so nothing reports a bare number.
printf 'root:x:0:0:root:/:/nonexistent\nherald:x:10001:10001:Herald:/data:/nonexistent\n' > "$ROOT/etc/passwd"
printf 'root:x:0:\nherald:x:10001:\n' > "$ROOT/etc/group"

cp Containerfile "$CONTEXT/Containerfile"
podman build --quiet --tag "$TAG" --file "$CONTEXT/Containerfile" "$CONTEXT"
echo "Built $TAG from $BINARY."
