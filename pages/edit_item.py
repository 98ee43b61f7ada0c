"""Item editor: write an item from scratch or edit one (conversation turns, MCQ stem, options and key, the
rubric as a table of rows), save with every problem named, keep versions when labels exist, show the history
with diffs, check for near-duplicates, and draft criteria with a model."""

from typing import Any

import pandas as pd
import streamlit as st

from pages.common import key_lookups, page_setup, reading, writing
from review import catalog, duplicates, editing, endpoints, rubric_drafting
from review.taxonomy import DIMENSIONS

OPEN_KEY = "edit_item_id"  # an item id another page asks this page to open
DRAFT_KEY = "edit_draft"  # the working draft, as plain dicts and lists
UID_KEY = "edit_next_uid"  # row ids, never reused in this browser session, so widget keys never collide
RESULT_KEY = "edit_result"  # [(kind, messages)] of the last action, shown once
MATCHES_KEY = "edit_matches"  # near-duplicates found for the draft (plain dicts)
PROJECT_KEY, PICK_KEY, KIND_KEY = "edit_project", "edit_pick", "edit_new_kind"
NEW = "new"
SCALARS = {
    "external_id": "edit_external_id",
    "specialties": "edit_specialties",
    "dimension": "edit_dimension",
    "tags": "edit_tags",
    "change_note": "edit_change_note",
    "question": "edit_question",
    "answer_key": "edit_answer_key",
    "explanation": "edit_explanation",
}
ROW_FIELDS = {
    "turns": ("role", "content"),
    "options": ("letter", "text"),
    "criteria": ("text", "points", "axis", "tags", "accepted"),
}
STAMP = "%Y-%m-%d %H:%M"


# --- the working draft as plain data ------------------------------------------------------------------------


def row_key(rows: str, field: str, uid: int) -> str:
    return f"edit_{rows}_{field}_{uid}"


def report(kind: str, messages: list[str]) -> None:
    """Keep an outcome ("error" or "success") of a callback to show on the page's run."""
    st.session_state.setdefault(RESULT_KEY, []).append((kind, list(messages)))


def next_uid() -> int:
    uid = st.session_state.get(UID_KEY, 1)
    st.session_state[UID_KEY] = uid + 1
    return uid


def split_tags(text: str) -> list[str]:
    return [tag.strip() for tag in (text or "").split(",") if tag.strip()]


def add_row(rows: str, **values: Any) -> None:
    """Append a row to the draft and give its widgets their values."""
    row = {"uid": next_uid(), **values}
    st.session_state[DRAFT_KEY][rows].append(row)
    for field in ROW_FIELDS[rows]:
        if field in row:
            st.session_state[row_key(rows, field, row["uid"])] = row[field]


def load(draft: editing.ItemDraft, *, version: int | None = None, status: str = "draft") -> None:
    """Make a draft the working draft and set every widget to it (runs before the widgets are drawn)."""
    state = st.session_state
    state[DRAFT_KEY] = {
        "project_id": draft.project_id,
        "item_id": draft.item_id,
        "kind": draft.kind,
        "version": version,
        "status": status,
        "external_id": draft.external_id,
        "specialties": list(draft.specialties),
        "dimension": draft.dimension or "",
        "tags": ", ".join(draft.tags),
        "change_note": "",
        "question": draft.question or "",
        "answer_key": draft.answer_key,
        "explanation": draft.explanation or "",
        "turns": [],
        "options": [],
        "criteria": [],
    }
    for field, key in SCALARS.items():
        state[key] = state[DRAFT_KEY][field]
    for turn in draft.conversation:
        add_row("turns", role=turn.role, content=turn.content)
    for letter, text in draft.options:
        add_row("options", letter=letter, text=text)
    for criterion in draft.criteria:
        add_criterion_row(criterion)
    state.pop(MATCHES_KEY, None)


def add_criterion_row(criterion: editing.CriterionDraft) -> None:
    add_row(
        "criteria",
        criterion_id=criterion.criterion_id,
        text=criterion.text,
        points=int(criterion.points),
        axis=criterion.axis or "",
        tags=", ".join(criterion.tags),
        generated=criterion.generated,
        accepted=criterion.accepted,
        # a generated criterion not yet accepted: what the model wrote, so that an edit counts as accepting it
        drafted=None if criterion.accepted or not criterion.generated else [criterion.text, int(criterion.points)],
    )


def collect() -> None:
    """Copy the widgets' values into the working draft (also runs first in every callback)."""
    state = st.session_state
    draft = state.get(DRAFT_KEY)
    if draft is None:
        return
    for field, key in SCALARS.items():
        if key in state:
            draft[field] = state[key]
    for rows, fields in ROW_FIELDS.items():
        for row in draft[rows]:
            for field in fields:
                key = row_key(rows, field, row["uid"])
                if key in state:
                    row[field] = state[key]
    for row in draft["criteria"]:
        if row.get("drafted") and not row["accepted"] and [row["text"], row["points"]] != row["drafted"]:
            row["accepted"] = True  # a physician rewrote the model's draft
            state[row_key("criteria", "accepted", row["uid"])] = True


def as_item_draft(draft: dict[str, Any]) -> editing.ItemDraft:
    open_kind = draft["kind"] == "open"
    return editing.ItemDraft(
        project_id=draft["project_id"],
        item_id=draft["item_id"],
        external_id=draft["external_id"] or "",
        kind=draft["kind"],
        specialties=list(draft["specialties"]),
        dimension=draft["dimension"] or None,
        tags=split_tags(draft["tags"]),
        conversation=[editing.Turn(t["role"], t["content"]) for t in draft["turns"]] if open_kind else [],
        question=None if open_kind else draft["question"],
        options=[] if open_kind else [(o["letter"], o["text"]) for o in draft["options"]],
        answer_key=None if open_kind else draft["answer_key"],
        explanation=None if open_kind else draft["explanation"] or None,
        criteria=[
            editing.CriterionDraft(
                criterion_id=c["criterion_id"],
                text=c["text"],
                points=c["points"],
                axis=c["axis"] or None,
                tags=split_tags(c["tags"]),
                generated=c["generated"],
                accepted=bool(c["accepted"]) or not c["generated"],
            )
            for c in draft["criteria"]
        ]
        if open_kind
        else [],
        change_note=draft["change_note"] or "",
    )


# --- callbacks (they run before the page is drawn) --------------------------------------------------------------


def open_item(item_id: int) -> None:
    """Load a saved item version into the working draft."""
    try:
        with reading() as session:
            draft = editing.draft_of(session, item_id=item_id)
            version, status = editing.version_of(session, item_id=item_id)
    except editing.EditError as exc:
        report("error", exc.problems)
        return
    load(draft, version=version, status=status)
    st.session_state[PROJECT_KEY] = draft.project_id
    st.session_state[PICK_KEY] = item_id


def open_chosen() -> None:
    """Open button's callback: the item chosen, or a new draft of the kind chosen."""
    state = st.session_state
    state.pop(RESULT_KEY, None)
    if state.get(PICK_KEY, NEW) == NEW:
        load(editing.new_draft(project_id=state[PROJECT_KEY], kind=state.get(KIND_KEY) or "open"))
    else:
        open_item(int(state[PICK_KEY]))


def move(rows: str, uid: int, step: int) -> None:
    collect()
    items = st.session_state[DRAFT_KEY][rows]
    index = next(i for i, row in enumerate(items) if row["uid"] == uid)
    other = index + step
    if 0 <= other < len(items):
        items[index], items[other] = items[other], items[index]


def remove(rows: str, uid: int) -> None:
    collect()
    draft = st.session_state[DRAFT_KEY]
    draft[rows] = [row for row in draft[rows] if row["uid"] != uid]


def add_turn() -> None:
    collect()
    turns = st.session_state[DRAFT_KEY]["turns"]
    add_row("turns", role="assistant" if turns and turns[-1]["role"] == "user" else "user", content="")


def add_option() -> None:
    collect()
    used = {row["letter"] for row in st.session_state[DRAFT_KEY]["options"]}
    letter = next((chr(code) for code in range(ord("A"), ord("Z") + 1) if chr(code) not in used), "")
    add_row("options", letter=letter, text="")


def add_criterion() -> None:
    collect()
    add_criterion_row(editing.CriterionDraft(None, "", 1, None, []))


def save() -> None:
    """Save button's callback: save the draft, then reload it as stored and look for near-duplicates."""
    collect()
    draft = as_item_draft(st.session_state[DRAFT_KEY])
    try:
        with writing() as session:
            result = editing.save_item(session, draft, actor_id=user.user_id, role=user.role)
    except editing.EditError as exc:
        report("error", exc.problems)
        return
    open_item(result.item_id)
    report("success", [result.sentence()])
    if result.outcome != "unchanged":
        flag_duplicates(result.item_id)
        check_duplicates()


def flag_duplicates(item_id: int) -> None:
    """Sign the saved version and flag the items it nearly copies (kept for curators to decide on)."""
    try:
        with writing() as session:
            duplicates.check_items(session, item_ids=[item_id], actor_id=user.user_id)
    except duplicates.DuplicateError as exc:
        report("error", [str(exc)])


def duplicate_matches(draft: editing.ItemDraft) -> tuple[list[Any], list[Any]]:
    """Items the draft's text nearly copies, and the saved item's duplicate flags."""
    with reading() as session:
        found = duplicates.find_matches(
            session,
            project_id=draft.project_id,
            kind=draft.kind,
            conversation=[{"role": t.role, "content": t.content} for t in draft.conversation],
            question=draft.question,
            options=dict(draft.options),
            exclude_external_id=draft.external_id.strip() or None,
        )
        flagged = (
            duplicates.flags_for_item(session, item_id=draft.item_id, include_closed=True) if draft.item_id else []
        )
    return found, flagged


def check_duplicates() -> None:
    """Near-duplicates of the draft in its project and in reference projects, and the item's open flags."""
    collect()
    draft = as_item_draft(st.session_state[DRAFT_KEY])
    try:
        found, flagged = duplicate_matches(draft)
    except duplicates.DuplicateError as exc:
        report("error", [str(exc)])
        return
    matches: dict[int, dict[str, Any]] = {}
    for match in [*flagged, *found]:
        matches.setdefault(
            match.item_id,
            {
                "external id": match.external_id,
                "project": match.project,
                "scope": match.scope,
                "similarity": round(float(match.similarity), 2),
                "flag": match.status if match.flag_id is not None else "",
                "summary": match.summary,
                "flag_id": match.flag_id,
            },
        )
    st.session_state[MATCHES_KEY] = sorted(matches.values(), key=lambda m: -m["similarity"])


def dismiss_flag(flag_id: int) -> None:
    """ "Not a copy" button's callback: dismiss the flag with the curator's note, then look again."""
    try:
        with writing() as session:
            duplicates.set_flag_status(
                session,
                flag_id=flag_id,
                status="dismissed",
                actor_id=user.user_id,
                note=st.session_state.get("edit_dismiss_note") or "",
            )
    except duplicates.DuplicateError as exc:
        report("error", [str(exc)])
        return
    report("success", ["Flag dismissed: not a copy."])
    check_duplicates()


def draft_with_model() -> None:
    """Draft criteria with a model: they are added as generated, counting only once accepted or edited."""
    collect()
    draft = st.session_state[DRAFT_KEY]
    try:
        with reading() as session:
            drafted = rubric_drafting.draft_criteria(
                session,
                endpoint_name=st.session_state.get("edit_draft_endpoint") or "",
                conversation=[{"role": t["role"], "content": t["content"]} for t in draft["turns"]],
                specialties=list(draft["specialties"]),
                lookups=key_lookups(),
            )
    except rubric_drafting.DraftingError as exc:
        report("error", [str(exc)])
        return
    for criterion in drafted:
        tags = [tag for tag in criterion.tags if not tag.startswith("axis:")]
        add_criterion_row(
            editing.CriterionDraft(
                None, criterion.text, int(criterion.points), criterion.axis, tags, generated=True, accepted=False
            )
        )
    report(
        "success",
        [f"{len(drafted)} criteria drafted; each counts once you accept or edit it."],
    )


# --- pieces of the page -----------------------------------------------------------------------------------------


def keep_valid(key: str, options: list[Any], fallback: Any) -> None:
    """A select's stored value must be one of its options (a removed option falls back)."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = fallback


def seed(key: str, value: Any) -> None:
    """Give a widget its value from the draft when it has none (e.g. after coming back to the page)."""
    if key not in st.session_state:
        st.session_state[key] = value


def row_buttons(rows: str, uid: int, index: int, count: int, remove_label: str) -> None:
    """Move up, move down and remove, stacked (a row's last column is too narrow for three side by side)."""
    st.button(
        "↑", key=row_key(rows, "up", uid), on_click=move, args=(rows, uid, -1), disabled=index == 0, help="Move up"
    )
    st.button(
        "↓",
        key=row_key(rows, "down", uid),
        on_click=move,
        args=(rows, uid, 1),
        disabled=index == count - 1,
        help="Move down",
    )
    st.button("✕", key=row_key(rows, "remove", uid), on_click=remove, args=(rows, uid), help=remove_label)


def conversation_editor(draft: dict[str, Any]) -> None:
    st.subheader("Conversation")
    turns = draft["turns"]
    for index, turn in enumerate(turns):
        uid = turn["uid"]
        roles = list(editing.TURN_ROLES)
        if turn["role"] not in roles:
            roles.append(turn["role"])  # an imported role, kept as it is
        seed(row_key("turns", "role", uid), turn["role"])
        seed(row_key("turns", "content", uid), turn["content"])
        role_column, text_column, buttons = st.columns([1.2, 6, 0.5])
        role_column.selectbox(f"Turn {index + 1}", roles, key=row_key("turns", "role", uid))
        text_column.text_area(f"Turn {index + 1} text", key=row_key("turns", "content", uid), height=100)
        with buttons:
            row_buttons("turns", uid, index, len(turns), "Remove this turn")
    st.button("Add turn", key="edit_add_turn", on_click=add_turn)


def mcq_editor(draft: dict[str, Any]) -> None:
    st.subheader("Question")
    seed("edit_question", draft["question"])
    st.text_area("Stem", key="edit_question", height=160)
    options = draft["options"]
    for index, option in enumerate(options):
        uid = option["uid"]
        seed(row_key("options", "letter", uid), option["letter"])
        seed(row_key("options", "text", uid), option["text"])
        letter, text, buttons = st.columns([1, 8, 1.2])
        letter.text_input(f"Option {index + 1}", key=row_key("options", "letter", uid), max_chars=1)
        text.text_input(f"Option {index + 1} text", key=row_key("options", "text", uid))
        buttons.button("✕", key=row_key("options", "remove", uid), on_click=remove, args=("options", uid))
    st.button("Add option", key="edit_add_option", on_click=add_option)
    letters = list(dict.fromkeys(o["letter"].strip() for o in options if o["letter"].strip()))
    keep_valid("edit_answer_key", letters, None)
    st.selectbox("Key (the correct option)", letters, index=None, key="edit_answer_key", placeholder="Choose")
    seed("edit_explanation", draft["explanation"])
    st.text_area("Explanation (optional)", key="edit_explanation")


def rubric_editor(draft: dict[str, Any]) -> None:
    st.subheader("Rubric")
    st.caption("Points from -10 to 10; negative points: something the answer must not do.")
    criteria = draft["criteria"]
    for index, criterion in enumerate(criteria):
        uid = criterion["uid"]
        axes = ["", *editing.AXES]
        if criterion["axis"] not in axes:
            axes.append(criterion["axis"])  # an imported axis, shown so it can be corrected
        for field in ("text", "points", "axis", "tags"):
            seed(row_key("criteria", field, uid), criterion[field])
        text, points, axis, tags, buttons = st.columns([5, 1.2, 1.8, 1.8, 0.5])
        text.text_area(f"Criterion {index + 1}", key=row_key("criteria", "text", uid), height=90)
        points.number_input("Points", min_value=-10, max_value=10, step=1, key=row_key("criteria", "points", uid))
        axis.selectbox("Axis", axes, key=row_key("criteria", "axis", uid), format_func=lambda a: a or "(none)")
        tags.text_input("Tags", key=row_key("criteria", "tags", uid), help="Separated by commas")
        with buttons:
            row_buttons("criteria", uid, index, len(criteria), "Delete this criterion")
        if criterion["generated"]:
            seed(row_key("criteria", "accepted", uid), bool(criterion["accepted"]))
            mark, accept = st.columns([2, 8])
            mark.caption("generated")
            accept.checkbox(
                "Accept (a generated criterion counts once accepted or edited)",
                key=row_key("criteria", "accepted", uid),
                disabled=bool(criterion["accepted"]) and criterion["criterion_id"] is not None,
            )
    st.button("Add criterion", key="edit_add_criterion", on_click=add_criterion)


def drafting_control(draft: dict[str, Any]) -> None:
    with reading() as session:
        names = [endpoint.name for endpoint in endpoints.list_endpoints(session)]
    with st.expander("Draft criteria with a model"):
        if not names:
            st.info("No model endpoints yet; an administrator adds them on the Admin page.")
            return
        st.selectbox("Endpoint", names, key="edit_draft_endpoint")
        st.button("Draft criteria", key="edit_draft_criteria", on_click=draft_with_model)


def results() -> None:
    for kind, messages in st.session_state.pop(RESULT_KEY, []):
        if kind == "error" and len(messages) > 1:
            st.error(f"Nothing was saved: {len(messages)} problems.")
        for message in messages:
            (st.error if kind == "error" else st.success)(message)


def duplicates_table() -> None:
    if MATCHES_KEY not in st.session_state:
        return
    matches = st.session_state[MATCHES_KEY]
    if not matches:
        st.success("No near-duplicates found.")
        return
    open_flags = []
    for match in matches:
        where = (
            f"of reference project {match['project']}"
            if match["scope"] == "reference"
            else f"in project {match['project']}"
        )
        line = f"Nearly copies item {match['external id']} {where} (similarity {match['similarity']:.2f})."
        if match["flag"] == "dismissed":
            st.caption(line + " Dismissed: not a copy.")
            continue
        if match["flag"] == "resolved":
            st.caption(line + " Resolved: one of the two was retired or replaced by a new version.")
            continue
        st.warning(line)
        if match["flag"] == "open" and match["flag_id"] is not None:
            open_flags.append(match)
    st.dataframe(pd.DataFrame(matches).drop(columns=["flag_id"]), hide_index=True, key="edit_duplicates_table")
    if open_flags and user.role in ("curator", "admin"):
        st.text_input("Why it is not a copy", key="edit_dismiss_note")
        for match in open_flags:
            st.button(
                f"Not a copy of {match['external id']}: dismiss the flag",
                key=f"edit_dismiss_{match['flag_id']}",
                on_click=dismiss_flag,
                args=(int(match["flag_id"]),),
            )


def history_view(item_id: int) -> None:
    with reading() as session:
        entries = editing.history(session, item_id=item_id)
    with st.expander(f"History ({len(entries)} version{'s' if len(entries) != 1 else ''})"):
        for entry in reversed(entries):
            current = " (current)" if entry.is_current else ""
            st.text(
                f"Version {entry.version}{current} · {entry.status} · {entry.author or 'unknown'} · "
                f"{entry.created_at:{STAMP}} · {entry.labels} labels, {entry.gold} gold labels"
            )
            if entry.change_note:
                st.text(f"Why: {entry.change_note}")
            if entry.diff:
                st.code("\n".join(entry.diff), language="diff")
            elif entry.version > 1:
                st.caption("No visible change.")


# --- the page ---------------------------------------------------------------------------------------------------


user = page_setup("edit_item")
st.title("Item editor")

requested = st.session_state.pop(OPEN_KEY, None)
if requested is not None:
    open_item(int(requested))
collect()

with reading() as session:
    projects = {p.id: p.name for p in catalog.list_projects(session) if p.id is not None}
    taxonomy = catalog.list_specialties(session)
if not projects:
    st.info("There are no projects yet. Import items or ask an administrator to create a project.")
    st.stop()

draft = st.session_state.get(DRAFT_KEY)
with st.expander("Open an item or start a new one", expanded=draft is None):
    keep_valid(PROJECT_KEY, list(projects), next(iter(projects)))
    project_id = st.selectbox("Project", list(projects), format_func=projects.get, key=PROJECT_KEY)
    with reading() as session:
        choices = {
            item_id: f"{external_id} · {kind}"
            for item_id, external_id, kind in editing.item_choices(session, project_id=project_id)
        }
    keep_valid(PICK_KEY, [NEW, *choices], NEW)
    pick = st.selectbox(
        "Item", [NEW, *choices], key=PICK_KEY, format_func=lambda c: "New item" if c == NEW else choices[c]
    )
    if pick == NEW:
        st.radio(
            "Kind",
            editing.KINDS,
            key=KIND_KEY,
            horizontal=True,
            format_func={"open": "open question with a rubric", "mcq": "multiple choice"}.get,
        )
    st.button("Open", key="edit_open", on_click=open_chosen)

if draft is None:
    results()
    st.info("Choose an item to edit, or start a new one.")
    st.stop()

where = projects.get(draft["project_id"], "")
if draft["item_id"] is None:
    st.caption(f"New {draft['kind']} item in {where}")
else:
    st.caption(f"{draft['kind']} item in {where} · version {draft['version']} · {draft['status']}")

seed("edit_external_id", draft["external_id"])
st.text_input(
    "External id",
    key="edit_external_id",
    disabled=draft["item_id"] is not None,
    help="Left empty, an id such as local-00001 is given on saving.",
)
specialty_options = [*taxonomy, *[s for s in draft["specialties"] if s not in taxonomy]]
seed("edit_specialties", draft["specialties"])
left, middle, right = st.columns(3)
left.multiselect("Specialties", specialty_options, key="edit_specialties")
dimensions = ["", *DIMENSIONS]
keep_valid("edit_dimension", dimensions, "")
middle.selectbox("Dimension", dimensions, key="edit_dimension", format_func=lambda d: DIMENSIONS.get(d, "(none)"))
seed("edit_tags", draft["tags"])
right.text_input("Tags", key="edit_tags", help="Separated by commas, e.g. theme:emergency_referrals")

if draft["kind"] == "open":
    conversation_editor(draft)
    rubric_editor(draft)
    drafting_control(draft)
else:
    mcq_editor(draft)

seed("edit_change_note", draft["change_note"])
st.text_input("Change note", key="edit_change_note", help="Why this change was made; kept with the version.")
save_column, check_column = st.columns([1, 4])
save_column.button("Save", key="edit_save", type="primary", on_click=save)
check_column.button("Check for duplicates", key="edit_check_duplicates", on_click=check_duplicates)
results()
duplicates_table()
if draft["item_id"] is not None:
    history_view(draft["item_id"])
