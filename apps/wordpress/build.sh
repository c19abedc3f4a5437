#!/usr/bin/env bash
# Build the WordPress package (see docs/developing/wordpress.md).
# Usage: apps/wordpress/build.sh KEY_FILE OUT.spk [BUILD_DIR]
#   KEY_FILE   the app's signing key (`sandhaven keygen`); never committed
#   BUILD_DIR  where the package tree is assembled (default apps/wordpress/build);
#              the npm tarball of the SQLite integration is kept there and reused.
# Environment: SANDHAVEN (default: sandhaven on PATH), NPM (default: npm).
#
# WordPress is Debian 12's `wordpress` package with its default theme
# (`wordpress-theme-twentytwentythree`), installed on the build machine
# (scripts/apt-packages.txt) and copied into the package. Debian ships no
# SQLite support; the "SQLite Database Integration" plugin comes from the npm
# package @wp-playground/wordpress-builds, which carries it as a zip.
set -euo pipefail

WORDPRESS_DEBIAN_VERSION=6.1.9+dfsg1-0+deb12u1
BUILDS_VERSION=0.9.19

here="$(cd "$(dirname "$0")" && pwd)"
key="${1:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
out="${2:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
build="${3:-$here/build}"
sandhaven="${SANDHAVEN:-sandhaven}"
npm="${NPM:-npm}"

for pkg in wordpress wordpress-theme-twentytwentythree; do
  installed="$(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null || true)"
  if [[ "$installed" != "$WORDPRESS_DEBIAN_VERSION" ]]; then
    echo "build.sh: needs Debian's $pkg $WORDPRESS_DEBIAN_VERSION installed (found: ${installed:-none})" >&2
    exit 1
  fi
done

mkdir -p "$build"
tarball="$build/wp-playground-wordpress-builds-$BUILDS_VERSION.tgz"
if [[ ! -f "$tarball" ]]; then
  (cd "$build" && "$npm" pack --silent "@wp-playground/wordpress-builds@$BUILDS_VERSION" >/dev/null)
fi

tree="$build/tree"
rm -rf "$tree"
mkdir -p "$tree"

# WordPress with Debian's links resolved (getID3, the CA bundle), without
# Debian's wp-config.php (it reads /etc/wordpress), the sample and Akismet
# (it needs the network).
cp -RL /usr/share/wordpress "$tree/wordpress"
rm -rf "$tree/wordpress/wp-config.php" "$tree/wordpress/wp-config-sample.php" \
  "$tree/wordpress/wp-content/plugins/akismet"
cp "$here/wp-config.php" "$tree/wordpress/wp-config.php"
mkdir -p "$tree/wordpress/wp-content/mu-plugins"
cp "$here/mu-plugins/sandhaven.php" "$tree/wordpress/wp-content/mu-plugins/"

# The SQLite integration: the plugin out of the npm package's zip, and its
# db.php drop-in pointing at it.
plugin="$tree/wordpress/wp-content/plugins/sqlite-database-integration"
tar -xzf "$tarball" -C "$build" package/src/sqlite-database-integration/sqlite-database-integration.zip
/usr/bin/python3 - "$build/package/src/sqlite-database-integration/sqlite-database-integration.zip" \
  "$plugin" <<'PY'
import pathlib, sys, zipfile
zip_path, target = sys.argv[1], pathlib.Path(sys.argv[2])
with zipfile.ZipFile(zip_path) as z:
    for info in z.infolist():
        parts = pathlib.PurePosixPath(info.filename).parts[1:]  # drop "…-main/"
        if not parts or info.is_dir() or parts[0] in (".github", "tests") or ".." in parts:
            continue
        dest = target.joinpath(*parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(z.read(info))
PY
sed "s#{SQLITE_IMPLEMENTATION_FOLDER_PATH}#/opt/app/wordpress/wp-content/plugins/sqlite-database-integration#" \
  "$plugin/db.copy" > "$tree/wordpress/wp-content/db.php"

cp "$here/sandhaven-pkgdef.toml" "$here/launcher.sh" "$here/router.php" "$here/cookies.php" \
  "$here/install.php" "$tree/"
cp -R "$here/icons" "$tree/icons"
chmod -R u+rwX,go+rX,go-w "$tree"

"$sandhaven" pack "$tree" -k "$key" -o "$out"
