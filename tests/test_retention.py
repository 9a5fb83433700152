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
