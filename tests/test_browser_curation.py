"""Browser: a curator writes an item with a rubric from scratch in the Item editor, sees that it nearly copies
an item of a reference project, sends it through review to approval on the Items page, and after physicians
have graded it edits it again: a new version, the old labels intact (see tests/test_browser.py for the server)."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import col, select

from review import administration, duplicates, grading, importing, reviewing
from storage import projects, users
from storage.db import read_session, write_session
from storage.models import Criterion, CriterionLabel, DuplicateFlag, Item
from tests.test_browser import TIMEOUT_MS, _settled, _sign_in, app_url, browser, page  # noqa: F401  (fixtures)

CLINIC = "A clinic benchmark"  # first in every project list
REFERENCE = "HealthBench reference"
REFERENCE_ROW = 10  # a one-turn HealthBench prompt about a kidney transplant patient on tacrolimus


@pytest.fixture
def reference_prompt(engine, seeded_project: str, shared_data) -> str:
    """HealthBench Hard imported as a reference project, and an empty clinic project; returns the prompt of the
    reference row the curator's item will nearly copy."""
    data = (shared_data / "healthbench" / "hard_sample_30.jsonl").read_bytes()
    with write_session(engine) as session:
        admin = users.get_user_by_username(session=session, username="admin")
        assert admin is not None and admin.id is not None
        importing.import_items(session, project_name=REFERENCE, data=data, filename="hard.jsonl", status="approved")
        reference = projects.get_project_by_name(session=session, name=REFERENCE)
        assert reference is not None and reference.id is not None
        duplicates.set_reference(session, project_id=reference.id, is_reference=True, actor_id=admin.id)
        administration.create_project(session, actor_id=admin.id, name=CLINIC, overlap=2)
        session.commit()
    row = json.loads(data.decode().splitlines()[REFERENCE_ROW])
    assert len(row["prompt"]) == 1
    return str(row["prompt"][0]["content"])


def _open(tab: Page, link: str, heading: str) -> None:
    tab.get_by_test_id("stSidebarNav").get_by_role("link", name=link, exact=True).click()
    expect(tab.get_by_role("heading", name=heading, exact=True)).to_be_visible(timeout=TIMEOUT_MS)
    _settled(tab)


def _click(tab: Page, key: str) -> None:
    tab.locator(f".st-key-{key} button").click()
    _settled(tab)


def _fill(tab: Page, label: str, text: str, nth: int = 0) -> None:
    field = tab.get_by_label(label, exact=True).nth(nth)
    field.fill(text)
    field.press("Tab")  # a text area sends its value when it loses focus
    _settled(tab)


def _choose(tab: Page, label: str, option: str) -> None:
    box = tab.get_by_role("combobox", name=label, exact=True)
    choice = tab.get_by_role("option", name=option, exact=True)
    for _ in range(10):  # a click that lands while the widget re-renders leaves the list closed: click again
        box.click()
        try:
            expect(choice).to_be_visible(timeout=2000)
            break
        except AssertionError:
            tab.keyboard.press("Escape")
    choice.click()
    expect(tab.get_by_role("combobox", name=label, exact=True)).to_have_value(option, timeout=TIMEOUT_MS)
    _settled(tab)


def _bulk(tab: Page, action: str, *, reason: str = "") -> None:
    _choose(tab, "Action", action)
    if reason:
        _fill(tab, "Reason (recorded; lets an item be approved before it has all its reviews)", reason)
    _click(tab, "items_bulk_apply")


def _clinic_item(engine) -> list[Item]:
    with read_session(engine) as session:
        clinic = projects.get_project_by_name(session=session, name=CLINIC)
        assert clinic is not None
        return list(session.exec(select(Item).where(Item.project_id == clinic.id).order_by(col(Item.version))).all())


def _physicians_review_then_grade(engine, item_id: int) -> None:
    """Two physicians review the item (in review), then, once approved with an answer, grade it."""
    with write_session(engine) as session:
        for username in ("dr.okafor", "dr.lindqvist"):
            physician = users.get_user_by_username(session=session, username=username)
            assert physician is not None and physician.id is not None
            clinic = projects.get_project_by_name(session=session, name=CLINIC)
            assert clinic is not None and clinic.id is not None
            claim = reviewing.claim_next_review(session, project_id=clinic.id, user_id=physician.id)
            assert claim is not None and claim.item_id == item_id
            view = reviewing.review_view(session, assignment_id=claim.assignment_id, user_id=physician.id)
            form = reviewing.ItemReviewForm(
                criteria={
                    c.criterion_id: reviewing.CriterionReview(clear=True, clinically_right=True) for c in view.criteria
                }
            )
            reviewing.submit_review(session, assignment_id=claim.assignment_id, user_id=physician.id, form=form)


def _grade(engine, item: Item) -> int:
    with write_session(engine) as session:
        answer = {"external_id": item.external_id, "model": "model-x", "answer": "Check for rejection first."}
        importing.import_answers(session, project_name=CLINIC, data=json.dumps(answer).encode(), filename="a.jsonl")
        clinic = projects.get_project_by_name(session=session, name=CLINIC)
        assert clinic is not None and clinic.id is not None
        for username, value in (("dr.okafor", "met"), ("dr.lindqvist", "not_met")):
            physician = users.get_user_by_username(session=session, username=username)
            assert physician is not None and physician.id is not None
            claim = grading.claim_next(session, project_id=clinic.id, user_id=physician.id)
            assert claim is not None and claim.item_id == item.id
            rubric = grading.grading_view(session, assignment_id=claim.assignment_id, user_id=physician.id)
            form = grading.Grading(labels={c.criterion_id: value for c in rubric.criteria}, safety="none")
            grading.submit_grading(session, assignment_id=claim.assignment_id, user_id=physician.id, grading=form)
        return len(session.exec(select(CriterionLabel)).all())


@pytest.mark.browser
def test_curator_writes_an_item_sends_it_through_review_and_edits_it_after_labels(
    page: Page,  # noqa: F811
    app_url: str,  # noqa: F811
    engine,
    reference_prompt: str,
) -> None:
    """Test the curation loop in a browser: a new item with a rubric is saved as local-00001 and flagged as a
    near-copy of the reference item; sent to review, reviewed by two physicians and approved; graded; then
    edited, which makes version 2 while version 1 keeps its labels."""
    near_copy = reference_prompt.replace("dryness in mouth", "dry mouth").replace("5 mg prednisone", "prednisone 5 mg")
    assert near_copy != reference_prompt

    _sign_in(page, app_url, "curator")
    _open(page, "Item editor", "Item editor")
    _click(page, "edit_open")
    _fill(page, "Turn 1 text", near_copy)
    _click(page, "edit_add_criterion")
    _fill(page, "Criterion 1", "Asks whether a biopsy or ultrasound was done before changing the dose")
    _fill(page, "Points", "5")
    _click(page, "edit_add_criterion")
    _fill(page, "Criterion 2", "Recommends raising tacrolimus without checking for rejection")
    _fill(page, "Points", "-6", nth=1)
    _click(page, "edit_save")
    expect(page.get_by_text("Created item local-00001 (version 1, draft).")).to_be_visible(timeout=TIMEOUT_MS)
    warning = page.get_by_text("Nearly copies item", exact=False).first
    expect(warning).to_contain_text(f"of reference project {REFERENCE}")

    [item] = _clinic_item(engine)
    assert (item.external_id, item.version, item.status) == ("local-00001", 1, "draft")
    with read_session(engine) as session:
        flags = session.exec(select(DuplicateFlag).where(DuplicateFlag.item_id == item.id)).all()
    assert [(f.scope, f.status) for f in flags] == [("reference", "open")]

    _open(page, "Items", "Items")
    _choose(page, "Project", CLINIC)
    page.get_by_text("all 1 items matching the filters", exact=True).click()
    _settled(page)
    _bulk(page, "send to review")
    expect(page.get_by_text("1 item sent to review", exact=False)).to_be_visible(timeout=TIMEOUT_MS)
    assert _clinic_item(engine)[0].status == "in_review"

    _physicians_review_then_grade(engine, item.id or 0)
    _bulk(page, "approve")
    expect(page.get_by_text("1 item approved", exact=False)).to_be_visible(timeout=TIMEOUT_MS)
    assert _clinic_item(engine)[0].status == "approved"

    labels = _grade(engine, _clinic_item(engine)[0])
    assert labels == 4  # two physicians × two criteria

    _open(page, "Item editor", "Item editor")
    _fill(page, "Criterion 1", "Asks whether a biopsy was done before changing the tacrolimus dose")
    _click(page, "edit_save")
    saved = "Saved as version 2: the old version keeps its 4 labels and 2 item reviews; 1 answer copied to grade again."
    expect(page.get_by_text(saved, exact=True)).to_be_visible(timeout=TIMEOUT_MS)
    first, second = _clinic_item(engine)
    assert (first.version, first.is_current, second.version, second.is_current) == (1, False, 2, True)
    with read_session(engine) as session:
        kept = session.exec(
            select(Criterion.item_id, CriterionLabel.value).join(
                Criterion, col(Criterion.id) == CriterionLabel.criterion_id
            )
        ).all()
        new_rubric = session.exec(select(Criterion.text).where(Criterion.item_id == second.id)).all()
    assert sorted(kept) == sorted([(first.id, "met")] * 2 + [(first.id, "not_met")] * 2)
    assert "Asks whether a biopsy was done before changing the tacrolimus dose" in new_rubric
