"""The reviewer page as two reviewers use it at once, in headless Chromium (Debian's, through
Playwright): the sign-in panel, who is signed in, no stale error, relative times, a claim seen by
the other reviewer's page without a reload (their answer disabled), release, booleans that are
never sent unless chosen, the reject reason apart from an output field called "reason", and the
earlier attempt's logs and traceback."""

from __future__ import annotations

import re

import pytest
import test_review_page
from conftest import unique

CHROMIUM = test_review_page.CHROMIUM
browser = test_review_page.browser  # the same fixture: one Chromium for this module

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")

REFRESH_MS = 10_000  # the page refreshes every 3 s: a change shows well within this
FAILING = """
def handler(event, context):
    print("looking at the refund of", event["refund"])
    raise ValueError("refunds over 40 need a person")
"""
SCHEMA = {
    "type": "object",
    "required": ["approved"],
    "properties": {
        "approved": {"type": "boolean"},
        "urgent": {"type": "boolean", "description": "needs doing today"},
        "reason": {"type": "string", "description": "why, in a few words"},
    },
}


@pytest.fixture(scope="module")
def refunds(tiergate_server):
    """A Python function whose code always fails, so every call waits for a person."""
    fn = unique("refund")
    with tiergate_server.client() as api:
        body = {
            "id": fn,
            "runtime": "python",
            "code": FAILING,
            "description": "approves refunds",
            "output_schema": SCHEMA,
            "tiers": {"human": {"instructions": "Refunds under 50 are fine."}},
        }
        r = api.post("/deploy", json=body)
        assert r.status_code == 201, r.text
    return fn


def ask(tiergate_server, fn, refund):
    with tiergate_server.client() as api:
        accepted = api.post(f"/invoke/{fn}", json={"refund": refund})
        assert accepted.status_code == 202, accepted.text
        execution_id = accepted.json()["execution_id"]
        task = next(
            t for t in api.get("/tasks").json()["tasks"] if t["execution_id"] == execution_id
        )
        return task, execution_id


def reviewer(tiergate_server, name):
    with tiergate_server.client() as api:
        made = api.post(
            "/admin/keys", json={"tenant": "default", "roles": ["review"], "name": name}
        )
        return made.json()["key"]


def open_page(browser, tiergate_server, refused):
    page = browser.new_context().new_page()
    page.on("console", lambda m: "Content Security Policy" in m.text and refused.append(m.text))
    page.goto(f"{tiergate_server.url}/ui/")
    return page


def sign_in(page, key, name):
    page.fill("#key", key)
    page.click("#signin button")
    page.wait_for_selector(f"#who-text:has-text('Signed in as {name}')")
    page.evaluate("window.notReloaded = true")  # gone if the page ever reloads


def still_the_same_page(page):
    return page.evaluate("window.notReloaded === true")


def test_the_sign_in_panel_who_is_signed_in_and_no_stale_error(browser, tiergate_server):
    refused = []
    key = reviewer(tiergate_server, "ada")
    page = open_page(browser, tiergate_server, refused)
    panel = page.locator("#signin-panel")
    assert panel.is_visible() and page.is_hidden("#queue") and page.is_hidden("#who")
    assert "Sign in" in panel.locator("h2").inner_text()
    assert "reviewer page" in panel.inner_text()
    assert page.inner_text("label[for='key']") == "API key"
    assert "review" in page.inner_text("#key-hint")
    box = page.locator("#key").bounding_box()
    assert box["width"] >= 250 and box["height"] >= 28  # a normal field, not a tiny one
    assert page.evaluate("document.activeElement.id") == "key"

    page.fill("#key", "tg_not_a_key")
    page.click("#signin button")
    page.wait_for_selector("#message:has-text('Cannot sign in')")
    assert panel.is_visible()

    sign_in(page, key, "ada")
    assert page.inner_text("#who-text") == "Signed in as ada (tenant default, roles review)"
    assert page.inner_text("#message") == ""  # the earlier error is gone
    assert page.is_hidden("#message") and page.is_hidden("#signin-panel")
    assert page.is_visible("#queue") and page.is_visible("#signout")

    page.click("#signout")
    page.wait_for_selector("#signin-panel:not([hidden])")
    assert page.is_hidden("#who") and page.is_hidden("#queue")
    assert page.evaluate("sessionStorage.getItem('tiergate-key')") is None
    assert refused == []
    page.context.close()


def test_a_key_without_the_review_role_is_told_so(browser, tiergate_server):
    with tiergate_server.client() as api:
        key = api.post(
            "/admin/keys", json={"tenant": "default", "roles": ["invoke"], "name": "ivan"}
        ).json()["key"]
    page = open_page(browser, tiergate_server, [])
    page.fill("#key", key)
    page.click("#signin button")
    page.wait_for_selector("#message:has-text('needs review')")
    assert page.is_visible("#signin-panel") and page.is_hidden("#queue")
    page.context.close()


def test_two_reviewers_see_each_others_claims_live(browser, tiergate_server, refunds):
    refused = []
    task, execution_id = ask(tiergate_server, refunds, 20)
    ada_key, bob_key = reviewer(tiergate_server, "ada"), reviewer(tiergate_server, "bob")
    ada = open_page(browser, tiergate_server, refused)
    bob = open_page(browser, tiergate_server, refused)
    sign_in(ada, ada_key, "ada")
    sign_in(bob, bob_key, "bob")
    row = f"tr[data-task='{task['id']}']"

    # Times are relative, with the exact time in the title.
    created = ada.locator(f"{row} td:nth-child(2) time")
    assert re.fullmatch(r"just now|\d+ min ago", created.inner_text())
    assert task["created_at"] in created.get_attribute("title")
    assert created.get_attribute("datetime") == task["created_at"]
    assert ada.locator(f"{row} td:nth-child(3) time").inner_text().startswith("in ")

    # Ada opens the task: the earlier attempt's error, its logs and the traceback are there.
    ada.click(row)
    ada.wait_for_selector("#task:not([hidden])")
    assert "refunds over 40 need a person" in ada.inner_text("#task-attempts")
    logs = ada.inner_text("#task-logs")
    assert "looking at the refund of 20" in logs
    assert "Traceback (most recent call last)" in logs and "ValueError" in logs
    assert ada.is_visible("#task-logs-box")
    assert "Not claimed" in ada.inner_text("#claim-state")

    # Ada claims: her page says so, and Bob's queue shows it without a reload.
    ada.click("#claim")
    ada.wait_for_selector("#claim-state:has-text('Claimed by you')")
    assert ada.is_visible("#release") and ada.is_hidden("#claim")
    assert "Claimed" in ada.inner_text("#message")
    bob.wait_for_selector(f"{row} td.claimed:has-text('ada')", timeout=REFRESH_MS)

    # Bob opens it: held by Ada, so he cannot answer, reject or claim it.
    bob.click(row)
    bob.wait_for_selector("#claim-state:has-text('Claimed by ada')")
    for control in ("#submit", "#field-approved", "#field-reason", "#reject-reason", "#claim"):
        assert bob.is_disabled(control), control
    assert bob.evaluate("document.getElementById('answer-fields').disabled")

    # Ada releases: Bob's page frees the task by itself, and Bob claims it.
    ada.click("#release")
    ada.wait_for_selector("#claim-state:has-text('Not claimed')")
    assert "Released" in ada.inner_text("#message") and ada.is_hidden("#release")
    bob.wait_for_selector("#claim-state:has-text('Not claimed')", timeout=REFRESH_MS)
    assert bob.is_enabled("#submit") and bob.is_enabled("#claim")
    bob.fill("#field-reason", "small refund")
    bob.click("#claim")
    bob.wait_for_selector("#claim-state:has-text('Claimed by you')")
    ada.wait_for_selector("#claim-state:has-text('Claimed by bob')", timeout=REFRESH_MS)
    assert ada.is_disabled("#submit") and ada.is_disabled("#reject-reason")

    # A refresh keeps what Bob has filled in.
    bob.wait_for_timeout(3500)
    assert bob.input_value("#field-reason") == "small refund"

    # The required boolean must be chosen: nothing is sent until it is.
    assert bob.input_value("#field-approved") == "" and bob.input_value("#field-urgent") == ""
    bob.click("#submit")
    bob.wait_for_selector(".field[data-field='approved'] .error:has-text('choose Yes or No')")
    assert "approved" in bob.inner_text("#answer-errors")
    with tiergate_server.client() as api:
        assert api.get(f"/executions/{execution_id}").json()["status"] == "awaiting_human"

    # Approved, urgent left unset: the answer has no "urgent" at all.
    bob.select_option("#field-approved", label="Yes")
    bob.click("#submit")
    bob.wait_for_selector("#message:has-text('is completed')")
    ada.wait_for_selector("#claim-state:has-text('completed by bob')", timeout=REFRESH_MS)
    assert ada.is_disabled("#submit")
    assert still_the_same_page(ada) and still_the_same_page(bob)
    assert refused == []
    ada.context.close()
    bob.context.close()
    with tiergate_server.client() as api:
        final = api.get(f"/executions/{execution_id}").json()
    assert final["status"] == "completed" and final["tier"] == "human"
    assert final["output"] == {"approved": True, "reason": "small refund"}
    assert final["review"]["by_name"] == "bob"


def test_an_optional_boolean_is_sent_only_when_chosen(browser, tiergate_server, refunds):
    task, execution_id = ask(tiergate_server, refunds, 30)
    page = open_page(browser, tiergate_server, [])
    sign_in(page, reviewer(tiergate_server, "cy"), "cy")
    page.click(f"tr[data-task='{task['id']}']")
    page.wait_for_selector("#task:not([hidden])")
    options = page.locator("#field-urgent option").all_inner_texts()
    assert options == ["— not set —", "Yes", "No"]
    assert page.locator("#field-approved option").first.inner_text() == "— choose —"
    page.select_option("#field-approved", label="No")
    page.select_option("#field-urgent", label="No")
    page.check("#raw-toggle")
    assert page.input_value("#raw").replace(" ", "").replace("\n", "") == (
        '{"approved":false,"urgent":false}'
    )
    page.uncheck("#raw-toggle")
    page.click("#submit")
    page.wait_for_selector("#message:has-text('is completed')")
    page.context.close()
    with tiergate_server.client() as api:
        final = api.get(f"/executions/{execution_id}").json()
    assert final["output"] == {"approved": False, "urgent": False}


def test_the_reject_reason_is_apart_from_an_output_field_called_reason(
    browser,
    tiergate_server,
    refunds,
):
    task, execution_id = ask(tiergate_server, refunds, 99)
    page = open_page(browser, tiergate_server, [])
    sign_in(page, reviewer(tiergate_server, "dee"), "dee")
    page.click(f"tr[data-task='{task['id']}']")
    page.wait_for_selector("#task:not([hidden])")
    # The output's "reason" field is in the answer form; the reject reason in its own section.
    assert page.locator("#answer #field-reason").count() == 1
    assert page.inner_text("label[for='field-reason']").strip() == "reason"
    assert page.locator("#reject-section #reject-reason").count() == 1
    assert page.locator("#answer #reject-reason, #answer-section #reject-section").count() == 0
    assert page.inner_text("label[for='reject-reason']") == "Why reject?"
    assert "Reject this task" in page.inner_text("#reject-section h3")
    page.fill("#field-reason", "this is the output's reason")
    page.fill("#reject-reason", "the refund has no order number")
    page.click("#reject-section button[type='submit']")
    page.wait_for_selector("#message:has-text('Rejected')")
    page.context.close()
    with tiergate_server.client() as api:
        final = api.get(f"/executions/{execution_id}").json()
    assert final["status"] == "failed"
    assert final["review"]["reason"] == "the refund has no order number"
