"""The private wasmtime C bindings the wasm runtime drives on its hot path (``wasmtime._bindings``,
through ``wasmtime._ffi``). The project pins ``wasmtime>=50,<51``; this test fails loudly, naming
the function, if an upgrade changes any of them, instead of letting a call crash at run time."""

from __future__ import annotations

import pytest
from wasmtime import _ffi as ffi

# name: (number of arguments, return type name or None)
SIGNATURES = {
    "wasi_config_delete": (1, None),
    "wasi_config_new": (0, "LP_wasi_config_t"),
    "wasi_config_set_env": (4, "c_bool"),
    "wasi_config_set_stderr_file": (2, "c_bool"),
    "wasi_config_set_stdin_bytes": (2, None),
    "wasi_config_set_stdout_file": (2, "c_bool"),
    "wasm_byte_vec_delete": (1, None),
    "wasm_byte_vec_new": (3, None),
    "wasm_trap_delete": (1, None),
    "wasm_trap_message": (2, None),
    "wasmtime_caller_context": (1, "LP_wasmtime_context"),
    "wasmtime_caller_export_get": (4, "c_bool"),
    "wasmtime_context_set_epoch_deadline": (2, None),
    "wasmtime_context_set_fuel": (2, "LP_wasmtime_error"),
    "wasmtime_context_set_wasi": (2, "LP_wasmtime_error"),
    "wasmtime_error_delete": (1, None),
    "wasmtime_error_exit_status": (2, "c_bool"),
    "wasmtime_error_message": (2, None),
    "wasmtime_func_call": (7, "LP_wasmtime_error"),
    "wasmtime_instance_export_get": (5, "c_bool"),
    "wasmtime_instance_pre_instantiate": (4, "LP_wasmtime_error"),
    "wasmtime_linker_define_func": (9, "LP_wasmtime_error"),
    "wasmtime_memory_data": (2, "LP_c_ubyte"),
    "wasmtime_memory_data_size": (2, "c_ulong"),
    "wasmtime_pooling_allocation_config_delete": (1, None),
    "wasmtime_pooling_allocation_config_max_memory_size_set": (2, None),
    "wasmtime_pooling_allocation_config_new": (0, "LP_wasmtime_pooling_allocation_config_t"),
    "wasmtime_pooling_allocation_config_total_core_instances_set": (2, None),
    "wasmtime_pooling_allocation_config_total_memories_set": (2, None),
    "wasmtime_pooling_allocation_config_total_tables_set": (2, None),
    "wasmtime_pooling_allocation_strategy_set": (2, None),
    "wasmtime_store_context": (1, "LP_wasmtime_context"),
    "wasmtime_store_delete": (1, None),
    "wasmtime_store_limiter": (6, None),
    "wasmtime_store_new": (3, "LP_wasmtime_store"),
    "wasmtime_trap_code": (2, "c_bool"),
    "wasmtime_trap_new": (2, "LP_wasm_trap_t"),
}
TYPES = [
    "WASMTIME_I32",
    "wasm_byte_t",
    "wasm_byte_vec_t",
    "wasm_trap_t",
    "wasmtime_extern_t",
    "wasmtime_func_callback_t",
    "wasmtime_func_t",
    "wasmtime_instance_t",
    "wasmtime_memory_t",
    "wasmtime_trap_code_enum",
    "wasmtime_trap_code_t",
    "wasmtime_val_t",
]


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_function_signature_unchanged(name):
    function = getattr(ffi.dll, name)
    arguments, result = SIGNATURES[name]
    assert len(function.argtypes) == arguments, f"{name} now takes {len(function.argtypes)} args"
    assert (function.restype.__name__ if function.restype else None) == result


@pytest.mark.parametrize("name", TYPES)
def test_types_and_constants_exist(name):
    assert hasattr(ffi, name), f"wasmtime._ffi no longer has {name}"


def test_every_binding_the_runtime_uses_is_pinned_here():
    import re
    from pathlib import Path

    used = set()
    for path in (Path(__file__).resolve().parents[2] / "plugins" / "wasm").glob("*.py"):
        text = path.read_text()
        used |= set(re.findall(r"\bffi\.(\w+)", text)) | set(re.findall(r'"(wasmtime_\w+)"', text))
    assert used - {"dll"} <= set(SIGNATURES) | set(TYPES)
