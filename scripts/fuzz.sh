#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME (default 30s) and prints the executions
# each made. New interesting inputs are added to the package's committed seed
# corpus (testdata/fuzz/<Target>/, at most 25 files a target), which the
# normal test run replays.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-30s}"
cache="$(go env GOCACHE)/fuzz"
module="$(go list -m)"
printf '%-42s %-16s %s\n' "target" "package" "executions in ${fuzztime}"
for pkg in $(go list ./...); do
  dir="${pkg#"$module"}"; dir=".${dir}"
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    out="$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1)" || { echo "$out"; exit 1; }
    execs="$(echo "$out" | grep -o 'execs: [0-9]*' | tail -1 | awk '{print $2}')"
    printf '%-42s %-16s %s\n' "$target" "${dir#./}" "${execs:-?}"
    mkdir -p "$dir/testdata/fuzz/$target"
    if [ -d "$cache/$pkg/$target" ]; then
      n="$(ls "$dir/testdata/fuzz/$target" | wc -l)"
      for f in $(ls -t "$cache/$pkg/$target" | head -n $((25 > n ? 25 - n : 0))); do
        cp -n "$cache/$pkg/$target/$f" "$dir/testdata/fuzz/$target/" || true
      done
    fi
  done
done
