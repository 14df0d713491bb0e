#!/usr/bin/env bash
# Re-measure every number in README.md, on this machine, with the package's own entry points.
# Usage: scripts/reproduce_readme.sh [quick|bench|figures|lego-fewview|lego|all]   (default: quick)
# The README quotes the committed copies of results/<protocol>/results.* under docs/results/<protocol>/.
# Costs on the 2-core development CPU: quick 6 min, bench 10 min, figures 4 min, lego-fewview and lego
# several hours each (see README.md, "Protocols"). Run from the repository root with the package installed.
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
  ds-bench --data "$scratch/scene64" --sizes cpu --iterations 10 --rounds 5 --warmup 5
  ds-bench --data "$scratch/scene64" --sizes tiny --iterations 10 --rounds 5 --warmup 5
  ds-make-scene "$scratch/scene128" --resolution 128
  ds-bench --data "$scratch/scene128" --sizes default --methods depth-baseline --iterations 3 --rounds 2
}
run_figures() {
  ds-video results/quick --frames 24
  ds-figures results/quick
  python -m pytest tests/core/test_data.py -k reproject -s -q
}
case "$what" in
  quick) run_quick ;;
  bench) run_bench ;;
  figures) run_figures ;;
  lego-fewview|lego) ds-compare "$what" ;;
  all) run_quick; run_bench; run_figures; ds-compare lego-fewview; ds-compare lego ;;
  *) echo "unknown target '$what': use quick, bench, figures, lego-fewview, lego or all" >&2; exit 2 ;;
esac
