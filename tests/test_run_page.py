"""The graph run page (/ui/run?graph=ID&run=RUN_ID) in a real headless Chromium (Debian's, driven by
Playwright): each node drawn with its status, an edge for each need, a node's execution in the side
panel, hostile outputs shown as text, a running run refreshed in place until it ends, and a key
without role deploy (signed in on the reviewer page) still shown the nodes, without edges, and why.
All under the page's Content-Security-Policy, whose headers are checked here too."""

from __future__ import annotations

import re
import time

import pytest
import test_review_page
from conftest import eventually, example, unique

CHROMIUM = test_review_page.CHROMIUM
browser = test_review_page.browser  # the same fixture: one Chromium for this module
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")

ECHO = "def handler(event, context):\n    return event\n"
HOSTILE = "<img src=x onerror=alert(1)>"
FAILS = f"def handler(event, context):\n    raise RuntimeError('out of stock {HOSTILE}')\n"
NO_RETRY = {"attempts": 0}


def deploy(api, code: str = ECHO, prefix: str = "rp-echo") -> str:
    fn = unique(prefix)
    body = {"id": fn, "runtime": "python", "code": code, "retry": NO_RETRY}
    answer = api.post("/deploy", json=body)
    assert answer.status_code == 201, answer.text
    return fn


def deploy_graph(api, nodes: dict) -> str:
    gid = unique("rp-graph")
    answer = api.post("/graphs", json={"id": gid, "nodes": nodes})
    assert answer.status_code == 201, answer.text
    return gid


def open_page(browser, server, gid: str, run_id: str, key: str | None):
    """A new tab on the run page, signed in with ``key`` (None: the tab is signed in already);
    ``page.refused`` collects what the Content-Security-Policy blocked and ``page.dialogs`` any
    alert (both must stay empty), ``page.polls`` the run's reads."""
    page = browser.new_page()
    page.refused, page.dialogs, page.polls = [], [], []
    page.on(
        "console", lambda m: "Content Security Policy" in m.text and page.refused.append(m.text)
    )
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: f"/runs/{run_id}" in r.url and page.polls.append(time.monotonic()))
    page.goto(f"{server.url}/ui/run?graph={gid}&run={run_id}")
    if key is not None:
        page.fill("#key", key)
        page.click("#signin button")
    return page


@pytest.fixture(scope="module")
def branches(tiergate_server):
    """A run that failed on one branch: stock failed, so ship and label (which needs ship and
    invoice) were skipped; price and invoice completed, their outputs carrying hostile text."""
    with tiergate_server.client() as api:
        echo, fails = deploy(api), deploy(api, FAILS, "rp-fails")
        needs = {
            "stock": [],
            "ship": ["stock"],
            "price": [],
            "invoice": ["price"],
            "label": ["ship", "invoice"],
        }
        nodes = {
            name: {"function": fails if name == "stock" else echo, "needs": wanted}
            for name, wanted in needs.items()
        }
        nodes["invoice"]["input"] = {"price": "price", "note": "input.note"}
        gid = deploy_graph(api, nodes)
        answer = api.post(f"/graphs/{gid}/runs", json={"note": HOSTILE})
        assert answer.status_code == 200, answer.text
        body = answer.json()
    statuses = {name: node["status"] for name, node in body["nodes"].items()}
    assert statuses == {
        "stock": "failed",
        "ship": "skipped",
        "price": "completed",
        "invoice": "completed",
        "label": "skipped",
    }, body
    return gid, body, needs


@needs_chromium
def test_a_run_is_drawn_with_its_nodes_edges_and_executions(browser, tiergate_server, branches):
    gid, body, needs = branches
    page = open_page(browser, tiergate_server, gid, body["run_id"], tiergate_server.admin_key)
    page.wait_for_selector("#run:not([hidden]) g[data-node='label']")
    drawn = page.eval_on_selector_all(
        "#graph [data-node]", "nodes => nodes.map(n => [n.dataset.node, n.dataset.status])"
    )
    assert dict(drawn) == {name: node["status"] for name, node in body["nodes"].items()}
    assert len(drawn) == len(body["nodes"])
    edges = page.eval_on_selector_all(
        "#graph .edge", "edges => edges.map(e => [e.dataset.from, e.dataset.to])"
    )
    assert len(edges) == sum(map(len, needs.values())) == 4
    assert sorted(map(tuple, edges)) == sorted((n, name) for name, ns in needs.items() for n in ns)
    # layers: what a node needs is drawn to its left
    x = {
        name: page.eval_on_selector(
            f"g[data-node='{name}']", "g => g.transform.baseVal.consolidate().matrix.e"
        )
        for name in needs
    }
    assert x["stock"] == x["price"] < x["ship"] == x["invoice"] < x["label"]
    assert page.locator("#legend li").count() == 7
    assert page.inner_text("#run-status") == "failed"
    assert "node 'stock' failed" in page.inner_text("#run-error")
    assert "needs 'stock', which failed" in page.inner_text("#nodes tr[data-node='ship']")
    assert "out of stock" in page.inner_text("#nodes tr[data-node='stock']")
    assert "ran: no base run" in page.inner_text("#nodes tr[data-node='price']")
    assert HOSTILE in page.inner_text("#nodes tr[data-node='stock']")  # its error, as text
    assert page.inner_text("#run-output") == "(none: the run failed)"
    assert page.locator("#graph-note").is_hidden()

    page.click("g[data-node='invoice']")
    page.wait_for_selector("#exec-output-box:not([hidden])")
    assert page.inner_text("#panel-title") == "invoice"
    assert HOSTILE in page.inner_text("#exec-output")
    assert body["nodes"]["invoice"]["execution_id"] in page.inner_text("#exec-state")
    assert "completed" in page.inner_text("#exec-facts")
    assert page.locator("g[data-node='invoice'].selected").count() == 1

    page.click("g[data-node='stock']")
    page.wait_for_selector("#exec-error-box:not([hidden])")
    assert "out of stock" in page.inner_text("#exec-error") and HOSTILE in page.inner_text(
        "#exec-error"
    )
    assert page.locator("#exec-output-box").is_hidden()

    page.click("g[data-node='ship']")
    page.wait_for_selector("#exec-state:has-text('did not run')")
    assert "needs 'stock', which failed" in page.inner_text("#panel-node")

    assert page.locator("img").count() == 0  # hostile text never became markup
    assert page.dialogs == [] and page.refused == []
    page.close()


@needs_chromium
def test_a_running_run_is_refreshed_in_place_until_it_ends(browser, tiergate_server):
    with tiergate_server.client() as api:
        slow, echo = deploy(api, example("slow.py"), "rp-slow"), deploy(api)
        gid = deploy_graph(
            api,
            {
                "nap": {"function": slow, "input": {"seconds": "input.seconds"}},
                "after": {"function": echo, "needs": ["nap"], "input": "nap"},
            },
        )
        started = api.post(
            f"/graphs/{gid}/runs", json={"seconds": 2}, headers={"Prefer": "respond-async"}
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]

        def nap_status():
            return api.get(f"/graphs/{gid}/runs/{run_id}").json()["nodes"]["nap"]["status"]

        eventually(lambda: nap_status() == "running")
    page = open_page(browser, tiergate_server, gid, run_id, tiergate_server.admin_key)
    page.wait_for_selector("g[data-node='nap'][data-status='running']")
    assert page.get_attribute("g[data-node='after']", "data-status") == "pending"
    assert page.inner_text("#run-status") == "running"
    assert page.locator("#graph .edge").count() == 1
    page.evaluate("window.stillTheSamePage = true")
    page.wait_for_selector("g[data-node='nap'][data-status='completed']", timeout=15_000)
    page.wait_for_selector("#run-status:text-is('completed')", timeout=15_000)
    assert page.get_attribute("g[data-node='after']", "data-status") == "completed"
    assert page.evaluate("window.stillTheSamePage") is True  # refreshed, not reloaded
    assert '"slept": 2' in page.inner_text("#run-output")
    # polling stopped once the run ended
    polls = len(page.polls)
    page.wait_for_timeout(2500)
    assert len(page.polls) == polls
    assert page.dialogs == [] and page.refused == []
    page.close()


@needs_chromium
def test_a_key_without_role_deploy_sees_the_nodes_without_edges(browser, tiergate_server, branches):
    gid, body, _ = branches
    with tiergate_server.client() as api:
        key = api.post(
            "/admin/keys", json={"tenant": "default", "roles": ["review", "invoke"]}
        ).json()["key"]
    # signed in on the reviewer page, then the run page in the same tab: still signed in
    page = browser.new_page()
    page.goto(f"{tiergate_server.url}/ui/")
    page.fill("#key", key)
    page.click("#signin button")
    page.wait_for_selector("#queue:not([hidden])")
    page.goto(f"{tiergate_server.url}/ui/run?graph={gid}&run={body['run_id']}")
    page.wait_for_selector("#graph-note:not([hidden])")
    assert page.is_hidden("#signin")
    assert "role deploy" in page.inner_text("#graph-note")
    drawn = page.eval_on_selector_all(
        "#graph [data-node]", "nodes => nodes.map(n => [n.dataset.node, n.dataset.status])"
    )
    assert dict(drawn) == {name: node["status"] for name, node in body["nodes"].items()}
    assert page.locator("#graph .edge").count() == 0
    page.close()


@needs_chromium
def test_a_bad_key_or_a_missing_run_is_said_in_the_page(browser, tiergate_server, branches):
    gid, body, _ = branches
    page = open_page(browser, tiergate_server, gid, body["run_id"], "tg_not_a_key")
    page.wait_for_selector("#message:has-text('Cannot sign in')")
    assert page.is_hidden("#run") and page.is_visible("#signin")
    page.close()
    page = open_page(browser, tiergate_server, gid, "0123456789abcdef", tiergate_server.admin_key)
    page.wait_for_selector("#message:has-text('not found')")
    assert page.is_hidden("#run")
    page.close()
    page = browser.new_page()
    page.goto(f"{tiergate_server.url}/ui/run")
    assert page.is_visible("#pick") and page.is_hidden("#run")
    page.close()


def test_the_run_page_is_sent_with_a_strict_policy(tiergate_server):
    with tiergate_server.client(key="") as anonymous:
        for path in ("/ui/run", "/ui/run?graph=a&run=b", "/ui/static/run.js", "/ui/static/run.css"):
            answer = anonymous.get(path)
            assert answer.status_code == 200, path
            headers = answer.headers
            policy = dict(
                d.strip().split(" ", 1) for d in headers["content-security-policy"].split(";")
            )
            assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
            assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
            assert policy["connect-src"] == "'self'" and "unsafe" not in str(policy)
            assert headers["x-frame-options"] == "DENY"
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "no-referrer"
        html = anonymous.get("/ui/run").text
        assert "tiergate" in html and '<script src="/ui/static/run.js"' in html
        assert not re.search(r"\s(style|on[a-z]+)\s*=", html)  # nothing inline
        script = anonymous.get("/ui/static/run.js").text
        assert "innerHTML" not in script and "insertAdjacentHTML" not in script
