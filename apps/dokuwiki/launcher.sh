#!/bin/sh
# Runs DokuWiki inside a grain (see docs/developing/dokuwiki.md).
#
# The same command creates a grain (the action) and continues it. On the first
# start the wiki's data directory is seeded from Debian's initial data (the
# welcome and syntax pages, shipped in the package as seed/data): copied beside
# its final place and renamed into it, so a first start cut short leaves no
# half-made wiki and the next start seeds again. Then PHP's built-in server
# serves DokuWiki on the manifest's port; PHP_CLI_SERVER_WORKERS lets it answer
# a few requests at once (a page loads its CSS, scripts and task runner in
# parallel).
set -eu
data=/var/dokuwiki/data
if [ ! -d "$data" ]; then
  mkdir -p /var/dokuwiki
  rm -rf "$data.new"
  # Directory by directory, file by file: `cp -R` makes each directory with the
  # package's read-only mode before filling it, which an encrypted grain volume
  # (FUSE, checked against the grain's own user) refuses.
  mkdir "$data.new"
  (cd /opt/app/seed/data && find . -mindepth 1 -type d) | while IFS= read -r d; do
    mkdir -p "$data.new/$d"
  done
  (cd /opt/app/seed/data && find . -type f) | while IFS= read -r f; do
    cp --no-preserve=mode,ownership "/opt/app/seed/data/$f" "$data.new/$f"
  done
  mv "$data.new" "$data"
fi
# Uploads go to the grain's storage rather than its small memory-backed /tmp.
mkdir -p /var/tmp
export PHP_CLI_SERVER_WORKERS="${PHP_CLI_SERVER_WORKERS:-4}"
exec /usr/bin/php8.2 -S "127.0.0.1:${PORT:-8000}" -t /opt/app/dokuwiki \
  -d session.save_path=/tmp -d display_errors=0 -d log_errors=1 \
  -d upload_tmp_dir=/var/tmp -d upload_max_filesize=32M -d post_max_size=33M \
  /opt/app/router.php
