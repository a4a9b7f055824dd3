#!/usr/bin/env bash
# The size of the two journal-code differences that change numbers (docs/deviations.md, journal code), on
# the offline quick start (DIGITS, ShuffleNetV2, encoder_memory; 1,000 images in batches of 128, the
# CINIC10 situation at 1,000 images):
#  1. dropping the last short training batch (the journal's CINIC10 loaders; 7 steps per epoch instead
#     of 8): 3 runs with DIGITS.drop_last=false (the conference CINIC10 loaders) against 3 with true;
#  2. the prototype-guided search with beta * L1 also in its gradient step (the journal code) against
#     the published method: counterfactual_quality.py with and without --l1_in_gradient on the first
#     2 runs, 32 test inputs each, 40-epoch autoencoders.
# About 30 minutes on a 2-core CPU. Outputs in $OUT (default /tmp/journal_differences).
#   OUT=/tmp/jd bash benchmarks/journal_differences.sh
set -euo pipefail
OUT=${OUT:-/tmp/journal_differences}; mkdir -p "$OUT"
cd "$(dirname "$0")/.."
for drop in true false; do
  python3 train.py --modality=encoder_memory --config=config/quickstart.yaml --log_interval=0 \
    --set runs=3 --set DIGITS.drop_last=$drop --set models_dir="$OUT/drop_last_$drop" | tee "$OUT/drop_last_$drop.txt"
done
cell="$OUT/drop_last_true/DIGITS/encoder_memory/shufflenet/1000"
python3 train_autoencoders.py --path_models="$cell" --epochs=40 | tail -3
for variant in published journal; do
  flag=$([ $variant = journal ] && echo --l1_in_gradient || echo --nol1_in_gradient)
  python3 counterfactual_quality.py --path_models="$cell" --max_inputs=32 $flag | tee "$OUT/search_$variant.txt"
  cp "$cell/counterfactual_quality.json" "$OUT/search_$variant.json"
  cp "$cell/counterfactual_quality.md" "$OUT/search_$variant.md"
done
