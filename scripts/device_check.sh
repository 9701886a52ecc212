#!/usr/bin/env bash
# The GPU check: one prepared command for a lent GPU machine (no package registry there). README "GPU check".
#
#   make device-wheels   # here: .whl/ gets hydra-core, omegaconf, antlr4 and the joblib launcher (pure Python)
#   make device-check    # there, carrying .whl, data/MNIST and (from an earlier check, if any) device-runs
#   make device-import FROM=<folder the files came back to>   # here: runs into results/, checkpoints into device-runs/
#
# Steps, in this order, all within DEVICE_CHECK_SECONDS (default 480) from the start:
#   1. env.txt            GPU, driver, torch/CUDA/cuDNN, CPU cores
#   2. cuda-tests.log     the `cuda`-marked tests (CPU vs CUDA scores, BatchBALD picks, loop twice, resume)
#   3. benchmark-loop.md  pool-scoring speed on the GPU, ours vs the plain K-pass reference
#   4. runs.tar.gz        paper-profile runs on the GPU (RMNIST BatchBALD and BALD, 2 repetitions, the paper's 6
#                         seeds; 8 runs packed per GPU) until the deadline: rounds.csv, run.json and checkpoint.pt of
#                         every run, finished or not. Runs live in device-runs/ (DEVICE_CHECK_RUNS), so a later check
#                         that carries the imported device-runs/ resumes them after their last finished round.
# into $OUT (the device tool's return folder) or results/device/<time>/. device-check.log has everything.
# DEVICE_CHECK_CPU=1 runs the same steps on the CPU with tiny settings, to test this script without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/device/$(date +%Y%m%d-%H%M%S)}
PY=${PYTHON:-python3}
DEADLINE=$((SECONDS + ${DEVICE_CHECK_SECONDS:-480}))
RUNS=${DEVICE_CHECK_RUNS:-device-runs}
mkdir -p "$OUT" "$RUNS"
exec > >(tee "$OUT/device-check.log") 2>&1
step() { echo "== $* ($(date +%T), $((DEADLINE - SECONDS))s left)"; }
left() { local n=$((DEADLINE - SECONDS - $1)); echo $((n > $2 ? n : $2)); }  # seconds left after a reserve, >= a floor
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled WANDB_SILENT=true

if compgen -G ".whl/*.whl" >/dev/null; then
    step "installing the carried wheels"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi

if [[ ${DEVICE_CHECK_CPU:-0} == 1 ]]; then
    DEVICE=cpu PROFILE=quick EXPERIMENTS="rmnist_batchbald" SEEDS="1" EXTRA=${DEVICE_CHECK_EXTRA:-budget=20} \
        BENCH="--smoke --scoring-only --device cpu"
else
    DEVICE=auto PROFILE=paper EXPERIMENTS="rmnist_batchbald rmnist_rep2_bald" SEEDS="" EXTRA="" BENCH="--scoring-only --device cuda"
fi

step "environment"
{
    nvidia-smi 2>&1 || echo "nvidia-smi: not available"
    $PY - <<'PY'
import os, platform
import torch
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version(), "| CPU cores", len(os.sched_getaffinity(0)))
print("cuda available:", torch.cuda.is_available(), [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
for name in ("hydra", "omegaconf", "pandas", "matplotlib", "tqdm", "joblib"):
    try:
        print(name, __import__(name).__version__)
    except Exception as e:  # noqa: BLE001
        print(name, "MISSING:", e)
PY
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

step "cuda tests"
timeout "$(left 250 30)" $PY -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py tests/models/test_models.py \
    tests/acquisition/test_acquisition.py >"$OUT/cuda-tests.log" 2>&1
echo "cuda tests exit $? (log: cuda-tests.log)"
tail -n 5 "$OUT/cuda-tests.log"

step "scoring benchmark"
BENCH_SECONDS=$(left 120 30) && ((BENCH_SECONDS > 150)) && BENCH_SECONDS=150
timeout "$BENCH_SECONDS" $PY scripts/benchmark_loop.py $BENCH --out "$OUT/benchmark-loop.md" >"$OUT/bench.log" 2>&1
echo "benchmark exit $?"
tail -n 8 "$OUT/benchmark-loop.md" 2>/dev/null || tail -n 5 "$OUT/bench.log"

RUN_SECONDS=$(left 30 30)
step "$PROFILE-profile runs: $EXPERIMENTS (at most ${RUN_SECONDS}s; finished rounds in $RUNS are kept)"
timeout --signal=INT --kill-after=20 "$RUN_SECONDS" $PY scripts/reproduce.py --profile "$PROFILE" --no-table1 \
    --experiments $EXPERIMENTS ${SEEDS:+--seeds $SEEDS} --device "$DEVICE" --runs-root "$RUNS" --no-figures \
    --data-root "${DATA:-data}" wandb.mode=disabled $EXTRA
echo "runs exit $? (124: stopped at the time limit; the runs resume from their checkpoints)"
(cd "$RUNS" && find . \( -name rounds.csv -o -name run.json -o -name checkpoint.pt \) -print0 | tar czf - --null -T -) \
    >"$OUT/runs.tar.gz"
$PY scripts/device_import.py --list "$RUNS"
step "done: $(ls "$OUT" | tr '\n' ' ')"
