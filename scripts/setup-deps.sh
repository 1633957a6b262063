#!/usr/bin/env bash
# Installs what the build, the tests and the demo need on a fresh machine:
# Debian packages (compiler libraries, Python oracles) and a Python virtual
# environment (.venv) that sees Debian's torch/sklearn and holds llama-cpp-python.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# --build-only: just what building tasklm and running the pipeline need (make demo):
# no Python oracles, no llama.cpp compile, no browser.
build_only=0
[ "${1:-}" = "--build-only" ] && build_only=1

DEB_PKGS=(build-essential pkg-config libpcre2-dev libutf8proc-dev libcjson-dev
          libmicrohttpd-dev libinih-dev gnuplot-nox)
[ $build_only = 1 ] || DEB_PKGS+=(python3-venv python3-dev python3-numpy python3-sklearn
                                  python3-torch cmake chromium)

missing=()
for p in "${DEB_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-deps: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ $build_only = 1 ]; then
  echo "setup-deps: ok (build only)"
  exit 0
fi

# Python test environment: Debian's interpreter so python3-torch/python3-sklearn are importable.
PY_PKGS=(llama-cpp-python==0.3.36 rapidfuzz==3.14.6 jellyfish==1.3.0 gguf==0.19.0)
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c 'import llama_cpp, rapidfuzz, jellyfish, gguf' 2>/dev/null; then
  echo "setup-deps: installing Python test packages (llama-cpp-python compiles llama.cpp; pip caches the wheel)"
  # Explicit instruction sets, not GGML_NATIVE: a native build on a machine that reports
  # AMX picked code paths that die with SIGILL on multi-token batches. The set follows
  # this CPU's flags: AVX-512 with VNNI and BF16 where all of them are present, else
  # AVX2/FMA/F16C (machines of this kind have been seen both ways; an AVX-512 build
  # dies with SIGILL on an AVX2-only CPU). AMX stays off either way.
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null) "
  ggml_isa="-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
  has_avx512=1
  for f in avx512f avx512bw avx512vl avx512_vnni avx512_bf16; do
    case "$flags" in *" $f "*) ;; *) has_avx512=0 ;; esac
  done
  if [ $has_avx512 = 1 ]; then
    ggml_isa="$ggml_isa -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON"
  else
    ggml_isa="$ggml_isa -DGGML_AVX512=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF"
  fi
  echo "setup-deps: llama.cpp ISA flags: $ggml_isa"
  CMAKE_ARGS="-DGGML_NATIVE=OFF $ggml_isa -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF" \
    .venv/bin/pip install -q --no-cache-dir "${PY_PKGS[@]}"
fi
# Tokenizer test vectors: llama-cpp-python's source archive carries llama.cpp's
# vocab-only GGUF files with input/output pairs (models/ggml-vocab-*); the
# tokenizer peer test reads them from tests/peer/.cache/ggml-vocab (not committed).
VOCAB_DIR=tests/peer/.cache/ggml-vocab
SDIST_URL=https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-0.3.36.tar.gz
SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
if [ ! -f "$VOCAB_DIR/ggml-vocab-llama-spm.gguf.out" ]; then
  echo "setup-deps: fetching llama.cpp tokenizer test vectors (llama-cpp-python 0.3.36 sdist)"
  # A plain download of the archive (URL and SHA-256 from PyPI's index): `pip download
  # --no-binary` would also build every build dependency from source to read metadata.
  tmp=$(mktemp -d)
  /usr/bin/python3 - "$SDIST_URL" "$SDIST_SHA256" "$tmp/sdist.tar.gz" <<'PY' || { rm -rf "$tmp"; exit 1; }
import hashlib, sys, urllib.request
url, want, out = sys.argv[1:4]
try:
    data = urllib.request.urlopen(url, timeout=300).read()
except OSError as e:
    sys.exit(f"setup-deps: cannot download {url}: {e}")
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"setup-deps: {url}: SHA-256 {got}, expected {want}")
open(out, "wb").write(data)
PY
  mkdir -p "$VOCAB_DIR"
  tar -xzf "$tmp"/sdist.tar.gz -C "$tmp" --wildcards '*/vendor/llama.cpp/models/ggml-vocab-*'
  cp "$tmp"/llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-* "$VOCAB_DIR"/
  rm -rf "$tmp"
fi
echo "setup-deps: ok"
