#!/usr/bin/env bash
# Train the classifier model from ../shared/data exactly as the build does
# (fixed seed: the same bytes every time), check it against the committed
# checksum, and print the cross-validated quality of the three algorithms.
#   scripts/train-classifier.sh [BUILD_DIR] [OUT]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
out=${2:-$build/share/classifier/model.bin}
bin=$build/bin/kesu-classifier
mkdir -p "$(dirname "$out")"
"$bin" train --out "$out"
want=$(awk '{print $1}' "$here/deploy/config/classifier/model.sha256")
got=$(sha256sum "$out" | awk '{print $1}')
if [ "$want" != "$got" ]; then
  echo "model $got differs from deploy/config/classifier/model.sha256 ($want)" >&2
  echo "(expected after a change of data, features or training: commit the new checksum)" >&2
  exit 1
fi
echo "model $out reproduces $want"
"$bin" cv --folds 5 --algo all
"$bin" bench
