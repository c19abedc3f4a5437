#!/usr/bin/env bash
# Build the DokuWiki package (see docs/developing/dokuwiki.md).
# Usage: apps/dokuwiki/build.sh KEY_FILE OUT.spk [BUILD_DIR]
#   KEY_FILE   the app's signing key (`sandhaven keygen`); never committed
#   BUILD_DIR  where the package tree is assembled (default apps/dokuwiki/build)
# Environment: SANDHAVEN (default: sandhaven on PATH).
#
# DokuWiki comes from Debian 12's `dokuwiki` package, installed on the build
# machine (scripts/apt-packages.txt): its files are copied into the package, so
# the grain needs nothing of it from the host, only PHP (php8.2-cli) from /usr.
set -euo pipefail

DOKUWIKI_DEBIAN_VERSION=0.0.20220731.a-2

here="$(cd "$(dirname "$0")" && pwd)"
key="${1:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
out="${2:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
build="${3:-$here/build}"
sandhaven="${SANDHAVEN:-sandhaven}"

installed="$(dpkg-query -W -f '${Version}' dokuwiki 2>/dev/null || true)"
if [[ "$installed" != "$DOKUWIKI_DEBIAN_VERSION" ]]; then
  echo "build.sh: needs Debian's dokuwiki $DOKUWIKI_DEBIAN_VERSION installed (found: ${installed:-none})" >&2
  exit 1
fi

tree="$build/tree"
rm -rf "$tree"
mkdir -p "$tree/seed"

# The application, with Debian's links into /etc and /var/lib resolved (-L):
# lib/plugins and lib/tpl become part of the read-only package.
cp -RL /usr/share/dokuwiki "$tree/dokuwiki"
rm -f "$tree/dokuwiki/install.php" "$tree/dokuwiki/.htaccess" "$tree/dokuwiki/.htaccess.dist"
cp "$here/preload.php" "$tree/dokuwiki/inc/preload.php"
cp -R "$here/plugin/authsandstorm" "$tree/dokuwiki/lib/plugins/authsandstorm"

# Configuration: Debian's defaults, without its site settings, accounts and
# web server snippets, then Sandhaven's own settings and ACL.
mkdir "$tree/conf"
for f in dokuwiki.php acronyms.conf entities.conf interwiki.conf license.php \
         mediameta.php mime.conf scheme.conf smileys.conf wordblock.conf \
         plugins.php plugins.required.php manifest.json; do
  cp -L "/etc/dokuwiki/$f" "$tree/conf/$f"
done
cp "$here"/conf/* "$tree/conf/"

# Debian's initial wiki data (welcome, syntax and playground pages) and a start
# page, seeded into the grain's storage on its first start.
cp -RL /var/lib/dokuwiki/data "$tree/seed/data"
cp "$here/seed/start.txt" "$tree/seed/data/pages/start.txt"
find "$tree/seed/data/cache" "$tree/seed/data/index" "$tree/seed/data/tmp" \
  "$tree/seed/data/locks" "$tree/seed/data/log" -mindepth 1 -delete 2>/dev/null || true

cp "$here/sandhaven-pkgdef.toml" "$here/launcher.sh" "$here/router.php" "$here/cookies.php" "$tree/"
cp -R "$here/icons" "$tree/icons"
# Debian keeps its data private to www-data; the grain user must read it all.
chmod -R u+rwX,go+rX,go-w "$tree"

"$sandhaven" pack "$tree" -k "$key" -o "$out"
