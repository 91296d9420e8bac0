#!/usr/bin/env bash
# The peer of BenchmarkFullDeploy: one ingestion-server deploy of
# examples/infrastructure done by hand, as the runbook says, with nothing but
# Terraform: for dev, then prod, bump the image tag (prod: with
# data_refresh_cleared = true for the apply, false again afterwards), then
# terraform init, plan -out and apply of that plan. No checks, no chat,
# no git: what deploybot's run is measured against.
#
#   scripts/bench-baseline.sh TERRAFORM INFRA_DIR WORKDIR [IMAGE_TAG]
set -euo pipefail
tf=$1 src=$2 work=$3 tag=${4:-rel-2024.09.09.05.40.20}
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
mkdir -p "$work/state"
cp -R "$src" "$work/infra"
for env in dev prod; do
  dir=$work/infra/environments/$env
  file=$dir/ingestion-server.tf
  sed -i -E "s/(image_tag *= *)\"[^\"]*\"/\1\"$tag\"/" "$file"
  if [ "$env" = prod ]; then
    sed -i -E 's/(data_refresh_cleared *= *)false/\1true/' "$file"
  fi
  "$tf" -chdir="$dir" init -input=false -no-color -backend-config="path=$work/state/$env.tfstate" >/dev/null
  "$tf" -chdir="$dir" plan -input=false -no-color -out="$work/$env.tfplan" >/dev/null
  "$tf" -chdir="$dir" apply -input=false -no-color "$work/$env.tfplan" >/dev/null
  if [ "$env" = prod ]; then
    sed -i -E 's/(data_refresh_cleared *= *)true/\1false/' "$file"
  fi
  grep -q "\"$tag\"" "$file"
done
