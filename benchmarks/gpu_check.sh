#!/usr/bin/env bash
# The prepared GPU check: one script for a session lent the H200 machine (the `device` tool), within 8 minutes.
#
#   there:  bash benchmarks/gpu_check.sh               # carry .whl (../shared/tools/device_wheels.sh .whl, here)
#   here:   bash benchmarks/gpu_check.sh --dry-run     # the same steps on the CPU at tiny sizes (tests/test_gpu_check.py)
#
# Progress lines go to $OUT/progress.log as each step starts and ends, every step's output to $OUT/steps.log, and the
# results to $OUT/speed_cuda.json, $OUT/scores.md and $OUT/scores.csv (the device tool returns at most 8 files): a
# step killed at its limit loses nothing already written. Steps: install the carried wheels; the CUDA tests (pytest -m cuda); speed.py on the paper's sizes,
# eager and compiled (CUDA graphs), fp32 / tf32 / bf16, GMPG at batch 4096 and 40960; a short score run on two
# D4RL-style datasets made there, with d3rlpy's IQL beside it.
set -u -o pipefail
cd "$(dirname "$0")/.."
DRY=0
WHEELS=.whl
for arg in "$@"; do
  case $arg in
    --dry-run) DRY=1 ;;
    --wheels=*) WHEELS=${arg#*=} ;;
    *) echo "unknown argument $arg" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-benchmarks/out/gpu_check}
mkdir -p "$OUT"
LOG=$OUT/progress.log
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
FAILED=0

say() { echo "$(date +%H:%M:%S) $*" | tee -a "$LOG"; }
step() {  # step NAME SECONDS COMMAND...: run with a time limit, output appended to $OUT/steps.log
  local name=$1 limit=$2
  shift 2
  say "start $name (limit ${limit}s)"
  echo "===== $name: $*" >>"$OUT/steps.log"
  timeout "$limit" "$@" >>"$OUT/steps.log" 2>&1
  local rc=$?
  [ $rc -ne 0 ] && FAILED=1
  say "end $name rc=$rc"
}

if [ $DRY -eq 1 ]; then
  DEVICE=cpu
  SPEED=(--settings tiny --repeats 2 --sample-batch 8 --gmpg-batch 8 --threads 1)
  DATA=(--tasks hopper --levels medium --steps 600 --jobs 1)
  SCORES=(--datasets hopper-medium --models gvp --budget 1e-5 --evals 1 --eval-episodes 2 --jobs 1
          --set batch_size=16 critic_batch_size=16 "policy_kwargs=dict(net_arch=[16, 16], emb_dim=16)"
          --gmpg-set bc_batch_size=16 n_gradient_steps=2)
else
  DEVICE=cuda
  SPEED=(--settings paper --repeats 30 --gmpg-batch 40960 --compile reduce-overhead --precisions fp32 tf32 bf16)
  DATA=(--tasks hopper halfcheetah --levels medium --steps 100000 --jobs 16)
  SCORES=(--datasets hopper-medium halfcheetah-medium --models gvp --budget 0.002 --evals 2 --eval-episodes 5 --jobs 4)
  step install 120 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    "$WHEELS"/*.whl
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi

step environment 60 python3 -c "import torch, sb3_generative, stable_baselines3, d3rlpy, minari; \
print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name()); \
print('sb3_generative', sb3_generative.__version__, 'sb3', stable_baselines3.__version__, 'd3rlpy', d3rlpy.__version__)"
[ $DRY -eq 0 ] && step nvidia-smi 20 nvidia-smi
step cuda_tests 150 python3 -m pytest -q -m cuda -p no:cacheprovider tests/test_cuda.py
step speed 240 python3 benchmarks/speed.py --device "$DEVICE" "${SPEED[@]}" --out "$OUT/speed_$DEVICE.json"
WORK=$(mktemp -d)  # datasets and runs stay out of $OUT: only the results come back
export MINARI_DATASETS_PATH="$WORK/minari"
step data 60 python3 -m sb3_generative.data d4rl-style --root "$MINARI_DATASETS_PATH" "${DATA[@]}"
step scores 150 python3 benchmarks/scores.py --device "$DEVICE" --seeds 0 "${SCORES[@]}" --out "$WORK/scores"
cp "$WORK/scores/scores.md" "$WORK/scores/scores.csv" "$OUT/" 2>>"$OUT/steps.log"
rm -rf "$WORK"
say "done failed=$FAILED"
exit $FAILED
