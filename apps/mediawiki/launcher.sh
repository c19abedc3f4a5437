#!/bin/sh
# Runs MediaWiki inside a grain (see docs/developing/mediawiki.md).
#
# MediaWiki is Debian's, read from the host's /usr/share/mediawiki (visible
# read-only in every grain); its links into /var/lib/mediawiki land in the
# grain's own storage. The same command creates a grain (the action) and
# continues it:
# 1. on the first start, MediaWiki's installer makes the SQLite database and
#    writes its settings beside their final place, renamed into place when
#    done, so a first start cut short installs again on the next one;
# 2. when Debian's MediaWiki was updated since the last start, its database
#    update runs;
# 3. PHP's built-in server serves MediaWiki on the manifest's port, with
#    /opt/app/LocalSettings.php as settings.
set -eu
MW="${MEDIAWIKI_DIR:-/usr/share/mediawiki}"  # only tests point it elsewhere
state=/var/lib/mediawiki
php=/usr/bin/php8.2

version="$(sed -n "s/^define( 'MW_VERSION', '\(.*\)' );/\1/p" "$MW/includes/Defines.php" 2>/dev/null || true)"
case "$version" in
  1.39.*) ;;
  *) echo "launcher: needs Debian 12's mediawiki (1.39.x) on the server; found: ${version:-none}" >&2
     exit 1 ;;
esac

mkdir -p "$state/images" "$state/cache" /var/tmp
if [ ! -f "$state/installed/LocalSettings.php" ]; then
  rm -rf "$state/data" "$state/installed.new"
  mkdir -p "$state/data" "$state/installed.new"
  # The installer insists on an administrator account; nobody ever logs in with
  # it (users come from the platform), so its password is random and forgotten.
  password="$("$php" -r 'echo bin2hex(random_bytes(24));')"
  "$php" "$MW/maintenance/install.php" --dbtype=sqlite --dbpath="$state/data" \
    --dbname=wiki --server=http://localhost --scriptpath= --lang=en \
    --confpath="$state/installed.new" --pass="$password" \
    --skins=Vector,MonoBook,Timeless,MinervaNeue Wiki "Wiki admin" >&2
  echo "$version" > "$state/installed.new/version"
  mv "$state/installed.new" "$state/installed"
fi

export MW_CONFIG_FILE=/opt/app/LocalSettings.php
if [ "$(cat "$state/installed/version" 2>/dev/null || true)" != "$version" ]; then
  "$php" "$MW/maintenance/update.php" --quick >&2
  echo "$version" > "$state/installed/version"
fi

export PHP_CLI_SERVER_WORKERS="${PHP_CLI_SERVER_WORKERS:-4}"
exec "$php" -S "127.0.0.1:${PORT:-8000}" -t "$MW" \
  -d session.save_path=/tmp -d display_errors=0 -d log_errors=1 \
  -d upload_tmp_dir=/var/tmp -d upload_max_filesize=32M -d post_max_size=33M \
  /opt/app/router.php
