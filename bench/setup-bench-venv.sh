#!/usr/bin/env bash
# Builds .venv-bench: PyPI torch (CPU use only), transformers, peft and gguf, the peer of
# bench/bench_train.py. Debian's python3-torch (reference BLAS) is not a fair speed peer.
# The Linux torch wheel on PyPI declares the nvidia-* CUDA wheels (several GB) as dependencies;
# they are not needed on a CPU, so torch is installed with --no-deps plus its pure-Python
# dependencies, and the script checks that it imports and multiplies. TORCH_FULL=1 installs the
# full dependency set instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv-bench}
TORCH_SPEC=${TORCH_SPEC:-torch}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
P="$VENV/bin/python"
"$P" -m pip install -q --upgrade pip
if [ "${TORCH_FULL:-0}" = 1 ]; then
    "$P" -m pip install -q "$TORCH_SPEC"
else
    "$P" -m pip install -q --no-deps "$TORCH_SPEC"
    "$P" -m pip install -q filelock typing_extensions sympy networkx jinja2 fsspec
fi
"$P" -m pip install -q numpy transformers peft gguf sentencepiece
"$P" - <<'PY'
import torch, transformers, peft
torch.set_num_threads(2)
a = torch.randn(256, 256)
assert torch.allclose(a @ torch.eye(256), a)
print("bench venv ok: torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)
print("\n".join(l for l in torch.__config__.show().splitlines() if "Math Kernel" in l or "CPU capability" in l))
PY
