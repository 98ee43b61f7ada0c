"""Grade: a physician takes the next answer, grades it against the rubric (blinded), saves, submits or skips."""

import time
from typing import Any

import streamlit as st

from pages.common import database_key, flash, page_setup, reading, show_conversation, writing
from review import catalog, grading

ASSIGNMENT_KEY = "grade_assignment_id"
STARTED_KEY = "grade_started"  # assignment id → time.monotonic() of the last save or submit
VALUE_NAMES = {"met": "met", "not_met": "not met", "unsure": "unsure"}


def open_view(session: Any, assignment_id: int | None, *, user_id: int, project_id: int) -> grading.GradingView | None:
    """The grading screen of this physician's assignment when it is open work in the project, else None."""
    if assignment_id is None:
        return None
    try:
        view = grading.grading_view(session, assignment_id=assignment_id, user_id=user_id)
    except grading.GradingError as exc:
        st.error(str(exc))
        return None
    return view if view.project_id == project_id and not view.submitted else None


@st.cache_data(ttl=30, show_spinner=False)
def answers_left(url: str, project_id: int) -> int:
    """The project's answers still needing gradings: a project figure (no one's own rows), kept for
    30 s because counting them reads every answer; cleared when this physician submits."""
    with reading() as session:
        return grading.answers_left(session, project_id=project_id)


def seconds_since_last_save(assignment_id: int) -> float:
    """Time on task since the answer was opened or last saved; starts a new mark."""
    marks = st.session_state.setdefault(STARTED_KEY, {})
    now = time.monotonic()
    elapsed = now - marks.get(assignment_id, now)
    marks[assignment_id] = now
    return elapsed


user = page_setup("grade")
st.title("Grade")

with reading() as session:
    projects = [p for p in catalog.list_projects(session) if p.id is not None]
names = {p.id: p.name for p in projects}
guidelines = {p.id: p.guidelines for p in projects}
if not names:
    st.info("There are no projects yet.")
    st.stop()

project_id = st.selectbox("Project", list(names), format_func=names.get, key="grade_project")

with reading() as session:
    today, total = grading.my_progress(session, project_id=project_id, user_id=user.user_id)
    view = open_view(session, st.session_state.get(ASSIGNMENT_KEY), user_id=user.user_id, project_id=project_id)
    if view is None:  # arriving, or back from another project: resume the live lease here, if any
        lease_id = grading.current_lease(session, project_id=project_id, user_id=user.user_id)
        if lease_id is not None:
            view = open_view(session, lease_id, user_id=user.user_id, project_id=project_id)
if view is None:
    st.session_state.pop(ASSIGNMENT_KEY, None)
else:
    st.session_state[ASSIGNMENT_KEY] = view.assignment_id

progress_line = st.empty()


def show_progress() -> None:
    left = answers_left(database_key(), project_id)
    progress_line.caption(grading.Progress(today, total, left).sentence())


show_progress()
if guidelines.get(project_id):
    with st.expander("Guidelines"):
        st.text(guidelines[project_id])

if view is None:
    next_area = st.empty()
    if next_area.button("Next answer", key="grade_next", type="primary"):
        with writing() as session:
            claim = grading.claim_next(
                session, project_id=project_id, user_id=user.user_id, specialties=user.specialties
            )
        if claim is None:
            st.info("There is nothing left for you to grade in this project.")
            st.stop()
        with reading() as session:  # show it in this run: no second run of the whole page
            view = open_view(session, claim.assignment_id, user_id=user.user_id, project_id=project_id)
        st.session_state[ASSIGNMENT_KEY] = claim.assignment_id
        next_area.empty()
    else:
        st.info("Press Next answer to take an answer to grade.")
        st.stop()
    if view is None:
        st.stop()

assert view is not None
aid = view.assignment_id
st.session_state.setdefault(STARTED_KEY, {}).setdefault(aid, time.monotonic())
draft = grading.Grading.from_draft(view.draft)

st.subheader("Conversation")
show_conversation(view.conversation)

st.subheader("Answer to grade")
st.text(view.answer_text)
if view.expires_at is not None:
    st.caption(f"Reserved for you until {view.expires_at:%H:%M} UTC")

options = list(grading.VALUES if view.allow_unsure else grading.VALUES[:2])


def entered_values(view: grading.GradingView) -> grading.Grading:
    """What the physician has entered so far, read from the widgets' state."""
    state, aid = st.session_state, view.assignment_id
    labels = {c.criterion_id: state.get(f"grade_c_{aid}_{c.criterion_id}") for c in view.criteria}
    notes = {c.criterion_id: state.get(f"grade_cc_{aid}_{c.criterion_id}") or "" for c in view.criteria}
    return grading.Grading(
        labels={cid: value for cid, value in labels.items() if value is not None},
        comments={cid: note for cid, note in notes.items() if note.strip()},
        safety=state.get(f"grade_safety_{aid}"),
        comment=state.get(f"grade_comment_{aid}") or "",
    )


def autosave(view: grading.GradingView) -> None:
    """Save the draft on every change, so a reload, a sign-out or a closed tab loses nothing."""
    try:
        with writing() as session:
            grading.save_draft(
                session,
                assignment_id=view.assignment_id,
                user_id=user.user_id,
                grading=entered_values(view),
                seconds=seconds_since_last_save(view.assignment_id),
            )
    except grading.GradingError as exc:
        st.session_state["grade_autosave_error"] = str(exc)


# Keys name the assignment: a keyed widget keeps its value, so one set of keys would carry this
# answer's choices into the next answer (two answers to one item share their criteria).
@st.fragment
def rubric(view: grading.GradingView, draft: grading.Grading) -> None:
    aid = view.assignment_id
    st.subheader("Rubric")
    st.caption("Negative points: things the answer must not do. 'Met' means the answer did it.")
    for criterion in view.criteria:
        points = f"−{-criterion.points}" if criterion.must_not else f"+{criterion.points}"
        label = f"{points} · must not · {criterion.text}" if criterion.must_not else f"{points} · {criterion.text}"
        if criterion.axis:
            label += f" · axis: {criterion.axis}"
        st.text(label)  # imported text: shown as plain text; the radio's own label (markdown) is hidden
        left, right = st.columns([2, 3])
        previous = draft.labels.get(criterion.criterion_id)
        left.radio(
            label,
            options,
            index=options.index(previous) if previous in options else None,
            format_func=VALUE_NAMES.get,
            horizontal=True,
            label_visibility="collapsed",
            key=f"grade_c_{aid}_{criterion.criterion_id}",
            on_change=autosave,
            args=(view,),
        )
        right.text_input(
            "Comment on this criterion (optional)",
            value=draft.comments.get(criterion.criterion_id, ""),
            placeholder="Comment (optional)",
            label_visibility="collapsed",
            key=f"grade_cc_{aid}_{criterion.criterion_id}",
            on_change=autosave,
            args=(view,),
        )
    st.divider()
    st.radio(
        "Safety concern",
        grading.SAFETY,
        index=grading.SAFETY.index(draft.safety) if draft.safety in grading.SAFETY else None,
        horizontal=True,
        key=f"grade_safety_{aid}",
        on_change=autosave,
        args=(view,),
    )
    st.text_area(
        "Comment on this answer (optional)",
        value=draft.comment,
        key=f"grade_comment_{aid}",
        on_change=autosave,
        args=(view,),
    )
    problem = st.session_state.pop("grade_autosave_error", None)
    if problem:
        st.error(problem)
    else:
        answered = len(entered_values(view).labels)
        st.caption(f"{answered} of {len(view.criteria)} criteria answered · draft saved as you go")
    save_col, submit_col = st.columns(2)
    save = save_col.button("Save draft", key="grade_save")
    submit = submit_col.button("Submit", type="primary", key="grade_submit")
    if save or submit:
        keep = grading.submit_grading if submit else grading.save_draft
        try:
            with writing() as session:
                keep(
                    session,
                    assignment_id=aid,
                    user_id=user.user_id,
                    grading=entered_values(view),
                    seconds=seconds_since_last_save(aid),
                )
        except grading.GradingError as exc:
            st.error(str(exc))
        else:
            if submit:
                st.session_state.pop(ASSIGNMENT_KEY, None)
                st.session_state[STARTED_KEY].pop(aid, None)
                answers_left.clear()
                flash("Submitted. Press Next answer for the next one.")
                st.rerun(scope="app")
            st.success("Draft saved.")


rubric(view, draft)

st.subheader("Skip")
reason_col, skip_col = st.columns([4, 1], vertical_alignment="bottom")
reason = reason_col.text_input("Why skip?", key=f"grade_skip_reason_{aid}")
if skip_col.button("Skip", key="grade_skip"):
    try:
        with writing() as session:
            grading.skip(session, assignment_id=aid, user_id=user.user_id, reason=reason)
    except grading.GradingError as exc:
        st.error(str(exc))
    else:
        st.session_state.pop(ASSIGNMENT_KEY, None)
        st.session_state[STARTED_KEY].pop(aid, None)
        flash("Skipped. It will not be offered to you again.")
        st.rerun()
