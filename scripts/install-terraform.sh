#!/usr/bin/env bash
# Installs Terraform 1.5.7 (the last MPL release) into ./bin from the Go module
# proxy when it is not there yet. Tests look for it in ./bin first.
set -euo pipefail
cd "$(dirname "$0")/.."
want="v1.5.7"
if [ -x bin/terraform ] && bin/terraform version 2>/dev/null | head -1 | grep -q "Terraform ${want}"; then
  exit 0
fi
echo "installing terraform ${want} into ./bin (first time takes a few minutes)..." >&2
GOBIN="$PWD/bin" GOFLAGS=-buildvcs=false go install "github.com/hashicorp/terraform@${want}"
bin/terraform version | head -1 >&2
