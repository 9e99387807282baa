#!/usr/bin/env bash
# The fuse challenge's GPU checks in one run (issue 3), for a machine with an NVIDIA GPU, nvcc, CuPy and
# compute-sanitizer, and python3 with numpy, pytest and pytest-timeout. No network needed. From the
# repository root:
#
#     bash bench/gpu_check.sh          # about 3 minutes, never more than FUSE_CHECK_BUDGET seconds (285)
#
# Steps, each reported in the summary at the end; a failing step does not stop the next one:
#   1. environment: GPU, driver, nvcc, CuPy, compute-sanitizer
#   2. the package: pip install --no-deps --no-build-isolation -e . (offline); else (or with
#      FUSE_CHECK_NO_INSTALL=1) PYTHONPATH=. and -p pytest_llmchallenges.plugin
#   3. the fuse suite on reference/ with every GPU test (compute-sanitizer test included)
#   4. compute-sanitizer memcheck, racecheck (and synccheck, initcheck, for information) on the reference,
#      outside the sandbox; 4b. bench/landlock_cuda_probe.py: which part of the confinement breaks CUDA;
#      4c. bench/isolation_cuda_probe.py: CUDA inside the sandbox's namespaces and fresh root
#   5. bench/fuse_bandwidth.py: bandwidth against copy bandwidth, naive CuPy and CuPy's row-wise max
#   6. every mutant of tests/mutants/fuse.toml graded on the GPU (in parallel), each against the tests that
#      must catch it
# Logs: in $OUT when set (the device tool brings that folder back), else /tmp/fuse_gpu_check:
# env.txt suite.txt suite.json sanitizer.txt landlock.txt isolation.txt bench.txt mutants.txt summary.txt
set -u
cd "$(dirname "$0")/.." || exit 2
LOG=${OUT:-/tmp/fuse_gpu_check}
mkdir -p "$LOG"
PY=${PYTHON:-python3}
BUDGET=${FUSE_CHECK_BUDGET:-285}
START=$(date +%s)
SUMMARY="$LOG/summary.txt"
: >"$SUMMARY"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

left() { echo $((BUDGET - ($(date +%s) - START))); }
# seconds for a step: its cap, or what is left of the budget minus a reserve for the later steps
allow() {
  local cap=$1 reserve=$2 l
  l=$(($(left) - reserve))
  if ((l < cap)); then cap=$l; fi
  if ((cap < 5)); then cap=5; fi
  echo "$cap"
}
note() { printf '%-10s %s\n' "$1" "$2" | tee -a "$SUMMARY"; }
banner() { printf '\n===== %s (%ss left) =====\n' "$1" "$(left)"; }

# ---- 1. environment -----------------------------------------------------------------------------------
banner "1. environment"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || echo "nvidia-smi failed"
  command -v nvcc >/dev/null && nvcc --version | tail -n 2 || echo "nvcc: not found"
  SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || echo "")
  echo "compute-sanitizer: ${SAN:-not found}"
  "$PY" -c "import sys, numpy, pytest, cupy; print('python', sys.version.split()[0], 'numpy', numpy.__version__,
'pytest', pytest.__version__, 'cupy', cupy.__version__, 'devices', cupy.cuda.runtime.getDeviceCount(),
'cc', cupy.cuda.Device(0).compute_capability)" 2>&1 | tail -n 3
} 2>&1 | tee "$LOG/env.txt"
if grep -q "^python" "$LOG/env.txt" && grep -q "cc " "$LOG/env.txt"; then
  note "env" "ok: $(head -n 1 "$LOG/env.txt")"
else
  note "env" "PROBLEM: CuPy or the device is not usable (see env.txt)"
fi

# ---- 2. the package -------------------------------------------------------------------------------------
banner "2. package"
PLUGIN=()
if [[ -z "${FUSE_CHECK_NO_INSTALL:-}" ]] && timeout -k 5 "$(allow 90 200)" "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . \
  >"$LOG/pip.tmp" 2>&1 && "$PY" -c "import pytest_llmchallenges.plugin" 2>/dev/null; then
  note "package" "ok: pip install -e . (offline)"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  # -p only where the entry point is not installed already (registering the plugin twice is an error)
  "$PY" -c "import importlib.metadata as m, sys; sys.exit(any(e.value == 'pytest_llmchallenges.plugin'
for e in m.entry_points(group='pytest11')))" && PLUGIN=(-p pytest_llmchallenges.plugin)
  if "$PY" -c "import pytest_llmchallenges.plugin" 2>/dev/null; then
    note "package" "ok: PYTHONPATH=.${PLUGIN[*]+ ${PLUGIN[*]}} (pip -e: $(tail -n 1 "$LOG/pip.tmp" 2>/dev/null || echo skipped))"
  else
    note "package" "FAIL: cannot import pytest_llmchallenges.plugin: $("$PY" -c 'import pytest_llmchallenges.plugin' 2>&1 | tail -n 1)"
  fi
fi
rm -f "$LOG/pip.tmp"

# ---- 3. the suite on the reference -----------------------------------------------------------------------
banner "3. fuse suite on reference/"
timeout -k 10 "$(allow 110 150)" "$PY" -m pytest ${PLUGIN[@]+"${PLUGIN[@]}"} -p no:cacheprovider -v -rs --durations=5 \
  --llm-submission=reference --llm-report "$LOG/suite.json" pytest_llmchallenges/challenges/fuse/suite/test_fuse.py \
  >"$LOG/suite.txt" 2>&1
rc=$?
tail -n 30 "$LOG/suite.txt"
verdict=$("$PY" - "$LOG/suite.json" <<'EOF' 2>&1
import json, sys
try:
    rep = json.load(open(sys.argv[1]))
except Exception as exc:
    print(f"FAIL: no report ({exc})"); sys.exit()
tests = [t for s in rep["submissions"] for c in s["challenges"] for t in c["tests"]]
bad = [f"{t['test']}={t['outcome']}/{t['category']}" for t in tests if t["outcome"] != "passed"]
print(("ok: " if not bad else "FAIL: ") + f"{len(tests) - len(bad)}/{len(tests)} passed" + (f"; {', '.join(bad)}" if bad else ""))
EOF
)
note "suite" "$verdict (pytest exit $rc)"

# ---- 4. compute-sanitizer outside the sandbox ------------------------------------------------------------
banner "4. compute-sanitizer on the reference"
timeout -k 10 "$(allow 75 110)" "$PY" - >"$LOG/sanitizer.txt" 2>&1 <<'EOF'
import os, subprocess, sys, tempfile
from pathlib import Path
sys.path.insert(0, os.getcwd())
from pytest_llmchallenges.challenges.fuse.driver import llmc_fuse_build as d
from pytest_llmchallenges.challenges.fuse.driver.llmc_fuse_launcher import find_launcher

class Ref:
    root = Path("reference/fuse").resolve()

os.environ["TMPDIR"] = tempfile.mkdtemp(prefix="fuse-san-")
tool = d.sanitizer_path()
if tool is None:
    print("VERDICT SKIP compute-sanitizer not found"); sys.exit()
launcher = find_launcher(Ref.root)
arch = d.device_arch()
verdicts = []
for shape, k in (((1, 3, 16411), 20), ((2, 5, 50257), 64), ((1, 2, 1000), 256)):
    exe = Path(os.environ["TMPDIR"]) / f"check_{shape[2]}_{k}"
    d.build_shim(Ref.root, launcher, arch, exe, main={"B": shape[0], "T": shape[1], "V": shape[2], "K": k})
    for name in ("memcheck", "racecheck", "synccheck", "initcheck"):
        if shape[2] != 16411 and name in ("synccheck", "initcheck"):
            continue
        p = subprocess.run([tool, "--tool", name, "--error-exitcode", "97", str(exe)], capture_output=True, text=True,
                           timeout=120)
        summary = [ln for ln in (p.stdout + p.stderr).splitlines() if "SUMMARY" in ln or "status" in ln]
        print(f"--- {name} B,T,V={shape} K={k}: exit {p.returncode}")
        print((p.stdout + p.stderr)[-1500:] if p.returncode else "\n".join(summary))
        if name in ("memcheck", "racecheck"):
            verdicts.append(p.returncode == 0)
print("VERDICT", "ok" if all(verdicts) else "FAIL", f"{sum(verdicts)}/{len(verdicts)} memcheck/racecheck runs clean")
EOF
tail -n 25 "$LOG/sanitizer.txt"
v=$(grep "^VERDICT" "$LOG/sanitizer.txt" | tail -n 1 | cut -d' ' -f2-)
note "sanitizer" "${v:-FAIL: no verdict (see sanitizer.txt)}"

# ---- 4b. which confinement breaks CUDA ------------------------------------------------------------------
banner "4b. Landlock and the CUDA runtime"
timeout -k 5 "$(allow 45 100)" "$PY" bench/landlock_cuda_probe.py >"$LOG/landlock.txt" 2>&1
cat "$LOG/landlock.txt"
note "landlock" "$(grep -c '^ok' "$LOG/landlock.txt") of $(grep -cE '^(ok|FAILS|CRASH|TIMEOUT)' "$LOG/landlock.txt") variants run CUDA; failing: $(grep -E '^(FAILS|CRASH|TIMEOUT)' "$LOG/landlock.txt" | cut -c9- | cut -d'[' -f1 | tr '\n' ';')"

# ---- 4c. the sandbox's namespaces and the CUDA runtime ---------------------------------------------------
banner "4c. namespaces and the CUDA runtime"
timeout -k 5 "$(allow 45 90)" "$PY" bench/isolation_cuda_probe.py >"$LOG/isolation.txt" 2>&1
cat "$LOG/isolation.txt"
note "isolation" "$(grep -c '^ok' "$LOG/isolation.txt") ok; failing: $(grep -vE '^(ok|$)' "$LOG/isolation.txt" | head -n 3 | cut -c1-80 | tr '\n' ';')"

# ---- 5. bandwidth --------------------------------------------------------------------------------------
banner "5. bandwidth bench"
timeout -k 10 "$(allow 70 75)" "$PY" bench/fuse_bandwidth.py --reps 40 >"$LOG/bench.txt" 2>&1
rc=$?
cat "$LOG/bench.txt"
missed=$(grep -c "MISSED" "$LOG/bench.txt")
met=$(grep -c "  met " "$LOG/bench.txt")
if ((rc != 0)); then
  note "bench" "FAIL: exit $rc (see bench.txt)"
else
  note "bench" "$met goals met, $missed missed: $(grep -E '^ +(512|32) +(1|8|64) ' "$LOG/bench.txt" | awk '{printf "%s rows K=%s %s of copy; ", $1, $2, $6}' | tr -d '\n')"
fi

# ---- 6. mutants on the GPU -----------------------------------------------------------------------------
banner "6. mutants"
MUT_BUDGET=$(allow 200 5)
"$PY" - "$MUT_BUDGET" "$PY" ${PLUGIN[@]+"${PLUGIN[@]}"} >"$LOG/mutants.txt" 2>&1 <<'EOF'
import concurrent.futures as cf, json, os, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, os.getcwd())
from tests import mutants as M

budget, py, plugin = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
deadline = time.time() + budget
tmp = Path(tempfile.mkdtemp(prefix="fuse-mut-"))
muts = M.load("fuse")[0]

def grade(m):
    try:
        sub = M.materialise(m, tmp / "subs")
    except Exception as exc:
        return m, None, f"cannot materialise: {exc}"
    rep = tmp / f"{m.name}.json"
    select = [] if "test_sanitizer_clean" in m.catches else ["-k", "not sanitizer"]
    cmd = [py, "-m", "pytest", *plugin, "-p", "no:cacheprovider", "-q", "pytest_llmchallenges/challenges/fuse/suite/test_fuse.py",
           "--llm-submission", str(sub), "--llm-report", str(rep), *select]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(5.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        return m, None, "timed out"
    try:
        data = json.loads(rep.read_text())
    except Exception:
        return m, None, "no report: " + (proc.stdout + proc.stderr)[-400:]
    out = {t["test"]: (t["outcome"], t["category"], t["message"])
           for s in data["submissions"] for c in s["challenges"] for t in c["tests"]}
    return m, out, ""

with cf.ThreadPoolExecutor(6) as ex:
    results = list(ex.map(grade, muts))
caught = 0
for m, out, problem in results:
    if out is None:
        print(f"NOT CHECKED {m.name}: {problem}")
        continue
    fails = []
    for test in m.catches:
        outcome, category, message = out.get(test, ("missing", "", ""))
        if outcome != "failed" or (m.category and category != m.category):
            fails.append(f"{test}: {outcome}/{category} {message[:150]}")
    others = " ".join(f"{t.replace('test_', '')}={'F' if o[0] == 'failed' else o[0][0]}" for t, o in sorted(out.items()))
    if fails:
        print(f"MISSED  {m.name}: " + " | ".join(fails))
    else:
        caught += 1
        msg = out[m.catches[0]][2].splitlines()[0][:160] if out[m.catches[0]][2] else ""
        print(f"caught  {m.name} by {', '.join(m.catches)}: {msg}")
    print(f"        all tests: {others}")
print(f"VERDICT {'ok' if caught == len(muts) else 'FAIL'} {caught}/{len(muts)} mutants caught by their tests")
EOF
cat "$LOG/mutants.txt"
v=$(grep "^VERDICT" "$LOG/mutants.txt" | tail -n 1 | cut -d' ' -f2-)
note "mutants" "${v:-FAIL: no verdict (see mutants.txt)}"

# ---- summary --------------------------------------------------------------------------------------------
printf '\n===== SUMMARY (%ss used of %ss; logs in %s) =====\n' "$(($(date +%s) - START))" "$BUDGET" "$LOG"
cat "$SUMMARY"
