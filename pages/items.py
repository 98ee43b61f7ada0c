"""Items: list with filters and pages, upload to import, a read-only view of one item; for curators, bulk
actions (tags, the workflow from draft to approved and retired), the editor, and the criteria to rewrite."""

import time
from typing import Any

import pandas as pd
import streamlit as st

from pages.common import database_key, page_setup, reading, show_conversation, writing
from review import access, catalog, importing, rewriting, workflow
from review.formats import DIMENSIONS, InvalidInput
from review.taxonomy import STATUSES

EDITOR = "pages/edit_item.py"
REPORT_KEY = "items_bulk_report"  # what the last bulk action did, shown once
MATCHES_KEY = "items_matches"  # the ids matching the last filters that read every row, and under what
MATCHES_SECONDS = 60  # ...kept at most this long (changes made without an audit event show up by then)
SCOPES = ("chosen", "matching")
STATUS_NAMES = {"draft": "draft", "in_review": "in review", "approved": "approved", "retired": "retired"}


def open_editor(item_id: int | None, new_kind: str = "open") -> None:
    """Hand an item (or a new one of this kind) to the editor page, by id only."""
    if item_id is None:
        st.session_state.pop("edit_item_id", None)
        st.session_state["edit_new_kind"] = new_kind
    else:
        st.session_state["edit_item_id"] = int(item_id)
        st.session_state.pop("edit_new_kind", None)
    st.switch_page(EDITOR)


@st.cache_data(ttl=60, show_spinner=False)
def tags_of(url: str, project_id: int) -> list[str]:
    """The tags used in a project (project data, no one's own rows), kept 60 s: listing them reads every item.
    Cleared when this page changes tags or imports."""
    with reading() as session:
        return catalog.project_tags(session, project_id=project_id)


def list_page(project_id: int, filters: catalog.ItemFilters, page: int) -> catalog.ItemPage:
    """One page of the list. Filters that read every row (text, tags, flagged...) find the matching ids once and
    keep them (ids only, this session) while nothing changes, so turning pages does not read the rows again."""
    with reading() as session:
        if not filters.reads_rows:
            return catalog.item_listing(session, project_id=project_id, filters=filters, page=page)
        key = (project_id, filters, catalog.listing_version(session, project_id=project_id))
        kept = st.session_state.get(MATCHES_KEY)
        if kept is None or kept["key"] != key or time.monotonic() - kept["at"] > MATCHES_SECONDS:
            ids = catalog.matching_ids(session, project_id=project_id, filters=filters)
            kept = {"key": key, "ids": ids, "at": time.monotonic()}
            st.session_state[MATCHES_KEY] = kept
        return catalog.listing_of_ids(session, ids=kept["ids"], page=page)


def keep_known(key: str, known: list[Any]) -> None:
    """Drop remembered choices of a multiselect that its options no longer hold (another project, page)."""
    if key in st.session_state:
        st.session_state[key] = [value for value in st.session_state[key] if value in known]


def apply_bulk(user_id: int, role: str, project_id: int, filters: catalog.ItemFilters, page_ids: list[int]) -> None:
    """Apply button's callback: run the chosen action on the chosen items; the report is shown on this run."""
    state = st.session_state
    if state.get("items_bulk_scope") == "matching":
        with reading() as session:
            ids = catalog.matching_ids(session, project_id=project_id, filters=filters)
    else:
        ids = list(page_ids) if state.get("items_bulk_page") else list(state.get("items_bulk_selected") or [])
    try:
        with writing() as session:
            report = workflow.apply_action(
                session,
                action=state.get("items_bulk_action") or "add_tag",
                item_ids=ids,
                actor_id=user_id,
                role=role,
                tag=state.get("items_bulk_tag") or "",
                reason=state.get("items_bulk_reason") or "",
            )
    except workflow.WorkflowError as exc:
        state[REPORT_KEY] = {"error": str(exc)}
    else:
        state[REPORT_KEY] = {"message": report.message, "refused": report.refused, "tag": report.tag}
    tags_of.clear()


user = page_setup("items")
st.title("Items")
curator = workflow.may_change(user.role)

with reading() as session:
    projects = {p.name: p.id for p in catalog.list_projects(session)}
    specialties = catalog.list_specialties(session)

if access.may_import(user.role):
    with st.expander("Import items from a file", expanded=not projects):
        with st.form("items_import_form", clear_on_submit=False):
            target = st.text_input(
                "Project (created if new)", value=next(iter(projects), ""), key="items_import_project"
            )
            upload = st.file_uploader(
                "HealthBench JSONL, MedQA JSONL or medreview CSV", type=["jsonl", "csv"], key="items_upload"
            )
            left, middle, right = st.columns(3)
            fmt = left.selectbox("Format", ["auto", "healthbench", "medqa", "csv"], key="items_import_format")
            status = middle.selectbox("Status of new items", ["draft", "approved"], key="items_import_status")
            on_conflict = right.selectbox(
                "When an id exists with other content",
                importing.ON_CONFLICT,
                format_func={
                    "error": "stop and list them",
                    "new-version": "add a new version",
                    "skip": "skip",
                }.get,
                key="items_import_conflict",
            )
            references = st.checkbox(
                "Import HealthBench reference completions as answers", key="items_import_references"
            )
            submitted = st.form_submit_button("Import")
        if submitted:
            if upload is None:
                st.error("Choose a file to import.")
            else:
                try:
                    with writing() as session:
                        report = importing.import_items(
                            session,
                            project_name=target,
                            data=upload.getvalue(),
                            filename=upload.name,
                            fmt=fmt,
                            status=status,
                            with_reference_answers=references,
                            on_conflict=on_conflict,
                            actor_id=user.user_id,
                        )
                except InvalidInput as exc:
                    st.error(f"Nothing was imported: {len(exc.problems)} problem(s) in the file.")
                    st.code("\n".join(str(p) for p in exc.problems[:200]), language=None)
                else:
                    st.success(
                        f"{report.items_added} items added, {report.items_unchanged} unchanged, "
                        f"{report.items_new_version} new versions, {report.items_skipped} skipped, "
                        f"{report.criteria_added} criteria, {report.answers_added} answers."
                    )
                    if report.near_duplicates:
                        st.warning(
                            f"{report.near_duplicates} new item(s) nearly copy another item of this project or of a "
                            "reference set; they are flagged as possible duplicates (filter: Flagged only)."
                        )
                    tags_of.clear()
                    with reading() as session:
                        projects = {p.name: p.id for p in catalog.list_projects(session)}

if not projects:
    st.info("No projects yet." + (" Import a file to create one." if access.may_import(user.role) else ""))
    st.stop()

project_name = st.selectbox("Project", list(projects), key="items_project")
project_id = projects[project_name]
project_tags = tags_of(database_key(), project_id)

c1, c2, c3, c4, c5 = st.columns([1, 1, 2, 2, 3])
kind = c1.selectbox("Kind", ["all", "open", "mcq"], key="items_filter_kind")
status_filter = c2.selectbox(
    "Status", ["all", *STATUSES], format_func=lambda s: STATUS_NAMES.get(s, s), key="items_filter_status"
)
specialty = c3.selectbox("Specialty", ["all", *specialties], key="items_filter_specialty")
dimension = c4.selectbox("Dimension", ["all", *DIMENSIONS], key="items_filter_dimension")
text = c5.text_input("Search text or id", key="items_filter_text")
t1, t2, t3, t4 = st.columns([5, 2, 2, 1], vertical_alignment="bottom")
keep_known("items_filter_tags", project_tags)
chosen_tags = t1.multiselect("Tags (items with all of them)", project_tags, key="items_filter_tags")
flagged = t2.checkbox("Flagged only", key="items_filter_flagged", help="A criterion to rewrite or a possible duplicate")
new_kind = t3.selectbox("New item", ["open", "mcq"], key="items_new_kind", label_visibility="collapsed")
if t4.button("New item", key="items_new"):
    open_editor(None, new_kind)

filters = catalog.ItemFilters(
    kind=None if kind == "all" else kind,
    status=None if status_filter == "all" else status_filter,
    specialty=None if specialty == "all" else specialty,
    dimension=None if dimension == "all" else dimension,
    text=text or None,
    tags=tuple(chosen_tags),
    flagged=flagged,
)
listing = list_page(project_id, filters, st.session_state.get("items_page", 1))  # as the pagination remembers it
rows, total = listing.rows, listing.total
if listing.pages > 1:
    st.pagination(listing.pages, key="items_page")

st.caption(f"{total} items match · page {listing.page} of {listing.pages}")
if rows:
    st.dataframe(
        pd.DataFrame([r.__dict__ for r in rows]).drop(columns=["item_id"]),
        hide_index=True,
        key="items_table",
    )
else:
    st.info("No items match these filters.")

outcome = st.session_state.pop(REPORT_KEY, None) if curator else None
if curator and (total or outcome):
    st.subheader("Bulk actions")
if outcome is not None:
    if "error" in outcome:
        st.error(outcome["error"])
    else:
        (st.warning if outcome["refused"] else st.success)(outcome["message"])
        if outcome.get("tag"):
            st.text(f"Tag: {outcome['tag']}")
        if outcome["refused"]:
            refused = pd.DataFrame(outcome["refused"], columns=["item", "why not"])
            st.dataframe(refused, hide_index=True, key="items_bulk_refused")
if curator and total:
    scope = st.radio(
        "Apply to",
        SCOPES,
        format_func={"chosen": "items chosen on this page", "matching": f"all {total} items matching the filters"}.get,
        horizontal=True,
        key="items_bulk_scope",
    )
    page_labels = {r.item_id: f"{r.external_id} · {STATUS_NAMES.get(r.status, r.status)}" for r in rows}
    if scope == "chosen":
        whole_page = st.checkbox(f"Select the whole page ({len(rows)} items)", key="items_bulk_page")
        keep_known("items_bulk_selected", list(page_labels))
        st.multiselect(
            "Items", list(page_labels), format_func=page_labels.get, disabled=whole_page, key="items_bulk_selected"
        )
    b1, b2, b3 = st.columns([2, 2, 3])
    action = b1.selectbox(
        "Action", list(workflow.BULK_ACTIONS), format_func=workflow.BULK_ACTIONS.get, key="items_bulk_action"
    )
    b2.text_input("Tag", key="items_bulk_tag", disabled=action not in workflow.TAG_ACTIONS)
    b3.text_input(
        "Reason (recorded; lets an item be approved before it has all its reviews)",
        key="items_bulk_reason",
        disabled=action in workflow.TAG_ACTIONS,
    )
    st.button(
        "Apply",
        key="items_bulk_apply",
        type="primary",
        on_click=apply_bulk,
        args=(user.user_id, user.role, project_id, filters, list(page_labels)),
    )

if rows:
    labels = {r.item_id: f"{r.external_id} · {r.kind} · {r.summary[:80]}" for r in rows}
    chosen = st.selectbox("Open an item", list(labels), format_func=labels.get, index=None, key="items_view")
    if chosen is not None:
        with reading() as session:
            view = catalog.item_view(session, item_id=chosen, blinded=user.role == "annotator", viewer_id=user.user_id)
        if view is None:
            st.error("That item no longer exists.")
        else:
            st.subheader(view.external_id)
            st.caption(
                f"{view.kind} · {view.status} · version {view.version} of {view.versions} · "
                f"{', '.join(view.specialties) or 'no specialty'} · {view.dimension or 'no dimension'}"
            )
            # curators edit any item; physicians the drafts they wrote (the editor checks whose it is)
            if (curator or view.status == "draft") and st.button("Edit", key="items_edit"):
                open_editor(view.item_id)
            if view.tags:
                st.caption("Tags: " + ", ".join(view.tags))
            if view.kind == "open":
                st.markdown("**Conversation**")
                show_conversation(view.conversation)
                st.markdown("**Rubric** (negative points: things the answer must not do)")
                st.dataframe(pd.DataFrame(view.criteria), hide_index=True, key="items_rubric")
            else:
                st.markdown("**Question**")
                st.text(view.question or "")
                for letter, option in view.options.items():
                    mark = " (key)" if letter == view.answer_key else ""
                    st.text(f"{letter}. {option}{mark}")
                if view.explanation:
                    st.markdown("**Explanation**")
                    st.text(view.explanation)
                if view.meta_info:
                    st.caption(f"meta_info: {view.meta_info}")
            st.markdown(f"**Model answers** ({len(view.answers)})")
            for answer in view.answers:
                with st.expander(f"{answer.label} · {answer.source}"):
                    st.text(answer.text)

if curator:
    rewrite = st.expander("Criteria to rewrite", key="items_rewrite_open", on_change="rerun")
    if rewrite.open:
        with rewrite:
            with reading() as session:
                to_rewrite = rewriting.criteria_to_rewrite(session, project_id=project_id)
            if not to_rewrite:
                st.info("No criterion of this project's items is flagged for rewriting.")
            else:
                st.caption(
                    "Criteria flagged in adjudication, with the agreement of their labels "
                    "(physicians and imported raters; unsure labels left out)."
                )
                st.dataframe(
                    pd.DataFrame(
                        [
                            {
                                "item": row.item_external_id,
                                "#": row.position + 1,
                                "points": row.points,
                                "criterion": row.text,
                                "flagged because": row.reason,
                                "units with 2+ labels": row.units_shared,
                                "percent agreement": rewriting.figure_text(row.percent_agreement),
                                "Krippendorff's alpha": rewriting.figure_text(row.krippendorff_alpha),
                                "Gwet's AC1": rewriting.figure_text(row.gwet_ac1),
                                "disputed units": row.disputed,
                                "waiting for a curator": row.waiting,
                            }
                            for row in to_rewrite
                        ]
                    ),
                    hide_index=True,
                    key="items_rewrite_table",
                )
                for row in to_rewrite:
                    left, right = st.columns([9, 1], vertical_alignment="center")
                    left.text(f"{row.item_external_id} · criterion {row.position + 1}: {row.text}")
                    if right.button("Edit", key=f"items_rewrite_edit_{row.criterion_id}"):
                        open_editor(row.item_id)
