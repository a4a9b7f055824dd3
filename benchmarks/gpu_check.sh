#!/usr/bin/env bash
# One prepared GPU session (about 10 minutes on an H100/H200): the speed figures of issue 8 and the
# quick start with compile off and on. Every section has its own time limit, so one slow part cannot
# eat the session; outputs land in $OUT (default ./gpu_out). Run from the repository root:
#   OUT=gpu_out bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || true
section() { echo; echo "=== $1 ($(date +%H:%M:%S))"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"

section "step times: every encoder, eager fp32 / AMP / channels_last (and their ratios)"
timeout 150 python3 benchmarks/train_step.py --settings=eager,amp,channels_last --steps=20 \
  --json="$OUT/steps_eager.json" --record | tee "$OUT/steps_eager.txt"
cp benchmarks/step_times.json "$OUT/step_times.json"

section "step times: compiled (default mode and CUDA graphs) for the goal's encoders"
timeout 240 python3 benchmarks/train_step.py --models=shufflenet,densenet,mobilenet \
  --settings=eager,amp,compiled,compiled_cudagraphs --steps=20 --json="$OUT/steps_compiled.json" \
  | tee "$OUT/steps_compiled.txt"

section "whole small run: main@725cf25 against this tree (shufflenet, 1,000 images, 5 epochs, 5 passes)"
timeout 150 python3 benchmarks/small_run.py --device=cuda:0 | tee "$OUT/small_run.txt"

section "quick start, three modalities, compile off then on"
for compile in false true; do
  for modality in std memory encoder_memory; do
    timeout 100 python3 train.py --modality=$modality --config=config/quickstart.yaml --log_interval=0 \
      --set models_dir=/tmp/quick_$compile --set compile=$compile | grep -E "^(Device|Run:)"
  done
done 2>&1 | tee "$OUT/quickstart.txt"

section "grid throughput: runs/hour with 1, 4 and 8 workers on one GPU, with and without MPS"
timeout 240 python3 benchmarks/grid_throughput.py --workers=1,4,8 --runs_per_worker=2 --epochs=10 \
  | tee "$OUT/grid_throughput.txt"

section "dry run of the small-data Table 1 grid with the step times just measured"
timeout 60 python3 grid.py --grid=config/table1_small.yaml --dry_run | tail -5 | tee "$OUT/estimate.txt"
