"""The loader's circuit breaker: a function whose code cannot be loaded fails fast with 503
``circuit_open`` and ``Retry-After``; others are unaffected; it recovers when storage does."""

from __future__ import annotations

import shutil

from conftest import assert_problem, deploy_wat, metric, unique


def test_breaker_opens_and_recovers(tiergate_factory):
    server = tiergate_factory({"TIERGATE_BREAKER_FAIL_MAX": "2", "TIERGATE_BREAKER_RESET_S": "2"})
    broken, healthy = unique("broken"), unique("healthy")
    with server.client() as api:
        deploy_wat(api, broken)
        deploy_wat(api, healthy)
    server.stop()
    code_dir = server.data_dir / "objects" / "code" / "default" / broken
    hidden = server.data_dir / "hidden"
    shutil.move(code_dir, hidden)
    server.start()
    with server.client() as api:
        for _ in range(2):
            assert_problem(api.post(f"/invoke/{broken}", json=1), 503, "storage_unavailable")
        opened = api.post(f"/invoke/{broken}", json=1)
        problem = assert_problem(opened, 503, "circuit_open")
        assert 1 <= int(opened.headers["retry-after"]) <= 2
        assert problem["function_id"] == broken
        assert api.post(f"/invoke/{healthy}", json=1).json()["output"] == 1
        metrics = api.get("/metrics").text
        assert metric(metrics, "tiergate_circuit_state", tenant="default", function=broken) == 2
        shutil.move(hidden, code_dir)
        import time

        time.sleep(2.1)
        assert api.post(f"/invoke/{broken}", json="back").json()["output"] == "back"
