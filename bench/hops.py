"""How many calls into tiergate's own code one warm invoke makes, and in how many modules.

Serves the app in this process (aiohttp's test server, so the gateway and the client share one
thread), deploys the core-ABI echo, warms it, then traces ``POST /invoke/echo`` from the
request to the answer with ``sys.setprofile``: every Python call whose code lives in
``gateway/``, ``tiers/``, ``plugins/`` or ``storage/`` counts (the wasm call itself runs in a
worker process; an ``async`` function counts once more each time it resumes after an
``await``). Background work (the record writer, heartbeats) may run inside a traced window, so
the invoke is traced ``TRACES`` times and the trace with the fewest calls is the invoke's own
path. Two paths are traced: the call of the function run in a worker process (``worker``: the
wasm call itself is not counted), and run in the gateway's own process, as a quick core-ABI
function is (``inline``: the wasm call is counted). ``docs/architecture.md`` quotes the figures;
``--modules`` lists where the calls go.

    .venv/bin/python bench/hops.py [--modules]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = tuple(str(ROOT / name) + "/" for name in ("gateway", "tiers", "plugins", "storage"))
ADMIN_KEY = "tg_hops_admin_key_0123456789abcdefghijklmnopqrstuvwxyz"
TRACES = 7


async def trace_one_invoke(inline: bool) -> collections.Counter[tuple[str, str]]:
    from aiohttp.test_utils import TestClient, TestServer

    from gateway.http.app import create_app
    from gateway.settings import Settings

    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            data_dir=Path(data_dir), admin_key=ADMIN_KEY, wasm_workers=1, wasm_inline=inline
        )
        async with TestClient(TestServer(create_app(settings))) as client:
            headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
            code = (ROOT / "examples" / "functions" / "echo.wat").read_text()
            deployed = await client.post(
                "/deploy", json={"id": "echo", "runtime": "wasm", "code": code}, headers=headers
            )
            assert deployed.status == 201, await deployed.text()
            for _ in range(20):  # warm: loaded, cached, the worker quick
                await (await client.post("/invoke/echo", json={"n": 1}, headers=headers)).read()
            traces = [await _traced(client, headers) for _ in range(TRACES)]
            return min(traces, key=lambda calls: sum(calls.values()))


async def _traced(client: Any, headers: dict[str, str]) -> collections.Counter[tuple[str, str]]:
    calls: collections.Counter[tuple[str, str]] = collections.Counter()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(PACKAGES):
            where = frame.f_code.co_filename[len(str(ROOT)) + 1 :]
            calls[where, frame.f_code.co_name] += 1

    sys.setprofile(profile)
    try:
        answer = await client.post("/invoke/echo", json={"n": 1}, headers=headers)
        await answer.read()
    finally:
        sys.setprofile(None)
    assert answer.status == 200
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="list calls per module")
    args = parser.parse_args()
    for path, inline in (("worker", False), ("inline", True)):
        calls = asyncio.run(trace_one_invoke(inline))
        modules = collections.Counter[str]()
        for (module, _), count in calls.items():
            modules[module] += count
        total = sum(calls.values())
        print(f"one warm invoke, {path}: {total} calls into repo code, {len(modules)} modules")
        if args.modules:
            for module, count in modules.most_common():
                print(f"{count:5d}  {module}")
                for (where, name), n in sorted(calls.items(), key=lambda kv: -kv[1]):
                    if where == module:
                        print(f"        {n:3d}  {name}")


if __name__ == "__main__":
    main()
