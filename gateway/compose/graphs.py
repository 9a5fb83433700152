"""Graph definitions (API.md, "Dependency graphs"): named nodes, each a function with the nodes it
``needs`` and a mapping that builds its input, checked at deploy and kept as numbered versions.

Everything a run will rely on is refused at deploy as 400 ``invalid_graph`` naming the node and
field: a cycle (its path written out), a ``needs`` name that is no node, a function the tenant does
not have, an expression that does not compile. A tenant writes these documents, so they are bounded
too: at most ``max_nodes`` nodes and ``MAX_EDGES`` needs in all, names and descriptions of a
bounded length, and at most ``max_graphs`` graphs per tenant; only the newest ``KEEP_VERSIONS``
versions of a graph are kept.

Storage, in the KV: a head record per graph, ``graph/<tenant>/<id>``, holding its latest version
and a ``uid`` made when the graph was first deployed, and one record per version,
``graphv/<tenant>/<id>/<uid>/<version>``. A run names the uid and version it started with, so a
graph deleted and deployed again under the same id (versions start again at 1) can never be
mistaken for the one an older run was started from; deleting a graph removes its head, and its
versions stay for the runs still using them until the retention sweep (``purge``) removes them.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from cachetools import LRUCache

from gateway.errors import (
    REPORTED,
    GraphNotFound,
    InvalidGraph,
    InvalidManifest,
    QuotaExceeded,
)
from gateway.expressions import Mapping, compile_mapping
from gateway.functions.composition import FUNCTION_ID
from gateway.functions.registry import FunctionRef, Registry
from gateway.ids import new_id
from storage.kv.base import KV

NODE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
RESERVED = frozenset({"input"})  # the run input's name in every node's mapping scope
MAX_DESCRIPTION = 1024
KEEP_VERSIONS = 100
MAX_EDGES = 10_000  # ``needs`` entries of all nodes together: each run step walks them all
FIELDS = frozenset({"id", "description", "nodes", "output"})
NODE_FIELDS = frozenset({"function", "needs", "input"})


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    function: FunctionRef
    needs: tuple[str, ...]
    input: Mapping


@dataclass(frozen=True, slots=True)
class Graph:
    """One version of a graph, compiled: ``nodes`` in an order where every node comes after the
    nodes it needs."""

    tenant: str
    id: str
    uid: str
    version: int
    nodes: dict[str, Node]
    output: Mapping
    sinks: tuple[str, ...]
    """The nodes nothing needs: the run's default output is their outputs, by name."""
    document: dict[str, Any]
    created_at: float
    created_by: str

    def dependents(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {name: [] for name in self.nodes}
        for node in self.nodes.values():
            for need in node.needs:
                found[need].append(node.name)
        return found


@dataclass(slots=True)
class GraphHead:
    id: str
    tenant: str
    uid: str
    latest: int
    created_at: float
    updated_at: float
    description: str | None = None
    versions: list[int] = field(default_factory=list)
    next_version: int = 1


def parse_graph(
    document: Any, *, max_nodes: int
) -> tuple[str, dict[str, Node], Mapping, tuple[str, ...]]:
    """The id, the nodes in dependency order, the output mapping and the sinks of a graph
    document; ``InvalidGraph`` naming what is wrong. Functions are checked by ``Graphs.deploy``
    (that needs the tenant's registry)."""
    if not isinstance(document, dict):
        raise InvalidGraph('a graph is a JSON object: {"id": ..., "nodes": {...}}')
    unknown = sorted(set(document) - FIELDS)
    if unknown:
        raise InvalidGraph(
            f"unknown field(s) {', '.join(unknown)} (a graph has id, description, nodes, output)"
        )
    graph_id = document.get("id")
    if not isinstance(graph_id, str) or not FUNCTION_ID.match(graph_id):
        raise InvalidGraph(
            f"id: invalid graph id {graph_id!r}: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit",
            field="id",
        )
    description = document.get("description")
    if description is not None and (
        not isinstance(description, str) or len(description) > MAX_DESCRIPTION
    ):
        raise InvalidGraph(
            f"description: a string of at most {MAX_DESCRIPTION} characters", field="description"
        )
    raw_nodes = document.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        raise InvalidGraph("nodes: an object of at least one node, by name", field="nodes")
    if len(raw_nodes) > max_nodes:
        raise InvalidGraph(
            f"nodes: {len(raw_nodes)} nodes; a graph has at most {max_nodes} "
            "(TIERGATE_MAX_GRAPH_NODES)",
            field="nodes",
        )
    nodes = {name: _node(name, spec, raw_nodes) for name, spec in raw_nodes.items()}
    edges = sum(len(node.needs) for node in nodes.values())
    if edges > MAX_EDGES:
        raise InvalidGraph(
            f"nodes: {edges} needs in all; a graph has at most {MAX_EDGES}", field="nodes"
        )
    ordered = _in_dependency_order(nodes)
    output = _mapping(document.get("output"), "output")
    needed = {need for node in nodes.values() for need in node.needs}
    sinks = tuple(name for name in ordered if name not in needed)
    return graph_id, ordered, output, sinks


def _node(name: str, spec: Any, all_nodes: dict[str, Any]) -> Node:
    where = f"nodes.{name}"
    if not NODE_NAME.match(name) or name in RESERVED:
        raise InvalidGraph(
            f"{where}: node names are 1-64 letters, digits or '_', starting with a letter or '_' "
            "(and not 'input', which names the run input)",
            field=where,
        )
    if not isinstance(spec, dict):
        raise InvalidGraph(
            f'{where}: a node is an object: {{"function": "id", "needs": [...], "input": ...}}',
            field=where,
        )
    unknown = sorted(set(spec) - NODE_FIELDS)
    if unknown:
        raise InvalidGraph(
            f"{where}: unknown field(s) {', '.join(unknown)} (a node has function, needs, input)",
            field=where,
        )
    function = spec.get("function")
    if not isinstance(function, str):
        raise InvalidGraph(
            f'{where}.function: a function id, "id" or "id@version"', field=f"{where}.function"
        )
    try:
        ref = FunctionRef.parse(function)
    except REPORTED as exc:
        raise InvalidGraph(f"{where}.function: {exc}", field=f"{where}.function") from None
    if ref.alias is not None:
        raise InvalidGraph(
            f'{where}.function: a node names "id" or "id@version", not an alias',
            field=f"{where}.function",
        )
    needs = spec.get("needs", [])
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise InvalidGraph(f"{where}.needs: a list of node names", field=f"{where}.needs")
    for need in needs:
        if need not in all_nodes:
            raise InvalidGraph(
                f"{where}.needs: unknown node {need!r}", field=f"{where}.needs", node=need
            )
        if need == name:
            raise InvalidGraph(
                f"{where}.needs: a node cannot need itself (cycle: {name} → {name})",
                field=f"{where}.needs",
            )
    if len(set(needs)) != len(needs):
        raise InvalidGraph(f"{where}.needs: a name appears twice", field=f"{where}.needs")
    return Node(name, ref, tuple(needs), _mapping(spec.get("input"), f"{where}.input"))


def _mapping(value: Any, where: str) -> Mapping:
    try:
        return compile_mapping(value, where)
    except InvalidManifest as exc:
        raise InvalidGraph(exc.detail, field=where) from None


def _in_dependency_order(nodes: dict[str, Node]) -> dict[str, Node]:
    """Kahn's order, stable in the document's order; a cycle is named by its path."""
    waiting = {name: len(node.needs) for name, node in nodes.items()}
    dependents: dict[str, list[str]] = {name: [] for name in nodes}
    for node in nodes.values():
        for need in node.needs:
            dependents[need].append(node.name)
    ready = [name for name, count in waiting.items() if count == 0]
    ordered: dict[str, Node] = {}
    while ready:
        name = ready.pop(0)
        ordered[name] = nodes[name]
        for dependent in dependents[name]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
    if len(ordered) < len(nodes):
        path = _cycle({n: nodes[n] for n in nodes if n not in ordered})
        raise InvalidGraph(f"nodes: a cycle: {' → '.join(path)}", field="nodes", cycle=path)
    return ordered


def _cycle(left: dict[str, Node]) -> list[str]:
    """A cycle among nodes that all lie on or behind one: walk needs until a name repeats."""
    name = next(iter(left))
    seen: list[str] = []
    while name not in seen:
        seen.append(name)
        name = next(need for need in left[name].needs if need in left)
    cycle = seen[seen.index(name) :]
    cycle.reverse()  # written in the order things run: a needs c → c runs first
    order = list(left)
    first = min(range(len(cycle)), key=lambda i: order.index(cycle[i]))
    cycle = cycle[first:] + cycle[:first]  # from the node the document names first
    return [*cycle, cycle[0]]


class Graphs:
    def __init__(self, kv: KV, registry: Registry, *, max_nodes: int, max_graphs: int) -> None:
        self._kv = kv
        self._registry = registry
        self._max_nodes = max_nodes
        self._max_graphs = max_graphs
        self._compiled: LRUCache[tuple[str, str, str, int], Graph] = LRUCache(maxsize=256)

    async def deploy(self, tenant: str, document: Any, principal: str) -> Graph:
        """Check ``document`` and store it as the graph's next version: the number is reserved
        first, the version written, then ``latest`` moved, each step a compare-and-set, so two
        deploys at once on two instances both land, as two versions."""
        graph_id, nodes, _, _ = parse_graph(document, max_nodes=self._max_nodes)
        await self._check_functions(tenant, nodes)
        now = time.time()

        def reserve(head: GraphHead | None) -> GraphHead:
            if head is None:
                return GraphHead(graph_id, tenant, new_id(), 0, now, now, next_version=2)
            head.next_version += 1
            return head

        head = await self._mutate(tenant, graph_id, reserve, new=True)
        version = head.next_version - 1
        stored = {"document": document, "created_at": now, "created_by": principal}
        key = _version_key(tenant, graph_id, head.uid, version)
        await self._kv.set(key, orjson.dumps(stored))

        def publish(current: GraphHead | None) -> GraphHead:
            if current is None or current.uid != head.uid:
                raise GraphNotFound(f"graph {graph_id!r} was deleted meanwhile", graph_id=graph_id)
            current.versions = sorted({*current.versions, version})[-KEEP_VERSIONS:]
            if version > current.latest:
                current.latest, current.updated_at = version, now
                current.description = document.get("description")
            return current

        published = await self._mutate(tenant, graph_id, publish)
        for old in set(head.versions) - set(published.versions):
            await self._kv.delete(_version_key(tenant, graph_id, head.uid, old))
        return await self.version(tenant, graph_id, head.uid, version)

    async def _mutate(
        self,
        tenant: str,
        graph_id: str,
        change: Callable[[GraphHead | None], GraphHead],
        *,
        new: bool = False,
    ) -> GraphHead:
        key = _head_key(tenant, graph_id)
        while True:
            raw = await self._kv.get(key)
            if raw is None and new:
                await self._check_quota(tenant)
            head = change(None if raw is None else GraphHead(**orjson.loads(raw)))
            if await self._kv.compare_and_set(key, raw, orjson.dumps(asdict(head))):
                return head

    async def head(self, tenant: str, graph_id: str) -> GraphHead:
        raw = await self._kv.get(_head_key(tenant, graph_id))
        if raw is None or not orjson.loads(raw)["latest"]:  # absent, or first deploy unfinished
            raise GraphNotFound(f"graph {graph_id!r} not found", graph_id=graph_id)
        return GraphHead(**orjson.loads(raw))

    async def latest(self, tenant: str, graph_id: str, version: int | None = None) -> Graph:
        head = await self.head(tenant, graph_id)
        wanted = head.latest if version is None else version
        graph = await self.find(tenant, graph_id, head.uid, wanted)
        if graph is None:
            raise GraphNotFound(
                f"graph {graph_id!r} has no version {wanted}", graph_id=graph_id, version=wanted
            )
        return graph

    async def version(self, tenant: str, graph_id: str, uid: str, version: int) -> Graph:
        graph = await self.find(tenant, graph_id, uid, version)
        if graph is None:
            raise GraphNotFound(f"graph {graph_id!r} version {version} is gone", graph_id=graph_id)
        return graph

    async def find(self, tenant: str, graph_id: str, uid: str, version: int) -> Graph | None:
        """A version, compiled once per process (versions never change)."""
        key = (tenant, graph_id, uid, version)
        graph = self._compiled.get(key)
        if graph is not None:
            return graph
        raw = await self._kv.get(_version_key(tenant, graph_id, uid, version))
        if raw is None:
            return None
        stored = orjson.loads(raw)
        document = stored["document"]
        _, nodes, output, sinks = parse_graph(
            document, max_nodes=max(self._max_nodes, len(document["nodes"]))
        )
        graph = Graph(
            tenant,
            graph_id,
            uid,
            version,
            nodes,
            output,
            sinks,
            document,
            stored["created_at"],
            stored["created_by"],
        )
        self._compiled[key] = graph
        return graph

    async def list(self, tenant: str) -> list[GraphHead]:
        heads = [
            GraphHead(**orjson.loads(raw)) async for _, raw in self._kv.scan(f"graph/{tenant}/")
        ]
        return [head for head in heads if head.latest]

    async def delete(self, tenant: str, graph_id: str) -> None:
        """The graph leaves the listing and takes no new runs; runs already started go on with
        their version, which the retention sweep removes later."""
        await self.head(tenant, graph_id)
        await self._kv.delete(_head_key(tenant, graph_id))

    async def purge(self, older_than: float) -> None:
        """Drop the versions no head names any more (their graph was deleted, or deployed again
        from scratch) once they are older than ``older_than``."""
        current = {(head["tenant"], head["id"], head["uid"]) async for head in _heads(self._kv)}
        stale = []
        async for key, raw in self._kv.scan("graphv/"):
            _, tenant, graph_id, uid, _ = key.split("/")
            if (tenant, graph_id, uid) not in current and orjson.loads(raw)[
                "created_at"
            ] < older_than:
                stale.append(key)
        for key in stale:
            await self._kv.delete(key)

    async def _check_functions(self, tenant: str, nodes: dict[str, Node]) -> None:
        for node in nodes.values():
            ref = node.function
            try:
                if ref.version is None:
                    await self._registry.get_function(tenant, ref.function_id)
                else:
                    await self._registry.get_version(tenant, ref.function_id, ref.version)
            except REPORTED as exc:
                if getattr(exc, "status", 0) != 404:
                    raise
                where = f"nodes.{node.name}.function"
                raise InvalidGraph(f"{where}: {exc}", field=where) from None

    async def _check_quota(self, tenant: str) -> None:
        count = 0
        async for _ in self._kv.scan(f"graph/{tenant}/"):
            count += 1
        if count >= self._max_graphs:
            raise QuotaExceeded(
                f"tenant {tenant!r} has {count} graphs, the most allowed "
                "(TIERGATE_MAX_GRAPHS_PER_TENANT); delete one first",
                limit=self._max_graphs,
            )


async def _heads(kv: KV) -> AsyncIterator[dict[str, Any]]:
    async for _, raw in kv.scan("graph/"):
        yield orjson.loads(raw)


def _head_key(tenant: str, graph_id: str) -> str:
    return f"graph/{tenant}/{graph_id}"


def _version_key(tenant: str, graph_id: str, uid: str, version: int) -> str:
    return f"graphv/{tenant}/{graph_id}/{uid}/{version:010d}"
