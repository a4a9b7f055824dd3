#!/usr/bin/env bash
# One prepared GPU session: AMP training through train.py on the embedded dataset, a repeat for
# determinism, a small paper-protocol comparison (MobileNetV2, 1000 images, 3 runs per modality),
# and the step benchmark. Results land in $OUT (or ./gpu_out).
set -euo pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:.
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
quick="--config=config/quickstart.yaml --log_interval=0"
for modality in std memory encoder_memory; do
  python3 train.py --modality=$modality $quick --set models_dir=/tmp/quick | grep -E "^(Device|Run:)"
done
echo "--- repeat (determinism on CUDA)"
python3 train.py --modality=encoder_memory $quick --set models_dir=/tmp/quick_again | grep -E "^Run:"
echo "--- MobileNetV2, DIGITS, 1000 images, SVHN recipe (40 epochs), 3 runs"
for modality in std memory encoder_memory; do
  echo "modality $modality"
  python3 train.py --modality=$modality $quick --set models_dir=/tmp/paper --set model=mobilenet --set runs=3 \
    --set DIGITS.num_epochs=40 --set "DIGITS.opt_milestones=[20, 30]" | grep -E "^(Run:|Mean)"
done
find /tmp/quick /tmp/paper -name results.jsonl | while read f; do
  cat "$f" >> "$OUT/results.jsonl"; done
echo "--- step benchmark"
python3 benchmarks/train_step.py --steps=20
python3 benchmarks/train_step.py --models=vit --steps=20
