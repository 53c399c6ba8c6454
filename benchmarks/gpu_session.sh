#!/usr/bin/env bash
# One GPU lease, one command: the GPU check, then fine-tuning runs of shipped models on the GPU with
# the batches rendered by many CPU processes, all inside a wall-clock budget.
#
#   bash benchmarks/gpu_session.sh OUT_DIR [BUDGET_S]        (BUDGET_S: whole script, default 560)
#
# 1. benchmarks/gpu_check.sh (bounded to 170 s), its JSON to OUT_DIR/gpu_check.json
# 2. in parallel, each with `edge train --device cuda --workers N --time-limit T` (T: what the budget
#    leaves after the check, less a margin for scoring and writing):
#      NativeCross default from the shipped weights; lane default from the shipped weights (its
#      realistic renderer needs the TuSimple layouts: EDGE_LANE_LAYOUTS or EDGE_REAL_DATA)
# Writes OUT_DIR/{nc,lane}.pt + .json + .log. Nothing here is part of the test suite.
set -uo pipefail
OUT=${1:?usage: gpu_session.sh OUT_DIR [BUDGET_S]}
BUDGET=${2:-560}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
T0=$(date +%s)
export PYTHONUNBUFFERED=1 PYTHON=${PYTHON:-python3}
if ! command -v edge > /dev/null; then  # a bare image: install the checkout, else call the CLI as a module
  $PYTHON -m pip install -q --no-deps --no-build-isolation -e "$HERE/.." > /dev/null 2>&1 || true
fi
if ! command -v edge > /dev/null; then
  mkdir -p /tmp/edge_bin
  printf '#!/bin/sh\nexec %s -m edge.cli.main "$@"\n' "$PYTHON" > /tmp/edge_bin/edge
  printf '#!/bin/sh\nexec %s -c "from edge.cli.main import export_main; export_main()" "$@"\n' "$PYTHON" \
    > /tmp/edge_bin/edge-export
  chmod +x /tmp/edge_bin/*; export PATH=/tmp/edge_bin:$PATH PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}"
fi
nproc; $PYTHON -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"

DEVICE=${DEVICE:-cuda}  # DEVICE=cpu SKIP_CHECK=1 rehearses the script on a machine without a GPU
if [ -z "${SKIP_CHECK:-}" ]; then
  GPU_CHECK_JSON="$OUT/gpu_check.json" timeout 170 bash "$HERE/gpu_check.sh" /tmp/gpu_check_out > "$OUT/gpu_check.log" 2>&1
  echo "gpu_check exit $? after $(( $(date +%s) - T0 )) s"; tail -5 "$OUT/gpu_check.log"
fi

LEFT=$(( BUDGET - ($(date +%s) - T0) ))
LIMIT=$(( LEFT - 150 ))  # startup, writing and scoring on the CPU (the weights are written before scoring)
[ "$LIMIT" -lt 60 ] && { echo "budget too small: ${LIMIT} s left for training"; exit 2; }
echo "training for ${LIMIT} s each"
CPUS=$(nproc)
NCW=$(( CPUS * 9 / 16 )); LW=$(( CPUS - NCW - 2 )); [ "$LW" -lt 1 ] && LW=1; [ "$NCW" -lt 1 ] && NCW=1
timeout $(( LEFT - 5 )) edge train nativecross --config default --init "$HERE/../edge/models/nativecross/weights/default.pt" \
  --steps 100000 --batch 16 --lr 1e-3 --seed 21 --device "$DEVICE" --workers "$NCW" --time-limit "$LIMIT" \
  --eval-samples 20 --out "$OUT/nc.pt" > "$OUT/nc.log" 2>&1 &
NC=$!
timeout $(( LEFT - 5 )) edge train lane --config default --init "$HERE/../edge/models/lane/weights/default.pt" \
  --steps 100000 --batch 16 --lr 1e-3 --seed 21 --device "$DEVICE" --workers "$LW" --time-limit "$LIMIT" \
  --eval-clips 50 --out "$OUT/lane.pt" > "$OUT/lane.log" 2>&1 &
LN=$!
wait $NC; echo "nativecross exit $?"; tail -3 "$OUT/nc.log"
wait $LN; echo "lane exit $?"; tail -3 "$OUT/lane.log"
nvidia-smi --query-gpu=name,memory.used --format=csv || true
echo "done after $(( $(date +%s) - T0 )) s"
