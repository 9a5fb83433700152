"""Commands that need no gateway: ``new`` (a function to start from) and ``completion`` (the
shell completion script)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import orjson
from click.shell_completion import get_completion_class

from gateway.cli.client import EXIT_CODES, ClientError
from gateway.cli.wasi_templates import TOOLCHAIN, missing_for, project_files
from gateway.functions.composition import FUNCTION_ID

COMPLETE_VAR = "_TIERGATE_COMPLETE"
SHELLS = ("bash", "zsh", "fish")

PYTHON_HANDLER = '''\
"""{name}: a tiergate function. The gateway calls handler(event, context) with the input JSON as
event; what it returns (any JSON value) is the output. Each line printed is a log line."""


def handler(event, context):
    name = (event or {{}}).get("name", "world")
    print(f"greeting {{name}}")
    return {{"message": f"hello, {{name}}!"}}
'''

PYTHON_README = """\
# {name}

A tiergate function in Python: `handler.py` answers `{{"message": "hello, you!"}}` to the input
`{{"name": "you"}}`, and `{{"message": "hello, world!"}}` to `null`. `manifest.json` holds the rest
of its manifest (description, input and output schemas, limits); `tiergate deploy` reads it.
Modules beside `handler.py` and a `requirements.txt` go with it.

    tiergate deploy {path}
    tiergate invoke {name} -d '{{"name": "you"}}'
    tiergate logs {name}
"""

PYTHON_MANIFEST: dict[str, Any] = {
    "runtime": "python",
    "description": "{name}: says hello (from tiergate new --lang python)",
    "input_schema": {
        "type": ["object", "null"],
        "properties": {"name": {"type": "string"}},
    },
    "output_schema": {
        "type": "object",
        "required": ["message"],
        "properties": {"message": {"type": "string"}},
    },
    "limits": {"timeout_ms": 5000},
}

WAT_MODULE = """\
;; {name}: a tiergate function in WebAssembly text, core JSON ABI (no WASI).
;; The gateway calls alloc(len) for room for the input JSON, writes it there and calls
;; handle(ptr, len); the output JSON is at (result >> 32), (result & 0xffffffff) bytes long.
;; This one logs a line through tiergate.log and answers its input unchanged.
(module
  (import "tiergate" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "echoing the input")
  (global $heap (mut i32) (i32.const 1024))
  ;; A bump allocator: each call runs in a fresh instance, so nothing is ever freed.
  (func (export "alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (local $need i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (local.set $need (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then
        (if (i32.eq (memory.grow (i32.add (i32.div_u (local.get $need) (i32.const 65536))
                                          (i32.const 1)))
                    (i32.const -1))
          (then unreachable))))
    (local.get $ptr))
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (call $log (i32.const 16) (i32.const 17))
    ;; The output is the input: (ptr << 32) | len.
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len)))))
"""

WAT_README = """\
# {name}

A tiergate function in WebAssembly text (core JSON ABI): `{name}.wat` answers its input
unchanged and logs `echoing the input`. `manifest.json` holds the rest of its manifest
(description, limits); `tiergate deploy` reads it from beside the file.

    tiergate deploy {path}/{name}.wat
    tiergate invoke {name} -d '{{"hello": "world"}}'
    tiergate logs {name}
"""

WAT_MANIFEST: dict[str, Any] = {
    "runtime": "wasm",
    "description": "{name}: answers its input (from tiergate new --lang wat)",
    "limits": {"timeout_ms": 1000},
}


WASI_MANIFESTS: dict[str, dict[str, Any]] = {
    lang: {
        **PYTHON_MANIFEST,
        "runtime": "wasm",
        "description": f"{{name}}: says hello (from tiergate new --lang {lang})",
    }
    for lang in ("c", "js")
}
"""The c and js templates answer as the python one does, built into WASI command modules."""


@click.command()
@click.argument("name", type=click.Path(path_type=Path))
@click.option(
    "--lang",
    type=click.Choice(["python", "wat", "c", "js"]),
    default="python",
    show_default=True,
    help="python: handler.py; wat: WebAssembly text, core JSON ABI; c: a WASI command module "
    "in C; js: handler.js on the QuickJS-ng engine, built with it into a WASI command module. "
    f"c and js come with a Makefile (clang --target=wasm32-wasi; Debian: {TOOLCHAIN}).",
)
def new(name: Path, lang: str) -> None:
    """Write a new function to start from.

    The directory NAME gets its code, a manifest.json and a README.md; `tiergate deploy NAME`
    (python), `tiergate deploy NAME/NAME.wat` (wat), or `make -C NAME` then
    `tiergate deploy NAME/NAME.wasm` (c, js) deploys it as the function NAME."""
    function_id = name.name
    if not FUNCTION_ID.match(function_id):
        raise ClientError(
            f"error: {function_id!r} cannot be a function id: use 1-63 lowercase letters, "
            "digits, '-' or '_', starting with a letter or digit",
            EXIT_CODES["usage"],
        )
    if name.exists() and (not name.is_dir() or any(name.iterdir())):
        raise ClientError(f"error: {name} exists already and is not an empty directory")
    values = {"name": function_id, "path": str(name)}
    steps: list[str] = []
    if lang == "python":
        files = {
            "handler.py": PYTHON_HANDLER.format(**values),
            "manifest.json": _manifest(PYTHON_MANIFEST, function_id),
            "README.md": PYTHON_README.format(**values),
        }
        deploy, data = f"tiergate deploy {name}", '\'{"name": "you"}\''
    elif lang in WASI_MANIFESTS:
        files = project_files(lang, values)
        readme = files.pop("README.md")
        files["manifest.json"] = _manifest(WASI_MANIFESTS[lang], function_id)
        files["README.md"] = readme
        steps = [f"make -C {name}"]
        deploy, data = f"tiergate deploy {name / (function_id + '.wasm')}", '\'{"name": "you"}\''
    else:
        files = {
            f"{function_id}.wat": WAT_MODULE.format(**values),
            "manifest.json": _manifest(WAT_MANIFEST, function_id),
            "README.md": WAT_README.format(**values),
        }
        deploy, data = f"tiergate deploy {name / (function_id + '.wat')}", '\'{"hello": "world"}\''
    try:
        name.mkdir(parents=True, exist_ok=True)
        for file, text in files.items():
            (name / file).write_text(text)
    except OSError as exc:
        raise ClientError(f"error: cannot write {name}: {exc.strerror or exc}") from None
    click.echo(f"created {name}/ ({lang}): {', '.join(files)}")
    for number, step in enumerate([*steps, deploy, f"tiergate invoke {function_id} -d {data}"]):
        click.echo(f"{'next:' if number == 0 else '':6}{step}")
    if lang in WASI_MANIFESTS and (missing := missing_for(lang, name)):
        click.echo(f"warning: {missing}", err=True)


def _manifest(template: Mapping[str, Any], function_id: str) -> str:
    manifest = {**template, "description": str(template["description"]).format(name=function_id)}
    return orjson.dumps(manifest, option=orjson.OPT_INDENT_2).decode() + "\n"


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL.

    For bash, add `eval "$(tiergate completion bash)"` to ~/.bashrc; for zsh, the same with
    zsh to ~/.zshrc; for fish, run
    `tiergate completion fish > ~/.config/fish/completions/tiergate.fish`. It is click's:
    `_TIERGATE_COMPLETE=bash_source tiergate` prints the same."""
    root = ctx.find_root()
    complete = get_completion_class(shell)
    assert complete is not None  # click knows the three SHELLS
    script = complete(root.command, {}, root.info_name or "tiergate", COMPLETE_VAR).source()
    click.echo(script, nl=False)  # as click prints it for _TIERGATE_COMPLETE


COMMANDS = (new, completion)
