"""A wasm call that goes away (cancelled, or its client disconnected) stops running in its
worker at once: its instance is interrupted, so the worker's next call does not wait behind code
nobody waits for, and a tenant cannot keep CPU busy past the admission it was counted in."""

from __future__ import annotations

import time

import pytest
from conftest import deploy_wat, eventually, unique

from plugins.testing import TiergateServer


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    server = TiergateServer(
        tmp_path_factory.mktemp("cancel"),
        {"TIERGATE_WASM_INLINE": "false", "TIERGATE_WASM_WORKERS": "1"},
    ).start()
    yield server
    server.stop()


@pytest.mark.parametrize("how", ["cancel", "disconnect"])
def test_a_call_that_goes_away_stops_running(gate, how):
    with gate.client() as api:
        spinner, echo = unique("spin"), unique("echo")
        deploy_wat(api, spinner, "loop.wat", limits={"timeout_ms": 60_000})
        deploy_wat(api, echo)
        assert api.post(f"/invoke/{echo}", json=0).status_code == 200  # the worker is up
        if how == "cancel":
            spinning = api.post(f"/invoke/{spinner}", json=1,
                                headers={"Prefer": "respond-async"}).json()["execution_id"]
            eventually(lambda: api.get(f"/executions/{spinning}").json()["status"] == "running")
            assert api.delete(f"/executions/{spinning}").json()["status"] == "cancelled"
        else:
            import httpx

            with gate.client() as impatient, pytest.raises(httpx.ReadTimeout):
                impatient.post(f"/invoke/{spinner}", json=1, timeout=1.0)
        answer = api.post(f"/invoke/{echo}?timeout_ms=10000", json={"after": how})
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"] == {"after": how}


def test_a_call_queued_behind_a_slow_one_ends_at_its_own_deadline(gate):
    """With every worker the pool may have (4 per configured one) running another tenant's long
    call, a call does not wait past its deadline for its turn: it answers 504 then, and is
    dropped from the worker's queue."""
    with gate.client() as api:
        spinner, echo = unique("spin"), unique("echo")
        deploy_wat(api, spinner, "loop.wat", limits={"timeout_ms": 4000})
        deploy_wat(api, echo)
        assert api.post(f"/invoke/{echo}", json=0).status_code == 200  # loaded, and quick
        spinning = [api.post(f"/invoke/{spinner}", json=1, headers={"Prefer": "respond-async"})
                    .json()["execution_id"] for _ in range(4)]
        for execution in spinning:
            eventually(lambda e=execution: api.get(f"/executions/{e}").json()["status"]
                       == "running")
        time.sleep(0.5)  # "running" comes as a module loads: let each reach its worker
        answer = api.post(f"/invoke/{echo}?timeout_ms=1000", json="late")
        assert answer.status_code == 504, answer.text
        assert "waited behind other calls" in answer.json()["detail"]
        for execution in spinning:  # (async work that times out is tried again: end it)
            assert api.delete(f"/executions/{execution}").status_code == 200
        assert api.post(f"/invoke/{echo}", json="then").json()["output"] == "then"
