#!/usr/bin/env bash
# One prepared GPU session for issue 27 (at most 9 minutes on an H100/H200): step times of every encoder
# (recorded), grid throughput of every encoder with 1 and 16 workers under MPS (recorded per encoder, so
# that --dry_run divides each cell's hours by its own encoder's factor), the dry runs of Table 1 and its
# small-data part with them, compiled steps per encoder, 4 and 8 workers for ShuffleNetV2 and DenseNet,
# and the CUDA tests (they passed on 2026-12-04). Each factor is recorded as soon as it is measured, so a
# session cut short keeps what it measured and a second one goes on. On 2026-12-04 an H200 took 30 s to
# start (the grid's workers start in about 25 s each time). Sections run by priority, each under its own
# time limit and the session's deadline (GPU_CHECK_SECONDS, default 540), so one slow part cannot eat the
# rest; outputs land in $OUT (default ./gpu_out). From the repository root:
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
DEADLINE=$(( $(date +%s) + ${GPU_CHECK_SECONDS:-540} ))
# limit CAP: seconds for the next section, at most CAP and what the session has left (minus 5 s).
limit() { local left=$(( DEADLINE - $(date +%s) - 5 )); (( left < $1 )) && echo $(( left > 1 ? left : 1 )) || echo "$1"; }
section() { echo; echo "=== $1 ($(date +%H:%M:%S), $(( DEADLINE - $(date +%s) )) s left)"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision, entmax, captum, submitit; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda)"
nproc; command -v nvidia-cuda-mps-control gcc || true

section "step times, every encoder: eager fp32 / AMP (recorded: the estimates' one-at-a-time hours on this card)"
timeout "$(limit 75)" python3 benchmarks/train_step.py --settings=eager,amp --steps=10 \
  --json="$OUT/steps_eager.json" --record 2>&1 | tee "$OUT/steps_eager.txt"

section "grid throughput per encoder: 1 and 16 workers with MPS (recorded per encoder)"
for model in shufflenet densenet mobilenet efficientnet resnet18 googlenet vit; do
  timeout "$(limit 65)" python3 benchmarks/grid_throughput.py --model=$model --workers=1,16 --mps=on --epochs=4 \
    --record 2>&1 | tee "$OUT/grid_throughput_$model.txt"
done
cp benchmarks/step_times.json "$OUT/step_times.json"

section "dry runs of Table 1 and its small-data part with the factors just measured"
for grid in table1_small table1; do
  timeout "$(limit 30)" python3 grid.py --grid=config/$grid.yaml --dry_run 2>&1 | sed -n 1,7p | tee "$OUT/estimate_$grid.txt"
done

section "compiled steps per encoder (inductor default, reduce-overhead CUDA graphs) against eager AMP and fp32"
timeout "$(limit 150)" python3 benchmarks/train_step.py --settings=eager,amp,compiled,compiled_cudagraphs --steps=20 \
  --json="$OUT/steps_compiled.json" 2>&1 | tee "$OUT/steps_compiled.txt"

section "grid throughput with 4 and 8 workers: shufflenet and densenet (MPS)"
for model in shufflenet densenet; do
  timeout "$(limit 60)" python3 benchmarks/grid_throughput.py --model=$model --workers=1,4,8 --mps=on --epochs=4 2>&1 \
    | tee "$OUT/grid_throughput_4_8_$model.txt"
done

section "CUDA tests (pytest -m cuda)"
timeout "$(limit 150)" python3 -m pytest -m cuda -p no:cacheprovider -W default::FutureWarning -q -rA --durations=5 2>&1 \
  | tee "$OUT/cuda_tests.txt" | grep -vE "^(PASSED|SKIPPED)"
section "done"
