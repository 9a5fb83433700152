"""The reviewer page in a real headless Chromium (Debian's, driven by Playwright): sign in, open a
pending task, see its input, instructions and the earlier attempt's error, get a validation
error inline, answer, and see the execution complete, all under the page's Content-Security-Policy
(its headers are checked in test_hardening.py)."""

from __future__ import annotations

import shutil

import pytest
from conftest import assert_problem, example, unique

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")

SCHEMA = {
    "type": "object",
    "required": ["approved", "note"],
    "properties": {
        "approved": {"type": "boolean"},
        "note": {"type": "string", "minLength": 5},
        "risk": {"enum": ["low", "high"]},
    },
}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def test_a_reviewer_answers_a_task_in_the_page(browser, tiergate_server):
    with tiergate_server.client() as api:
        fn = unique("approve")
        r = api.post(
            "/deploy",
            json={
                "id": fn,
                "runtime": "wasm",
                "code": example("trap.wat"),
                "description": "approves refunds",
                "output_schema": SCHEMA,
                "tiers": {"human": {"instructions": "Refunds under 50 are fine."}},
            },
        )
        assert r.status_code == 201, r.text
        waiting = api.post(f"/invoke/{fn}", json={"refund": 20}).json()
        key = api.post(
            "/admin/keys", json={"tenant": "default", "roles": ["review"], "name": "ada"}
        ).json()["key"]
    page = browser.new_page()
    refused = []  # what the page's Content-Security-Policy blocked: nothing, or it is too strict
    page.on("console", lambda m: "Content Security Policy" in m.text and refused.append(m.text))
    page.goto(f"{tiergate_server.url}/ui/")
    page.fill("#key", key)
    page.click("#signin button")
    page.wait_for_selector(f"tr:has-text('{fn}')")
    page.click(f"tr:has-text('{fn}')")
    page.wait_for_selector("#task:not([hidden])")
    assert "Refunds under 50" in page.inner_text("#task-instructions")
    assert '"refund": 20' in page.inner_text("#task-input")
    assert "unreachable" in page.inner_text("#task-attempts")
    page.click("#claim")
    page.wait_for_selector("#message:has-text('Claimed')")
    page.select_option("#field-approved", label="Yes")
    page.fill("#field-note", "ok")
    page.select_option("#field-risk", label="low")
    page.click("#submit")
    page.wait_for_selector(".field[data-field='note'] .error:not(:empty)")
    assert "short" in page.inner_text(".field[data-field='note'] .error")
    page.fill("#field-note", "small amount, approved")
    page.click("#submit")
    page.wait_for_selector("#message:has-text('is completed')")
    assert refused == []
    page.close()
    with tiergate_server.client() as api:
        final = api.get(waiting["status_url"]).json()
        assert final["status"] == "completed" and final["tier"] == "human"
        assert final["output"] == {
            "approved": True,
            "note": "small amount, approved",
            "risk": "low",
        }
        assert final["review"]["by_name"] == "ada"


def test_a_bad_key_is_refused_in_the_page(browser, tiergate_server):
    page = browser.new_page()
    page.goto(f"{tiergate_server.url}/ui/")
    page.fill("#key", "tg_not_a_key")
    page.click("#signin button")
    page.wait_for_selector("#message:has-text('Cannot sign in')")
    assert page.is_hidden("#queue")
    page.close()


def test_the_page_is_public_but_its_data_is_not(tiergate_server):
    import httpx

    page = httpx.get(f"{tiergate_server.url}/ui/")
    assert page.status_code == 200 and "tiergate" in page.text
    assert_problem(httpx.get(f"{tiergate_server.url}/tasks"), 401, "unauthenticated")
