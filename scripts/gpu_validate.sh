#!/usr/bin/env bash
# One command, about 10 minutes on one H100/H200/A100: microbenchmarks, calibration, a
# verified-then-timed kernel sweep and the accuracy reports, all under one folder.
#   scripts/gpu_validate.sh [OUT_DIR] [extra run-all options, e.g. --gpu h100-sxm --budget-s 540]
# Needs the GPU extra: pip install -e ".[gpu]"  (CuPy, cuda-python). Commit OUT_DIR's
# micro.jsonl, measurements.jsonl, env.json and *-calibrated.toml under validation/data/runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-out/gpu-validation/$(date -u +%Y%m%dT%H%M%SZ)}"
shift || true
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
if ! "$PY" -c "import cupy; cupy.cuda.Device(0).attributes" >/dev/null 2>&1; then
  echo "error: no usable GPU through CuPy here (install the gpu extra: pip install -e '.[gpu]')" >&2
  exit 2
fi
mkdir -p "$OUT"
"$PY" -m recperf validate run-all --out "$OUT" "$@" | tee "$OUT/run-all.log"
echo "results in $OUT"
