"""Finished execution records are purged after the retention period."""

from __future__ import annotations

import time

from conftest import deploy_wat, unique


def test_records_are_purged_after_retention(tiergate_factory):
    server = tiergate_factory(
        {"TIERGATE_RETENTION_DAYS": str(1 / 86400), "TIERGATE_RETENTION_SWEEP_S": "0.3"}
    )
    with server.client() as api:
        fn = unique("short")
        deploy_wat(api, fn)
        old = api.post(f"/invoke/{fn}", json=1).json()["execution_id"]
        assert api.get(f"/executions/{old}").status_code == 200
        deadline = time.monotonic() + 10
        while api.get(f"/executions/{old}").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert api.get(f"/executions/{old}").status_code == 404
        assert api.get(f"/functions/{fn}/logs").json()["executions"] == []


def test_finished_graph_runs_and_deleted_graphs_are_purged_after_retention(tiergate_factory):
    server = tiergate_factory(
        {"TIERGATE_RETENTION_DAYS": str(1 / 86400), "TIERGATE_RETENTION_SWEEP_S": "0.3"}
    )
    with server.client() as api:
        fn = unique("short")
        deploy_wat(api, fn)
        graph = {"id": "brief", "nodes": {"only": {"function": fn}}}
        assert api.post("/graphs", json=graph).status_code == 201
        done = api.post("/graphs/brief/runs", json=1).json()
        assert done["status"] == "completed"
        url = f"/graphs/brief/runs/{done['run_id']}"
        deadline = time.monotonic() + 10
        while api.get(url).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert api.get(url).json()["code"] == "run_not_found"
        assert api.post("/graphs", json=graph).json()["version"] == 2  # the graph itself stays
        assert api.delete("/graphs/brief").status_code == 204
        assert api.post("/graphs", json=graph).json()["version"] == 1
