#!/usr/bin/env bash
# `make demo`: on a fresh machine, installs the build dependencies, fetches the
# default model, builds tasklm, and runs the quick name-matching recipe
# (recipes/namematch-quick.ini: prepare, baseline, zero-shot eval, LoRA,
# merge, eval, q8_0 quantization, eval, recovery, re-quantize, eval, export,
# bench, report). Re-running it skips the finished stages.
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$(date +%s)
scripts/setup-deps.sh --build-only
scripts/fetch-model.sh
make -s -j"$(nproc)" all

echo
echo "== tasklm pipeline recipes/namematch-quick.ini"
build/tasklm pipeline recipes/namematch-quick.ini

echo
echo "== macro-F1 on the held-out test split, per variant"
for f in runs/namematch-quick/*/eval.json runs/namematch-quick/*/baseline.json; do
  [ -f "$f" ] || continue
  python3 - "$f" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"  {j.get('variant', 'baseline (' + j.get('method', '') + ')'):<24} macro-F1 {j['macro_f1']:.4f}  accuracy {j['accuracy']:.4f}  n={j['n']}")
PY
done
final=$(ls runs/namematch-quick/final-*.gguf 2>/dev/null | head -1)
echo "final model: ${final:-(none)}"
if [ -f runs/namematch-quick/report/index.html ]; then
  echo "report:      runs/namematch-quick/report/index.html (and report.md)"
else
  echo "report:      not written (tasklm report is not in this build); stage results are in runs/namematch-quick/*/"
fi
echo "demo wall time: $(( $(date +%s) - t0 )) s"
