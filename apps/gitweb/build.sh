#!/usr/bin/env bash
# Build the GitWeb package (see docs/developing/gitweb.md).
# Usage: apps/gitweb/build.sh KEY_FILE OUT.spk [BUILD_DIR]
#   KEY_FILE   the app's signing key (`sandhaven keygen`); never committed
#   BUILD_DIR  where the package tree is assembled (default apps/gitweb/build)
# Environment: SANDHAVEN (default: sandhaven on PATH).
# GitWeb, git and lighttpd run from the host's /usr inside the grain (Debian's
# gitweb, git and lighttpd packages, listed in scripts/apt-packages.txt); the
# package holds only the glue.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
key="${1:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
out="${2:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
build="${3:-$here/build}"
sandhaven="${SANDHAVEN:-sandhaven}"

for needed in /usr/share/gitweb/gitweb.cgi /usr/lib/git-core/git-http-backend /usr/sbin/lighttpd; do
  if [[ ! -e "$needed" ]]; then
    echo "build.sh: $needed is missing; install Debian's gitweb, git and lighttpd" >&2
    exit 1
  fi
done

tree="$build/tree"
rm -rf "$tree"
mkdir -p "$tree"
cp "$here/sandhaven-pkgdef.toml" "$here/launcher.sh" "$here/lighttpd.conf" \
  "$here/gitweb.conf" "$here/home.html" "$tree/"
cp -r "$here/icons" "$tree/icons"

"$sandhaven" pack "$tree" -k "$key" -o "$out"
