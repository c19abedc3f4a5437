#!/bin/sh
# Runs GitWeb inside a grain (see docs/developing/gitweb.md).
# Usage: /bin/sh /opt/app/launcher.sh   (environment: PORT)
# The same command creates a grain (the action) and continues it: the bare
# repository is made beside its final name and renamed into place, so a first
# start cut short leaves no half-made repository.
set -eu

repo=/var/git/repository.git
if [ ! -d "$repo" ]; then
  echo "launcher: creating $repo" >&2
  mkdir -p /var/git
  rm -rf "$repo.new"
  /usr/bin/git init --quiet --bare --initial-branch=main "$repo.new"
  echo "This grain's repository" > "$repo.new/description"
  # Only git's smart protocol: no raw file reads through the dumb one.
  /usr/bin/git -C "$repo.new" config http.getanyfile false
  mv "$repo.new" "$repo"
fi
exec /usr/sbin/lighttpd -D -f /opt/app/lighttpd.conf
