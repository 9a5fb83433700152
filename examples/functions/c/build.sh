#!/bin/sh
# Rebuild echo.wasm from echo.c. Needs Debian's clang, lld, wasi-libc and libclang-rt-14-dev-wasm32
# (apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32).
set -eu
cd "$(dirname "$0")"
if ! command -v clang >/dev/null 2>&1; then
    echo "clang not found: apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2
    exit 1
fi
clang --target=wasm32-wasi -O2 -o echo.wasm echo.c
echo "built $(pwd)/echo.wasm ($(wc -c < echo.wasm) bytes)"
