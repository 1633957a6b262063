#!/usr/bin/env bash
# `make demo`: on a fresh machine, installs the build dependencies, fetches the
# default model, builds tasklm, and runs a zero-shot name match on three pairs
# with the task's prompt template and label scoring.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
scripts/fetch-model.sh
make -s -j"$(nproc)" all

MODEL=models/smollm2-135m-instruct-q4_1.gguf
echo
echo "== model"
build/tasklm info "$MODEL"
echo
echo "== zero-shot name match (untuned base model; label log-probabilities)"
template=$(cat tasks/namematch/template.txt)
while IFS='|' read -r n1 n2 gold; do
  prompt=${template//<elected_name>/$n1}
  prompt=${prompt//<partner_name>/$n2}
  printf '%s' "$prompt" > /tmp/tasklm-demo-prompt.txt
  out=$(build/tasklm score "$MODEL" --prompt-file /tmp/tasklm-demo-prompt.txt --labels " yes, no, partial")
  printf '%-14s | %-14s gold=%-8s %s\n' "$n1" "$n2" "$gold" "$out"
done <<'PAIRS'
Ravi Kumar|Rvi Kumar|yes
Ramesh Gupta|Renuka Gupta|partial
Ahmed Khan|Chen Li|no
PAIRS
rm -f /tmp/tasklm-demo-prompt.txt
