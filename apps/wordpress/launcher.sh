#!/bin/sh
# Runs WordPress inside a grain (see docs/developing/wordpress.md).
#
# The same command creates a grain (the action) and continues it:
# 1. on the first start, secret keys are made (written beside their place and
#    renamed into it), then WordPress is installed into an empty SQLite
#    database; the mark "installed" is set last, so an install cut short starts
#    over on the next start;
# 2. every minute, WordPress's scheduled tasks run on the command line
#    (wp-cron.php): its own way, an HTTP request to its own address, cannot
#    reach the grain;
# 3. PHP's built-in server serves WordPress on the manifest's port.
set -eu
state=/var/wordpress
php=/usr/bin/php8.2
mkdir -p "$state/uploads" /var/tmp

if [ ! -f "$state/keys.php" ]; then
  "$php" -r '
    echo "<?php\n";
    foreach (["AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY", "AUTH_SALT",
              "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"] as $name) {
      echo "define(\x27$name\x27, \x27", bin2hex(random_bytes(32)), "\x27);\n";
    }' > "$state/keys.php.new"
  mv "$state/keys.php.new" "$state/keys.php"
fi

if [ ! -f "$state/installed" ]; then
  rm -rf "$state/database"
  mkdir -p "$state/database"
  "$php" /opt/app/install.php >&2
  touch "$state/installed"
fi

( while sleep 60; do "$php" /opt/app/wordpress/wp-cron.php >/dev/null 2>&1 || true; done ) &

export PHP_CLI_SERVER_WORKERS="${PHP_CLI_SERVER_WORKERS:-4}"
exec "$php" -S "127.0.0.1:${PORT:-8000}" -t /opt/app/wordpress \
  -d session.save_path=/tmp -d display_errors=0 -d log_errors=1 \
  -d upload_tmp_dir=/var/tmp -d upload_max_filesize=32M -d post_max_size=33M \
  /opt/app/router.php
