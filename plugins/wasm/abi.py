"""Which ABI a module speaks, decided once at deploy from its exports and imports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import wasmtime

from plugins import CompileError

Abi = Literal["core", "wasi"]

WASI_MODULE = "wasi_snapshot_preview1"
CORE_IMPORTS = {
    ("tiergate", "log"): "(i32, i32) -> ()",
    ("tiergate", "fail"): "(i32, i32) -> ()",
}
CALL_IMPORTS = {  # either ABI (``calls_abi``)
    ("tiergate", "invoke"): "(i32, i32, i32, i32) -> (i32)",
    ("tiergate", "answer"): "(i32, i32) -> (i32)",
}
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


def calls_functions(module: wasmtime.Module) -> bool:
    """Does the module import ``tiergate.invoke``? Its calls then wait on other functions, so
    they never run on the gateway's event loop (``inline``)."""
    return any((imp.module, imp.name) == ("tiergate", "invoke") for imp in module.imports)


def _check_imports(module: wasmtime.Module, abi: Abi) -> None:
    known = CALL_IMPORTS | (CORE_IMPORTS if abi == "core" else {})
    for imp in module.imports:
        where = f"{imp.module}.{imp.name}"
        if abi == "wasi" and imp.module == WASI_MODULE:
            continue
        wanted = known.get((imp.module, imp.name or ""))
        if wanted is not None:
            ty = imp.type
            if not isinstance(ty, wasmtime.FuncType) or _signature(ty) != wanted:
                raise CompileError(f"import {where} must have type {wanted}")
            continue
        allowed = ", ".join(f"{m}.{n}" for m, n in known)
        allowed = f"{WASI_MODULE}.*, {allowed}" if abi == "wasi" else allowed
        raise CompileError(f"unknown import {where}: a {abi} module may import only {allowed}")
