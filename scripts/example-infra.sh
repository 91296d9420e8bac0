#!/usr/bin/env bash
# Makes .deploybot/infrastructure.git, a local bare repository holding
# examples/infrastructure, for the console to deploy (it pushes run branches
# there). Run again with --reset to start over from the example.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.deploybot/infrastructure.git
if [ "${1:-}" = "--reset" ]; then rm -rf .deploybot; fi
[ -d "$dest" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r examples/infrastructure "$tmp/src"
git -C "$tmp/src" init -q -b main
git -C "$tmp/src" add -A
git -C "$tmp/src" -c user.name=deploybot -c user.email=deploybot@localhost commit -q -m "Example infrastructure"
mkdir -p .deploybot
git clone -q --bare "$tmp/src" "$dest"
echo "example infrastructure repository: $dest" >&2
