#!/usr/bin/env bash
# The GPU check, on a machine with one GPU and the package installed (about 5-8 minutes on an H200):
#   1. the environment: Python, torch, CUDA, the GPU, whether tiny-cuda-nn imports;
#   2. ds-bench at the methods' default (nerfacto's) sizes, with nerfstudio's nerfacto and depth-nerfacto as
#      reference rows, on a 128 px built-in scene, with each method's op counts (--ops) and a torch.profiler
#      table of its training step (--profile: top CUDA kernels and host-side ops by self time, OUT/profile/);
#   3. depth-baseline vs depth-hybrid on lego with 10 training views (ds-split-scene), default sizes, a few hundred
#      iterations through ds-compare, then ns-eval on each run.
# Everything lands in OUT (default gpu_check/); OUT/summary.json gathers the figures.
#
# Usage: scripts/gpu_check.sh [LEGO_DIR] [OUT]      LEGO_DIR defaults to ../shared/data/lego
#        GPU_CHECK_ITERATIONS=300 (training iterations per lego run)
#        GPU_CHECK_DEVICE=cpu GPU_CHECK_SIZES=tiny GPU_CHECK_ITERATIONS=5: a smoke run of the script on a CPU
set -euo pipefail
lego="$(cd "${1:-../shared/data/lego}" && pwd)"
out="${2:-gpu_check}"
iterations="${GPU_CHECK_ITERATIONS:-300}"
device="${GPU_CHECK_DEVICE:-cuda}"
sizes="${GPU_CHECK_SIZES:-default}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

python "$(dirname "$0")/gpu_environment.py" "$out/environment.json" "$device" gpu_check GPU_CHECK_DEVICE=cpu

echo "== ds-bench, sizes $sizes, with reference rows"
ds-make-scene "$out/scene128" --resolution 128 --views-train 20 --views-val 1 --views-test 2 >/dev/null
ds-bench --data "$out/scene128" --sizes "$sizes" --device "$device" --warmup 5 --iterations 10 --rounds 3 \
  --ops --profile "$out/profile" --output "$out/bench.json"

echo "== depth-baseline vs depth-hybrid on lego-10, sizes $sizes, $iterations iterations"
protocol_sizes=$([ "$sizes" = default ] && echo null || echo "$sizes")
cat > "$out/lego10.yaml" <<YAML
name: gpu-check-lego10
description: GPU check - depth-baseline vs depth-hybrid on lego with 10 training views, default sizes.
scenes:
  - name: lego-10
    split: {source: $lego, from_split: test, n_train: 10, n_val: 2, n_test: 20, seed: 0}
methods: [depth-baseline, depth-hybrid]
baseline: depth-baseline
sizes: $protocol_sizes
iterations: $iterations
seeds: 1
device: $device
eval_every: 0
curve_views: 1
panel_views: 1
YAML
ds-compare "$out/lego10.yaml" --output "$out/compare"
for config in $(find "$out/compare/runs" -name config.yml | sort); do
  ns-eval --load-config "$config" --output-path "$(dirname "$config")/eval.json" >/dev/null
done

python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
results = json.loads((out / "compare" / "results.json").read_text())
runs = {}
for run in results["runs"]:
    views = [v["metrics"] for v in run.get("views", [])]
    mean = lambda k: sum(v[k] for v in views if v.get(k) is not None) / max(1, sum(v.get(k) is not None for v in views))
    evals = sorted((out / "compare" / run["run_dir"]).rglob("eval.json"))
    runs[run["method"]] = {
        "status": run["status"], "seconds_per_iteration": run.get("train", {}).get("seconds_per_iteration"),
        "psnr": mean("psnr") if views else None, "depth_l1": mean("depth_l1") if views else None,
        "ns_eval": json.loads(evals[0].read_text())["results"] if evals else None,
    }
summary = {"environment": json.loads((out / "environment.json").read_text()),
           "bench": json.loads((out / "bench.json").read_text()),
           "profile": json.loads((out / "profile" / "profile.json").read_text()), "lego10": runs}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
PY
