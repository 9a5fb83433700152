"""Compare this checkout's gateway with another commit's, alternately, in one run.

    .venv/bin/python bench/compare.py REF [--function echo] [--pairs 5] [--seconds 5]
    .venv/bin/python bench/compare.py . --ref-env TIERGATE_WASM_INLINE=0 --serve-arg=--workers=auto

Builds REF in a temporary git worktree with a virtual environment of its own (its dependencies from
the same package index), serves both gateways at once on free ports, deploys one of ``make
bench``'s functions to each (the core-ABI echo unless ``--function`` names another), and runs ``wrk
-c64`` against them in turn (REF, this checkout, REF, …), reading CPU per request from ``/proc`` as
``run.py`` does. Prints each pair and the medians; the ratio is this checkout over REF (above 1.00:
faster). REF ``.`` is this checkout again, for comparing settings (``--ref-env``, ``--env``) with
the same code; ``--serve-arg`` goes to both ``serve`` commands.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import CASES, Target, all_serving, closed_loop, deploy, gateway_mains, wrk  # noqa: E402

from plugins.testing import TiergateServer  # noqa: E402


def build(ref: str, where: Path) -> str:
    """REF checked out and installed; the path of its ``tiergate``."""
    checkout = where / "src"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(checkout), ref],
        check=True,
    )
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-e", str(checkout)], check=True)
    return str(venv / "bin" / "tiergate")


def _env(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref")
    functions = {fn: path for _, fn, path in CASES}
    parser.add_argument("--function", choices=sorted(functions), default="echo")
    parser.add_argument("--ref-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--serve-arg", action="append", default=[], metavar="ARG")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        try:
            program = None if args.ref == "." else build(args.ref, where)
            serve_args = tuple(args.serve_arg)
            old = TiergateServer(
                where / "old-data", _env(args.ref_env), serve_args, program=program
            ).start()
            new = TiergateServer(where / "new-data", _env(args.env), serve_args).start()
            try:
                targets = {}
                for label, server in (("ref", old), ("this", new)):
                    all_serving(server)
                    deploy(server, args.function, functions[args.function])
                    targets[label] = Target(
                        f"{server.url}/invoke/{args.function}",
                        server.admin_key,
                        gateway_mains(server),
                    )
                    wrk(targets[label], 2)
                pairs = []
                for _ in range(args.pairs):
                    pair = {label: closed_loop(t, args.seconds) for label, t in targets.items()}
                    pairs.append(pair)
                    print(
                        f"ref {pair['ref'].rps:7.0f} req/s {pair['ref'].main_us:5.0f} us/req "
                        f"(loop {pair['ref'].loop_us:4.0f})   "
                        f"this {pair['this'].rps:7.0f} req/s {pair['this'].main_us:5.0f} us/req "
                        f"(loop {pair['this'].loop_us:4.0f})  "
                        f"ratio {pair['this'].rps / pair['ref'].rps:.2f}",
                        flush=True,
                    )
            finally:
                old.stop()
                new.stop()
        finally:
            if args.ref != ".":
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where / "src")],
                    check=False,
                )
    ratio = statistics.median(p["this"].rps / p["ref"].rps for p in pairs)
    process = {k: statistics.median(p[k].main_us for p in pairs) for k in ("ref", "this")}
    loop = {k: statistics.median(p[k].loop_us for p in pairs) for k in ("ref", "this")}
    workers = {k: statistics.median(p[k].workers_us for p in pairs) for k in ("ref", "this")}
    print(
        f"\nmedian of {args.pairs} pairs: req/s this/ref {ratio:.2f}; gateway process "
        f"{process['ref']:.0f} -> {process['this']:.0f} us/req, its event-loop thread "
        f"{loop['ref']:.0f} -> {loop['this']:.0f}; workers "
        f"{workers['ref']:.0f} -> {workers['this']:.0f} us/req"
    )


if __name__ == "__main__":
    main()
