#!/usr/bin/env bash
# The one command for a GPU lease: from a fresh clone with only python3, it
#   1. stops at once (exit 2, one `error:` line) where there is no NVIDIA GPU or driver;
#   2. makes its own environment, with the extra of the driver's CUDA major (gpu-cuda12 or
#      gpu-cuda13, read from nvidia-smi), reusing a CuPy the system Python already has;
#   3. runs `recperf validate run-all` within the budget: a smoke phase (<= 60 s), the
#      microbenchmarks, calibration, the verified-then-timed sweep, the accuracy reports;
#   4. packs the run into one archive, out/gpu-validate-<gpu>-<UTC date>.tar.gz, whose path
#      is the last line it prints.
# Exit status: 0 every phase ran; 1 a phase failed (one line each on stderr); 2 no GPU, no
# usable CUDA, or a bad argument (one `error:` line).
#
#   bash scripts/gpu_validate.sh [--budget-s 420] [--out out] [--gpu ID] [--wheels DIR] [--plan-only]
#
# --budget-s  wall-clock seconds for the whole command, the install included (default 420)
# --gpu       recperf GPU id, where the device name does not say it (see `recperf gpus`)
# --wheels    a folder of wheels to install from first (for a machine without a package index)
# --plan-only print the plan (extra, environment, phase budget) as JSON and stop: no install
# Replay an archive anywhere: recperf validate report --measurements A.tar.gz;
#                             recperf validate calibrate --archive A.tar.gz
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
START=$(date +%s)
die() { echo "error: $*" >&2; exit 2; }

BUDGET=420 OUT=out GPU="" WHEELS="" PLAN_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --budget-s) [ $# -ge 2 ] || die "--budget-s needs a number of seconds"; BUDGET=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a folder"; OUT=$2; shift 2 ;;
    --gpu) [ $# -ge 2 ] || die "--gpu needs a GPU id (see recperf gpus)"; GPU=$2; shift 2 ;;
    --wheels) [ $# -ge 2 ] || die "--wheels needs a folder of wheels"; WHEELS=$2; shift 2 ;;
    --plan-only) PLAN_ONLY=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown option '$1'; valid options: --budget-s, --out, --gpu, --wheels, --plan-only, --help" ;;
  esac
done

# ---- 1. a GPU and a Python, before anything slow ------------------------------------------
PY3=${PYTHON:-python3}
command -v "$PY3" >/dev/null 2>&1 || die "'$PY3' is not on PATH: this command needs Python 3.10 or newer"
"$PY3" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null \
  || die "'$PY3' is Python $("$PY3" -c 'import platform; print(platform.python_version())' 2>/dev/null): 3.10 or newer is needed"
command -v nvidia-smi >/dev/null 2>&1 \
  || die "no NVIDIA GPU here: nvidia-smi is not on PATH, so there is no NVIDIA driver (this command needs a GPU); replay a recorded run with: recperf validate report --measurements ARCHIVE.tar.gz"
SMI=$(timeout 20 nvidia-smi 2>&1) || die "nvidia-smi finds no usable GPU: $(printf '%s' "$SMI" | head -n 1)"
PLAN=$(printf '%s\n' "$SMI" | "$PY3" validation/_lease.py plan - "$BUDGET") || exit 2
field() { printf '%s' "$PLAN" | "$PY3" -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
EXTRA=$(field extra)
REUSE=$(field reuse_system_cupy)
ENV_DIR="$OUT/gpu-env-$EXTRA"
[ "$REUSE" = True ] && ENV_DIR="$ENV_DIR-system"
if [ "$PLAN_ONLY" = 1 ]; then
  printf '%s' "$PLAN" | "$PY3" -c "import json, sys; d = json.load(sys.stdin); d['env'] = sys.argv[1]; print(json.dumps(d))" "$ENV_DIR"
  exit 0
fi
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN="$OUT/gpu-validate-$STAMP"
mkdir -p "$RUN" || die "cannot create the run folder '$RUN'"
printf '%s\n' "$SMI" >"$RUN/nvidia-smi.txt"
echo "plan: $(field reason); extra $EXTRA; environment $ENV_DIR"

# ---- 2. the environment -------------------------------------------------------------------
# Where the system Python has a CuPy for a CUDA major the driver runs, the environment is that
# Python with this checkout on its path (a wrapper, $ENV_DIR/bin/python), and nothing is
# installed when that is all it needs (a machine with no package index). It must be the Python
# itself, not a virtual environment on top: CuPy finds PyPI's NVRTC through cuda-pathfinder,
# which looks in site.getsitepackages() only. Else: a virtual environment with the extra.
LOG="$RUN/install.log"
CHECK='import numpy, scipy, matplotlib, numba, cupy, cuda.bindings.runtime, perfmodel, kernels, validation'
stamp_of() { echo "$EXTRA reuse=$1 $(sha256sum pyproject.toml | cut -c1-16)"; }
fresh() { [ ! -x "$1/bin/python" ] || [ "$(cat "$1/.recperf-stamp" 2>/dev/null)" != "$2" ]; }
if [ "$REUSE" = True ] && fresh "$ENV_DIR" "$(stamp_of True)"; then
  rm -rf "$ENV_DIR"
  mkdir -p "$ENV_DIR/bin"
  PY3_ABS=$(command -v "$PY3")
  printf '#!/bin/sh\nPYTHONPATH="%s${PYTHONPATH:+:$PYTHONPATH}" exec "%s" "$@"\n' "$(pwd)" "$PY3_ABS" >"$ENV_DIR/bin/python"
  chmod +x "$ENV_DIR/bin/python"
  if "$ENV_DIR/bin/python" -c "$CHECK" >>"$LOG" 2>&1; then
    echo "environment: $PY3_ABS with this checkout on its path (nothing installed)" >>"$LOG"
    stamp_of True >"$ENV_DIR/.recperf-stamp"
  else
    echo "environment: the system Python lacks a dependency; an isolated environment instead" >>"$LOG"
    rm -rf "$ENV_DIR"
    REUSE=False
    ENV_DIR="$OUT/gpu-env-$EXTRA"
  fi
fi
if [ "$REUSE" != True ] && fresh "$ENV_DIR" "$(stamp_of False)"; then
  rm -rf "$ENV_DIR"
  # without pip where ensurepip is missing (a Python without python3-venv): pip then comes from
  # the system Python, installing into the environment (pip --python)
  "$PY3" -m venv "$ENV_DIR" >>"$LOG" 2>&1 || { rm -rf "$ENV_DIR"; "$PY3" -m venv --without-pip "$ENV_DIR" >>"$LOG" 2>&1; } \
    || die "cannot create a virtual environment with $PY3 -m venv (on Debian/Ubuntu: apt-get install python3-venv); see $LOG"
  PYENV="$ENV_DIR/bin/python"
  if "$PYENV" -m pip --version >/dev/null 2>&1; then PIP=("$PYENV" -m pip); else PIP=("$PY3" -m pip --python "$PYENV"); fi
  ok=0
  if [ -n "$WHEELS" ]; then
    "${PIP[@]}" install -q --no-index --find-links "$WHEELS" -e ".[$EXTRA]" >>"$LOG" 2>&1 && ok=1
  fi
  if [ $ok = 0 ]; then
    "${PIP[@]}" install -q --retries 1 --timeout 20 -e ".[$EXTRA]" >>"$LOG" 2>&1 && ok=1
  fi
  [ $ok = 1 ] || die "cannot install recperf[$EXTRA] into $ENV_DIR: $(grep -m1 -i 'error' "$LOG" || tail -n 1 "$LOG") (full log: $LOG)"
  stamp_of False >"$ENV_DIR/.recperf-stamp"
fi
PYENV="$ENV_DIR/bin/python"
"$PYENV" -m recperf validate preflight >"$RUN/preflight.txt" 2>"$RUN/preflight.err" \
  || die "$(sed 's/^error: //' "$RUN/preflight.err" | head -n 1)"

# ---- 3. the phases, in what is left of the budget -----------------------------------------
LEFT=$("$PY3" -c 'import sys; print(round(float(sys.argv[1]) - float(sys.argv[2]), 1))' "$BUDGET" "$(( $(date +%s) - START ))")
GPU_ARGS=()
[ -n "$GPU" ] && GPU_ARGS=(--gpu "$GPU")
PYTHONUNBUFFERED=1 "$PYENV" -m recperf validate run-all --out "$RUN" --budget-s "$LEFT" ${GPU_ARGS[@]+"${GPU_ARGS[@]}"} \
  2>"$RUN/run-all.err" | tee "$RUN/run-all.log"
RC=${PIPESTATUS[0]}
LINES=$(grep -E '^(phase |error:)' "$RUN/run-all.err")
if [ -n "$LINES" ]; then
  printf '%s\n' "$LINES" >&2
elif [ "$RC" != 0 ]; then  # a crash outside the phases (its traceback is in run-all.err)
  echo "phase run-all failed with status $RC: $(tail -n 1 "$RUN/run-all.err")" >&2
fi
case $RC in 0|1) ;; 2) exit 2 ;; *) RC=1 ;; esac

# ---- 4. one archive -------------------------------------------------------------------------
PACKED=$("$PY3" validation/_lease.py pack "$RUN" "$OUT" "$STAMP") || exit 2
ARCHIVE=$(printf '%s' "$PACKED" | "$PY3" -c "import json, sys; print(json.load(sys.stdin)['archive'])")
echo "$ARCHIVE"
exit $RC
