"""Worker processes for runtimes: a framed protocol over pipes, the parent-side handle, and the
child-side loop. The wasm and python runtimes use them; so may any runtime plugin.

Running code in processes keeps the gateway's event loop and GIL free: a round trip over a pipe
costs a few microseconds of loop time, while the call itself runs in parallel on another core.
"""

from .budget import WorkerBudget
from .framing import Frame, FrameReader, encode
from .pool import POOL_SCHEMA, FunctionPool, PoolOptions
from .process import Answerer, LogSink, WorkerDied, WorkerProcess, describe_exit, read_capped

__all__ = [
    "POOL_SCHEMA",
    "Answerer",
    "Frame",
    "FrameReader",
    "FunctionPool",
    "LogSink",
    "PoolOptions",
    "WorkerBudget",
    "WorkerDied",
    "WorkerProcess",
    "describe_exit",
    "encode",
    "read_capped",
]
