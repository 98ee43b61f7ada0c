"""Items: list with filters and pages, upload to import, and a read-only view of one item."""

import pandas as pd
import streamlit as st

from pages.common import page_setup, reading, show_conversation, writing
from review import access, catalog, importing
from review.formats import DIMENSIONS, InvalidInput
from review.taxonomy import STATUSES

user = page_setup("items")
st.title("Items")

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
                    projects[target.strip()] = None  # refreshed below
                    with reading() as session:
                        projects = {p.name: p.id for p in catalog.list_projects(session)}

if not projects:
    st.info("No projects yet." + (" Import a file to create one." if access.may_import(user.role) else ""))
    st.stop()

project_name = st.selectbox("Project", list(projects), key="items_project")
project_id = projects[project_name]

c1, c2, c3, c4, c5 = st.columns([1, 1, 2, 2, 3])
kind = c1.selectbox("Kind", ["all", "open", "mcq"], key="items_filter_kind")
status_filter = c2.selectbox("Status", ["all", *STATUSES], key="items_filter_status")
specialty = c3.selectbox("Specialty", ["all", *specialties], key="items_filter_specialty")
dimension = c4.selectbox("Dimension", ["all", *DIMENSIONS], key="items_filter_dimension")
text = c5.text_input("Search text or id", key="items_filter_text")

filters = {
    "kind": None if kind == "all" else kind,
    "status": None if status_filter == "all" else status_filter,
    "specialty": None if specialty == "all" else specialty,
    "dimension": None if dimension == "all" else dimension,
    "text": text or None,
}
with reading() as session:
    _, total = catalog.item_page(session, project_id=project_id, page_size=1, **filters)
pages_total = catalog.page_count(total)
page = st.pagination(pages_total, key="items_page") if pages_total > 1 else 1
with reading() as session:
    rows, total = catalog.item_page(session, project_id=project_id, page=page, **filters)

st.caption(f"{total} items match · page {page} of {pages_total}")
if rows:
    st.dataframe(
        pd.DataFrame([r.__dict__ for r in rows]).drop(columns=["item_id"]),
        hide_index=True,
        key="items_table",
    )

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
else:
    st.info("No items match these filters.")
