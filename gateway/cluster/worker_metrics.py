"""Metrics of ``serve --workers N``: a scrape reaches whichever worker the kernel picks, so each
worker writes its metrics under the data dir every second and ``/metrics`` answers with those of
all live workers, every sample labelled ``worker="<index>"`` (sum them in PromQL:
``sum by (function) (rate(tiergate_invocations_total[1m]))``). A restarted worker keeps its index,
so its counters read as a counter reset, as Prometheus expects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gateway.metrics import Metrics
from gateway.periodic import Periodic
from storage.files import write_atomically

WRITE_EVERY_S = 1.0
STALE_S = 10.0  # a file not rewritten for this long belongs to a worker that is gone


class WorkerMetrics:
    def __init__(self, metrics: Metrics, directory: Path, worker: int) -> None:
        self._metrics = metrics
        self._directory = directory
        self._worker = str(worker)
        self._background = Periodic("worker metrics")

    def start(self) -> None:
        self._background.every(WRITE_EVERY_S, self._write, now=True)

    async def close(self) -> None:
        await self._background.close()

    async def render(self) -> bytes:
        """This worker's metrics as they are now, and the others' as last written."""
        texts = {self._worker: self._metrics.render().decode()}
        texts.update(await asyncio.to_thread(self._read_others))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Labelled(texts))
        return generate_latest(registry)

    async def _write(self) -> None:
        data = self._metrics.render()
        path = self._directory / f"{self._worker}.prom"
        await asyncio.to_thread(write_atomically, path, data, durable=False)

    def _read_others(self) -> dict[str, str]:
        found = {}
        cutoff = time.time() - STALE_S
        for path in self._directory.glob("*.prom"):
            if path.stem == self._worker:
                continue
            try:
                if path.stat().st_mtime >= cutoff:
                    found[path.stem] = path.read_text()
            except OSError:  # replaced or removed meanwhile
                continue
        return found


class _Labelled:
    """Families from several workers' texts, merged by name, each sample labelled by worker."""

    def __init__(self, texts: dict[str, str]) -> None:
        self._texts = texts

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for worker, text in sorted(self._texts.items()):
            for family in text_string_to_metric_families(text):
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(
                        family.name, family.documentation, family.type
                    )
                into.samples.extend(
                    Sample(s.name, {**s.labels, "worker": worker}, s.value, s.timestamp, s.exemplar)
                    for s in family.samples
                )
        yield from merged.values()
