#!/usr/bin/env bash
# Re-measure every number in README.md and the pages under docs/ moved out of it, on this machine, with the package's own entry points.
# Usage: scripts/reproduce_readme.sh [quick|bench|figures|smoke|lego-fewview|lego|robustness|all]   (default: quick)
# The README and docs/*.md quote the committed copies of results/<protocol>/results.* under docs/results/<protocol>/.
# Costs on the 2-core development CPU: quick 6 min, bench 30 min, figures 4 min, smoke (robustness-quick and
# room-quick) 12 min, lego-fewview, lego and robustness 2 to 4 hours each (see docs/comparing.md, the protocol table). Run from the repository root with the package installed.
set -euo pipefail
what="${1:-quick}"
scratch="${TMPDIR:-/tmp}/depth-strategies-readme"
mkdir -p "$scratch"

run_quick()   {
  ds-compare quick
  ds-compare docs/results/quick-near-far/protocol.yaml --output results/quick-near-far   # version 0.1 sampling
}
run_bench()   {
  ds-make-scene "$scratch/scene64" --resolution 64
  ds-bench --data "$scratch/scene64" --sizes cpu --iterations 4 --rounds 8 \
    --variants depth-baseline/nerfstudio-grid depth-baseline/v0.2 depth-baseline+compile
  ds-bench --data "$scratch/scene64" --sizes tiny --iterations 5 --rounds 8 \
    --variants depth-baseline/nerfstudio-grid depth-baseline/v0.2
  ds-split-scene ../shared/data/lego "$scratch/lego-10" --n-train 10 --n-test 20
  ds-bench --render --data "$scratch/lego-10" --sizes cpu --methods depth-baseline --references nerfacto \
    --variants depth-baseline/eager depth-baseline/nerfstudio-grid depth-baseline/v0.2 --warmup 3 --rounds 5
  ds-compare docs/results/lego-fewview-speed/protocol.yaml --output results/lego-fewview-speed   # a lego run, 0.2 vs now
  ds-make-scene "$scratch/scene128" --resolution 128
  ds-bench --data "$scratch/scene128" --sizes default --methods depth-baseline --iterations 3 --rounds 2
}
run_smoke()   {
  ds-compare robustness-quick --output docs/results/v0.3/robustness-quick
  python scripts/readme_tables.py                                               # the marked tables of README.md and docs/*.md
  ds-compare room-quick --output docs/results/v0.3/room-quick
  time ds-compare quick --output "$scratch/quick-local"                        # the executor timings in docs/comparing.md
  time ds-compare quick --executor ray --jobs 2 --output "$scratch/quick-ray"
}
run_figures() {
  ds-video results/quick --frames 24
  ds-figures results/quick
  python -m pytest tests/core/test_data.py -k reproject -s -q
}
run_robustness() {
  ds-compare robustness --output docs/results/v0.3/robustness --data-root . --jobs 2   # resumes committed runs
  python scripts/depth_consistency.py robustness --output docs/results/v0.3/robustness --data-root .
  python scripts/readme_tables.py                                               # the marked tables of README.md and docs/*.md
  for m in psnr depth_l1; do python scripts/seed_differences.py docs/results/v0.3/robustness --metric $m; done
  # the first diagnosis of depth-hybrid-uncertain's seed-1 losses (4 runs, about 8 min)
  ds-compare docs/results/v0.3/robustness-uncertain-diagnosis/protocol.yaml \
    --output docs/results/v0.3/robustness-uncertain-diagnosis --data-root . --jobs 2
}

case "$what" in
  quick) run_quick ;;
  bench) run_bench ;;
  figures) run_figures ;;
  smoke) run_smoke ;;
  lego-fewview|lego) ds-compare "$what" --output "docs/results/v0.3/$what" ;;   # resumes committed runs
  robustness) run_robustness ;;
  all) run_quick; run_bench; run_figures; run_smoke
       for p in lego-fewview lego; do ds-compare "$p" --output "docs/results/v0.3/$p"; done; run_robustness ;;
  *) echo "unknown target '$what': use quick, bench, figures, smoke, lego-fewview, lego, robustness or all" >&2
     exit 2 ;;
esac
