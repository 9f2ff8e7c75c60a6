#!/usr/bin/env bash
# Metrics of one checkpoint of a long run (issue 18), against the held-out synthetic subjects:
#   bash runs/evaluate.sh demo-8mm [CKPT]     # default: the run's latest checkpoint
#   PRIOR=demo-8mm bash runs/evaluate.sh demo-8mm CKPT   # seeds drawn from a W prior (file or shipped name)
# 64 generated volumes vs half A (64) of the 128 held-out subjects, real-vs-real = half B vs A;
# memorisation against the 336 training subjects; recall of 128 generated; 20 bootstrap resamples (each FID resample is a
# 2048-d matrix square root). JSON in runs/eval/NAME/ (committed).
set -euo pipefail
cd "$(dirname "$0")"
NAME=${1:?run name}
CKPT=${2:-$NAME/$(cat "$NAME/latest")}
BIN=../.venv/bin
case "$NAME" in demo-8mm*) DS=ds8mm ;; 4mm-f64) DS=ds4mm ;; *) echo "error: unknown run $NAME" >&2; exit 2 ;; esac
OUT=eval/$NAME
mkdir -p "$OUT"
# the run keeps only its last checkpoints: evaluate a copy
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
cp "$CKPT" "${CKPT%.safetensors}.json" "$TMP/"; CKPT=$TMP/$(basename "$CKPT")
KIMG=$($BIN/python -c "import json,sys; print(f\"{json.load(open(sys.argv[1]))['kimg']:07.2f}\")" "${CKPT%.safetensors}.json")
SRC=(--ckpt "$CKPT")
if [[ -n "${PRIOR:-}" ]]; then SRC+=(--prior "$PRIOR"); P=$(basename "$PRIOR"); KIMG=$KIMG-prior-${P%.prior.safetensors}; fi
$BIN/stylegan3d metrics "${SRC[@]}" --data $DS-heldout --metrics all --n 64 --seeds 1000-1063 --boot 20 \
  --json "$OUT/kimg-$KIMG.json" --quiet > /dev/null
$BIN/stylegan3d metrics "${SRC[@]}" --data $DS-train --metrics memorisation --n 64 --seeds 1000-1063 \
  --no-real-vs-real --json "$OUT/kimg-$KIMG-memorisation-train.json" --quiet > /dev/null
# 64-sample recall flatters a narrow generator (docs/quality.md): recall of 128 generated (other
# seeds) against the same half A; 128 real training subjects there: 0.95
$BIN/stylegan3d metrics "${SRC[@]}" --data $DS-heldout --metrics prdc,fd3d --n 128 --seeds 2000-2127 --boot 0 \
  --no-real-vs-real --json "$OUT/kimg-$KIMG-gen128-vs-halfA.json" --quiet > /dev/null
echo "wrote $OUT/kimg-$KIMG.json"
