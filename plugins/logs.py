"""The log caps every runtime and the gateway apply: each entry at most ``ENTRY_BYTES`` of text,
each execution at most ``EXECUTION_BYTES``, counting ``ENTRY_OVERHEAD`` more per entry (what keeping
it costs beside its text: a million one-character lines cannot make a huge record, and the number
of entries is bounded too); what does not fit is dropped and counted, and one last entry says how
much. Workers apply them as they capture (so what crosses a pipe stays small) with a budget that
keeps room for their summary entry; the gateway applies them again to whatever a runtime returns,
so a runtime cannot get past them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

ENTRY_BYTES = 8 * 1024
EXECUTION_BYTES = 1024 * 1024
ENTRY_OVERHEAD = 128
SUMMARY_BYTES = 256
_MARK = " … [entry cut at 8 KiB]"


class LogBudget:
    """What is left of one execution's log allowance."""

    __slots__ = ("dropped_bytes", "dropped_entries", "left")

    def __init__(self, total_bytes: int = EXECUTION_BYTES) -> None:
        self.left = total_bytes
        self.dropped_bytes = 0
        self.dropped_entries = 0

    @classmethod
    def for_worker(cls) -> LogBudget:
        """A worker's budget: it keeps ``SUMMARY_BYTES`` free, so that the gateway, which caps
        the same entries again, keeps the worker's summary entry too."""
        return cls(EXECUTION_BYTES - SUMMARY_BYTES)

    def fit(self, message: str) -> str | None:
        """``message`` cut to the per-entry cap, or None when the execution's allowance is spent
        (the message is then counted as dropped)."""
        size = len(message)  # characters first: a cheap bound that is exact for ASCII
        if size > ENTRY_BYTES // 4 or size * 4 + ENTRY_OVERHEAD > self.left:
            data = message.encode("utf-8", "surrogatepass")
            size = len(data)
            if size > ENTRY_BYTES:
                message = data[: ENTRY_BYTES - len(_MARK.encode())].decode("utf-8", "ignore")
                message += _MARK
                size = len(message.encode("utf-8", "surrogatepass"))
        cost = size + ENTRY_OVERHEAD
        if cost > self.left:
            self.left = 0
            self.dropped_bytes += size
            self.dropped_entries += 1
            return None
        self.left -= cost
        return message

    def drop(self, size: int) -> None:
        """Count ``size`` bytes dropped unread (a stream cut at the cap) as one more entry."""
        self.dropped_bytes += size
        self.dropped_entries += 1

    def summary(self) -> str | None:
        """The text of the last entry when something was dropped."""
        if not self.dropped_entries:
            return None
        return (
            f"dropped {self.dropped_bytes} bytes of logs in {self.dropped_entries} entries "
            f"(logs are capped at {EXECUTION_BYTES // 1024} KiB per execution)"
        )


def cap_entries(entries: Iterable[list[Any]], budget: LogBudget | None = None) -> list[list[Any]]:
    """Worker-side: ``[ts, stream, message, …]`` entries within the caps, plus the summary entry."""
    budget = budget or LogBudget.for_worker()
    kept = []
    for entry in entries:
        message = budget.fit(entry[2])
        if message is not None:
            kept.append([entry[0], entry[1], message, *entry[3:]])
    summary = budget.summary()
    if summary:
        kept.append([time.time(), "log", summary, "WARNING"])
    return kept
