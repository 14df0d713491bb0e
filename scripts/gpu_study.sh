#!/usr/bin/env bash
# A GPU protocol under a wall-clock limit, on a machine with one GPU and the package installed; commits nothing.
#
#   scripts/gpu_study.sh PROTOCOL [OUT]       e.g. scripts/gpu_study.sh lego-fewview-gpu gpu_study/lego-fewview-gpu
#
# Runs `ds-compare PROTOCOL` with --jobs runs sharing the GPU until GPU_STUDY_LIMIT_S seconds have passed, then
# stops it (the finished runs stay; calling the script again with the same OUT resumes, as ds-compare does). OUT
# (default gpu_study/PROTOCOL) then holds everything a reader needs:
#   environment.json  Python, torch, CUDA, the GPU, tiny-cuda-nn, the package's git commit
#   protocol.yaml     the protocol as run (after the GPU_STUDY_* overrides below)
#   compare/          ds-compare's folder: results.json, results.md, runs/ (when every run finished)
#   summary.json      wall time of this call, finished/missing runs, whether it stopped at the limit, and per run
#                     its PSNR, depth L1 and training seconds per iteration
# Then copy OUT to ../shared/measurements/gpu-DATE/ and cite it with its date.
#
# Environment:
#   GPU_STUDY_LIMIT_S   wall-clock limit of ds-compare in seconds (default 540: a 10-minute call with a margin)
#   GPU_STUDY_JOBS      runs at a time on the GPU (default 4; ds-compare --jobs)
#   GPU_STUDY_DATA_ROOT folder the protocol's relative scene paths are resolved from (default: .)
#   GPU_STUDY_DEVICE=cpu GPU_STUDY_SIZES=tiny GPU_STUDY_ITERATIONS=5 GPU_STUDY_SEEDS=1: a smoke run on a CPU
set -euo pipefail
protocol="${1:?usage: scripts/gpu_study.sh PROTOCOL [OUT]}"
out="${2:-gpu_study/$(basename "$protocol" .yaml)}"
limit="${GPU_STUDY_LIMIT_S:-540}"
jobs="${GPU_STUDY_JOBS:-4}"
data_root="${GPU_STUDY_DATA_ROOT:-.}"
device="${GPU_STUDY_DEVICE:-cuda}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
start=$(date +%s)

# the environment, then the protocol as run (the smoke-test overrides applied), into OUT
python "$(dirname "$0")/gpu_environment.py" "$out/environment.json" "$device" gpu_study GPU_STUDY_DEVICE=cpu
python - "$protocol" "$out" "$device" <<'PY'
import os, sys
from pathlib import Path
import yaml
from depth_strategies.study.protocol import load_protocol

name, out, device = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
protocol = load_protocol(name)
raw = yaml.safe_load(Path(str(protocol.source)).read_text())
raw["device"] = device
if os.environ.get("GPU_STUDY_SIZES"):
    raw["sizes"] = os.environ["GPU_STUDY_SIZES"]
for key in ("iterations", "seeds"):
    if os.environ.get(f"GPU_STUDY_{key.upper()}"):
        raw[key] = int(os.environ[f"GPU_STUDY_{key.upper()}"])
if os.environ.get("GPU_STUDY_ITERATIONS") and raw.get("eval_every"):
    raw["eval_every"] = max(1, raw["iterations"] // 2)
(out / "protocol.yaml").write_text(f"# {protocol.source} as run by scripts/gpu_study.sh\n" + yaml.safe_dump(raw))
PY

echo "== ds-compare $protocol: --jobs $jobs, stopped after ${limit} s"
status=0
timeout --kill-after=30 "$limit" \
  ds-compare "$out/protocol.yaml" --output "$out/compare" --data-root "$data_root" --jobs "$jobs" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 124 ] && [ "$status" -ne 137 ]; then
  echo "gpu_study: ds-compare failed with exit status $status (its output is above)" >&2
fi

python - "$out" "$status" "$start" <<'PY'
import json, sys, time
from pathlib import Path
out, status, start = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
from depth_strategies.study.protocol import load_protocol
from depth_strategies.study.runs import expand_runs
expected = [spec.run_id for spec in expand_runs(load_protocol(str(out / "protocol.yaml")))]
runs = {}
for run_id in expected:
    path = out / "compare" / "runs" / run_id / "result.json"
    result = json.loads(path.read_text()) if path.is_file() else None
    if result is None or result.get("status") != "ok":
        continue
    views = [v["metrics"] for v in result.get("views", [])]
    mean = lambda k: (sum(v[k] for v in views if v.get(k) is not None)
                      / max(1, sum(v.get(k) is not None for v in views))) if views else None
    runs[run_id] = {"psnr": mean("psnr"), "depth_l1": mean("depth_l1"),
                    "seconds_per_iteration": (result.get("train") or {}).get("seconds_per_iteration"),
                    "train_wall_s": (result.get("train") or {}).get("wall_time_s")}
summary = {"wall_time_s": time.time() - start, "ds_compare_exit_status": status,
           "stopped_at_limit": status in (124, 137), "finished": len(runs), "expected": len(expected),
           "missing": [r for r in expected if r not in runs], "complete": (out / "compare" / "results.json").is_file()
           and not [r for r in expected if r not in runs],
           "environment": json.loads((out / "environment.json").read_text()), "runs": runs}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(f"gpu_study: {len(runs)} of {len(expected)} runs finished in {summary['wall_time_s']:.0f} s"
      + ("; stopped at the limit: call the script again with the same OUT to resume" if summary["stopped_at_limit"]
         else "") + f"; everything is in {out}")
PY
exit $([ "$status" -eq 124 ] || [ "$status" -eq 137 ] && echo 0 || echo "$status")
