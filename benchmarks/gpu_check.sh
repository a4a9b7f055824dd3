#!/usr/bin/env bash
# One prepared GPU session (at most 8 minutes on an H100/H200): the CUDA tests, step times of every
# encoder, grid throughput with 1 / 4 / 8 / 16 workers with and without MPS (and DenseNet's, the
# heaviest), the --dry_run estimate of the small-data Table 1 grid, a profile of one step per
# encoder, and compiled steps. On 2026-12-04 an H200 took 30 s to start and the first four
# sections filled the 8 minutes (the grid's workers start in about 25 s each time). Sections run by priority,
# each under its own time limit and the session's deadline (GPU_CHECK_SECONDS, default 480), so one
# slow part cannot eat the rest; outputs land in $OUT (default ./gpu_out). From the repository root:
#   OUT=gpu_out bash benchmarks/gpu_check.sh
# Packages missing on the GPU machine can travel as wheels in .whl/ (installed into /tmp/site).
set -uo pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
# MPS keeps its pipes and logs in folders of its own here (the defaults may not be writable); the grid's
# workers find the daemon through the same variables.
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps_pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps_log PATH="$PATH:/usr/local/nvidia/bin"
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
DEADLINE=$(( $(date +%s) + ${GPU_CHECK_SECONDS:-480} ))
# limit CAP: seconds for the next section, at most CAP and what the session has left (minus 5 s).
limit() { local left=$(( DEADLINE - $(date +%s) - 5 )); (( left < $1 )) && echo $(( left > 1 ? left : 1 )) || echo "$1"; }
section() { echo; echo "=== $1 ($(date +%H:%M:%S), $(( DEADLINE - $(date +%s) )) s left)"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision, entmax, captum, submitit; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda)"
nproc; command -v nvidia-cuda-mps-control gcc || true

section "CUDA tests (pytest -m cuda)"
timeout "$(limit 150)" python3 -m pytest -m cuda -p no:cacheprovider -W default::FutureWarning -q -rA --durations=5 2>&1 \
  | tee "$OUT/cuda_tests.txt" | grep -vE "^(PASSED|SKIPPED)"

section "step times, every encoder: eager fp32 / AMP (recorded)"
timeout "$(limit 75)" python3 benchmarks/train_step.py --settings=eager,amp --steps=10 \
  --json="$OUT/steps_eager.json" --record 2>&1 | tee "$OUT/steps_eager.txt"

section "grid throughput: 1 / 4 / 8 / 16 workers on one GPU, without and with MPS (recorded)"
timeout "$(limit 170)" python3 benchmarks/grid_throughput.py --workers=1,16,8,4 --epochs=12 --record 2>&1 \
  | tee "$OUT/grid_throughput.txt"
timeout "$(limit 90)" python3 benchmarks/grid_throughput.py --model=densenet --workers=1,16 --mps=on --epochs=6 2>&1 \
  | tee "$OUT/grid_throughput_densenet.txt"
cp benchmarks/step_times.json "$OUT/step_times.json"

section "dry run of the small-data Table 1 grid with the step times just measured"
timeout "$(limit 30)" python3 grid.py --grid=config/table1_small.yaml --dry_run 2>&1 | head -6 | tee "$OUT/estimate.txt"

section "profile of one step per encoder (AMP): GPU busy share and kernel launches"
timeout "$(limit 60)" python3 benchmarks/profile_step.py --models=shufflenet,densenet,googlenet,vit,mobilenet,efficientnet,resnet18 \
  --steps=5 2>&1 | tee "$OUT/profile.txt"

section "compiled steps (inductor, CUDA graphs) against eager AMP"
timeout "$(limit 120)" python3 benchmarks/train_step.py --models=shufflenet,mobilenet \
  --settings=amp,compiled,compiled_cudagraphs --steps=20 --json="$OUT/steps_compiled.json" 2>&1 \
  | tee "$OUT/steps_compiled.txt"
section "done"
