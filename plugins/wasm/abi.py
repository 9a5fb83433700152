"""Which ABI a module speaks, decided once at deploy from its exports and imports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import wasmtime

from plugins import CompileError

Abi = Literal["core", "wasi"]

WASI_MODULE = "wasi_snapshot_preview1"
CORE_IMPORTS = {("tiergate", "log"), ("tiergate", "fail")}
CORE_EXPORTS = {
    "alloc": (["i32"], ["i32"]),
    "handle": (["i32", "i32"], ["i64"]),
}


def _signature(ty: wasmtime.FuncType) -> str:
    params = ", ".join(str(p) for p in ty.params)
    results = ", ".join(str(r) for r in ty.results)
    return f"({params}) -> ({results})"


def detect(module: wasmtime.Module) -> Abi:
    exports = {e.name: e.type for e in module.exports}
    start = exports.get("_start")
    if isinstance(start, wasmtime.FuncType):
        if start.params or start.results:
            raise CompileError(f"_start must take and return nothing, has {_signature(start)}")
        _check_imports(module, "wasi")
        return "wasi"
    problems = _core_problems(exports)
    if problems:
        raise CompileError(
            "the module fits neither ABI: it has no _start export (WASI command), and for the "
            "core JSON ABI " + "; ".join(problems)
        )
    _check_imports(module, "core")
    return "core"


def _core_problems(exports: Mapping[str, object]) -> list[str]:
    problems = []
    if not isinstance(exports.get("memory"), wasmtime.MemoryType):
        problems.append("it exports no memory named 'memory'")
    for name, (params, results) in CORE_EXPORTS.items():
        ty = exports.get(name)
        if not isinstance(ty, wasmtime.FuncType):
            problems.append(f"it exports no function {name!r}")
        elif [str(p) for p in ty.params] != params or [str(r) for r in ty.results] != results:
            wanted = f"({', '.join(params)}) -> ({', '.join(results)})"
            problems.append(f"{name!r} has type {_signature(ty)}, expected {wanted}")
    return problems


def _check_imports(module: wasmtime.Module, abi: Abi) -> None:
    for imp in module.imports:
        where = f"{imp.module}.{imp.name}"
        if abi == "wasi" and imp.module == WASI_MODULE:
            continue
        if abi == "core" and (imp.module, imp.name) in CORE_IMPORTS:
            ty = imp.type
            if not isinstance(ty, wasmtime.FuncType) or _signature(ty) != "(i32, i32) -> ()":
                raise CompileError(f"import {where} must have type (i32, i32) -> ()")
            continue
        allowed = WASI_MODULE + ".*" if abi == "wasi" else "tiergate.log and tiergate.fail"
        raise CompileError(f"unknown import {where}: a {abi} module may import only {allowed}")
