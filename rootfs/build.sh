#!/bin/bash
# rootfs/build.sh - build the busybox root filesystem and the default bundle.
#
# Usage: rootfs/build.sh [rootfs|bundle|all]     (default: all; run from anywhere)
#
#   rootfs/busybox/  a minimal root filesystem: the static busybox from the Debian
#                    package busybox-static, one symlink per applet where
#                    `busybox --list-full` says it lives, /etc/passwd, /etc/group
#                    and the empty directories a container needs to mount onto, and
#                    /etc/hosts (lab networks bind their hosts file on it: a read-only
#                    rootless root cannot get a new file to mount onto).
#                    Plus the course's small tools (rootfs/tools/*.c, built static
#                    with gcc into /usr/local/bin: the image has no libc).
#   rootfs/bundle/   an OCI bundle whose config.json is `mrunc spec`'s default with
#                    root.path = the absolute path of rootfs/busybox and
#                    process.terminal = false (tests and `make demo` have no tty).
#
# Both are built in a temporary directory beside the final one and renamed into
# place, so a half-built tree is never mistaken for a good one. Nothing built here
# is committed (see .gitignore). The Makefile runs this only when a tree is missing
# or this script changed.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
ROOTFS=$HERE/busybox
BUNDLE=$HERE/bundle
PY=$REPO/.venv/bin/python
BUSYBOX=${BUSYBOX:-/bin/busybox}

die() { echo "rootfs/build.sh: $*" >&2; exit 1; }

# Replace directory $2 by the freshly built $1. --one-file-system: never descend
# into something mounted there (a container left running, a leaked bind mount).
replace_dir() {
  if [ -e "$2" ]; then rm -rf --one-file-system "$2"; fi
  mv "$1" "$2"
}

build_rootfs() {
  [ -x "$BUSYBOX" ] || die "$BUSYBOX not found: apt-get install busybox-static (or run make setup)"
  local tmp=$ROOTFS.new
  rm -rf --one-file-system "$tmp"
  mkdir -p "$tmp"
  cd "$tmp"
  mkdir -p bin sbin usr/bin usr/sbin etc proc sys dev tmp root home/mrunc run var mnt
  cp "$BUSYBOX" bin/busybox          # a copy, not a link: the host's file may change
  chmod 755 bin/busybox
  # A dynamically linked busybox (Debian's plain `busybox` package) would need the
  # host's libc inside the container: prove it runs alone in this tree.
  if [ "$(id -u)" = 0 ] && ! chroot "$tmp" /bin/busybox true 2>/dev/null; then
    die "$BUSYBOX does not run inside the rootfs (dynamically linked?): install busybox-static"
  fi

  # One link per applet, where busybox says it belongs (bin/sh, usr/bin/env, ...).
  # Absolute targets: inside the container / is this tree.
  local applet
  while read -r applet; do
    [ -n "$applet" ] && [ "$applet" != bin/busybox ] || continue
    mkdir -p "$(dirname "$applet")"
    ln -sfn /bin/busybox "$applet"
  done < <("$BUSYBOX" --list-full)

  cat > etc/passwd <<'EOF'
root:x:0:0:root:/root:/bin/sh
mrunc:x:1000:1000:mrunc:/home/mrunc:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat > etc/group <<'EOF'
root:x:0:
mrunc:x:1000:
lab:x:1001:mrunc
nogroup:x:65534:
EOF
  printf '127.0.0.1\tlocalhost\n' > etc/hosts
  build_tools "$tmp/usr/local/bin"
  chmod 644 etc/passwd etc/group etc/hosts
  chmod 1777 tmp
  chmod 700 root
  chown 1000:1000 home/mrunc 2>/dev/null || echo "rootfs/build.sh: not root: home/mrunc stays owned by $(id -u)" >&2

  cd "$HERE"
  replace_dir "$tmp" "$ROOTFS"
  echo "rootfs/build.sh: built $ROOTFS ($("$BUSYBOX" --list-full | wc -l) applets)"
}

# The course notebooks' tools the busybox image lacks (chroot-breakout: the classic climb out of
# a chroot). Static: the image has no libc. Stripped: they are copied into every image build.
build_tools() {
  command -v gcc >/dev/null || die "gcc not found: apt-get install gcc libc6-dev (or run make setup)"
  mkdir -p "$1"
  local src
  for src in "$HERE"/tools/*.c; do
    gcc -static -O2 -s -Wall -o "$1/$(basename "$src" .c)" "$src" || die "gcc $src failed (libc6-dev installed?)"
  done
}

build_bundle() {
  [ -d "$ROOTFS" ] || die "$ROOTFS is missing: run rootfs/build.sh rootfs first"
  [ -x "$PY" ] || die "$PY is missing: run make setup first"

  local tmp=$BUNDLE.new
  rm -rf --one-file-system "$tmp"
  mkdir -p "$tmp"
  "$REPO/.venv/bin/mrunc" spec --bundle "$tmp" || die "'mrunc spec --bundle $tmp' failed"
  [ -s "$tmp/config.json" ] || die "spec wrote no $tmp/config.json"

  "$PY" - "$tmp/config.json" "$ROOTFS" <<'EOF'
import json, sys
path, rootfs = sys.argv[1], sys.argv[2]
with open(path) as f:
    config = json.load(f)
config.setdefault("root", {})["path"] = rootfs
config.setdefault("process", {})["terminal"] = False
with open(path, "w") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
EOF

  replace_dir "$tmp" "$BUNDLE"
  echo "rootfs/build.sh: built $BUNDLE (config.json from mrunc spec, root.path=$ROOTFS)"
}

case ${1:-all} in
  rootfs) build_rootfs ;;
  bundle) build_bundle ;;
  all) build_rootfs; build_bundle ;;
  *) die "usage: $0 [rootfs|bundle|all]" ;;
esac
