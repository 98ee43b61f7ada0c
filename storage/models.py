"""SQLModel tables for the whole medreview domain.

One table family per thing a physician, curator or admin works with. JSON columns hold lists
and small documents (chat messages, options, tags) and are portable between SQLite and
PostgreSQL. Times are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, LargeBinary, Text, UniqueConstraint, false
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Return the current UTC time. Read-only."""
    return datetime.now(UTC)


def _json(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=nullable))


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


def _json_dict() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def _text(nullable: bool = True, default: str | None = None) -> Any:
    return Field(default=default, sa_column=Column(Text, nullable=nullable))


def _when(nullable: bool = False, default_now: bool = True) -> Any:
    if default_now:
        return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=nullable))
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


# --- people -------------------------------------------------------------------------------


class UserBase(SQLModel):
    username: str = Field(max_length=120, unique=True, index=True)
    display_name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=320)
    # annotator | curator | admin
    role: str = Field(default="annotator", max_length=20, index=True)
    specialties: list[str] = _json_list()
    # human | judge | imported (an external rater, e.g. a HealthBench physician id)
    kind: str = Field(default="human", max_length=20)
    can_sign_in: bool = True
    active: bool = True


class User(UserBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    # argon2 hash; None for accounts that sign in through OIDC / a proxy or not at all
    password_hash: str | None = Field(default=None, max_length=200)
    created_at: datetime = _when()
    last_sign_in_at: datetime | None = _when(nullable=True, default_now=False)


class Specialty(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120, unique=True)
    position: int = 0
    active: bool = True


# --- projects and items --------------------------------------------------------------------


class ProjectBase(SQLModel):
    name: str = Field(max_length=200, unique=True, index=True)
    description: str = _text(nullable=False, default="")
    overlap: int = 2  # k: physicians who grade each answer
    allow_unsure: bool = False
    guidelines: str = _text(nullable=False, default="")
    lease_minutes: int = 30
    # unanimous | majority | adjudicate
    gold_policy: str = Field(default="unanimous", max_length=20)
    gold_min_labels: int = 2  # m for the majority policy
    specialty_routing: bool = True
    # side by side: answers shown per comparison (2 or more)
    compare_columns: int = Field(default=2, sa_column_kwargs={"server_default": "2"})
    # a reference set (e.g. a public benchmark): other projects' items are checked against it for copies
    is_reference: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    # near-duplicate threshold: estimated Jaccard similarity of the items' shingles, 0..1
    duplicate_threshold: float = Field(default=0.7, sa_column_kwargs={"server_default": "0.7"})


class Project(ProjectBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = _when()
    created_by: int | None = Field(default=None, foreign_key="user.id")
    archived: bool = False


class ProjectMember(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("project_id", "user_id"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    user_id: int = Field(foreign_key="user.id", index=True)


class ItemBase(SQLModel):
    external_id: str = Field(max_length=200)
    # open | mcq
    kind: str = Field(max_length=10)
    version: int = 1
    is_current: bool = True
    # draft | in_review | approved | retired
    status: str = Field(default="draft", max_length=20)
    specialties: list[str] = _json_list()
    # knowledge | safety-ethics | record-understanding | patient-service | care
    dimension: str | None = Field(default=None, max_length=40)
    tags: list[str] = _json_list()
    content_hash: str = Field(max_length=64)
    # open: [{role, content}] ending with a user turn
    conversation: list[dict[str, Any]] = _json_list()
    # mcq
    question: str | None = _text()
    options: dict[str, str] = _json_dict()
    answer_key: str | None = Field(default=None, max_length=10)
    explanation: str | None = _text()
    meta_info: str | None = Field(default=None, max_length=200)
    # what the source row carried beyond the mapped fields (kept for faithful export)
    extra: dict[str, Any] = _json_dict()
    source_format: str | None = Field(default=None, max_length=30)


class Item(ItemBase, table=True):
    __table_args__ = (
        UniqueConstraint("project_id", "external_id", "version"),
        Index("ix_item_project_current", "project_id", "is_current", "status"),
        Index("ix_item_project_hash", "project_id", "content_hash"),
        Index("ix_item_project_current_id", "project_id", "is_current", "id"),
        Index("ix_item_project_kind", "project_id", "is_current", "kind", "status", "dimension"),
    )
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    previous_version_id: int | None = Field(default=None, foreign_key="item.id")
    import_batch_id: int | None = Field(default=None, foreign_key="importbatch.id")
    created_at: datetime = _when()
    created_by: int | None = Field(default=None, foreign_key="user.id")
    change_note: str | None = _text()  # why this version was made (editor)


class CriterionBase(SQLModel):
    position: int = 0
    text: str = _text(nullable=False, default="")
    points: int = 0  # -10..10; negative = something the answer must not do
    tags: list[str] = _json_list()
    axis: str | None = Field(default=None, max_length=60)
    flagged: bool = False
    flag_reason: str | None = _text()
    generated: bool = False  # drafted by a model, counts once a physician accepts it
    accepted: bool = True


class Criterion(CriterionBase, table=True):
    __table_args__ = (Index("ix_criterion_item", "item_id", "position"),)
    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="item.id")
    # the same criterion in the item's previous version (None for a criterion new in this version)
    previous_criterion_id: int | None = Field(default=None, foreign_key="criterion.id")
    accepted_by: int | None = Field(default=None, foreign_key="user.id")  # who accepted a generated draft
    accepted_at: datetime | None = _when(nullable=True, default_now=False)


class ItemSignature(SQLModel, table=True):
    """An item version's MinHash signature over its text's shingles, for near-duplicate checks."""

    __table_args__ = (Index("ix_itemsignature_project", "project_id", "item_id"),)
    item_id: int = Field(foreign_key="item.id", primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    shingles: int = 0  # size of the shingle set (0: too little text to compare)


class DuplicateFlag(SQLModel, table=True):
    """An item version that nearly copies another item (in its project, or in a reference project)."""

    __table_args__ = (
        UniqueConstraint("item_id", "match_item_id"),
        Index("ix_duplicateflag_project_status", "project_id", "status"),
    )
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    item_id: int = Field(foreign_key="item.id", index=True)
    match_item_id: int = Field(foreign_key="item.id")
    similarity: float = 0.0
    # project (a near-duplicate in the same project) | reference (a near-copy of a reference item)
    scope: str = Field(max_length=10)
    # open | dismissed (a curator judged it not a copy) | resolved (the item was retired or rewritten)
    status: str = Field(default="open", max_length=12)
    note: str = _text(nullable=False, default="")
    created_at: datetime = _when()
    decided_by: int | None = Field(default=None, foreign_key="user.id")
    decided_at: datetime | None = _when(nullable=True, default_now=False)


# --- models and answers ---------------------------------------------------------------------


class Model(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True, index=True)
    description: str = _text(nullable=False, default="")
    created_at: datetime = _when()


class Endpoint(SQLModel, table=True):
    """An OpenAI-compatible chat endpoint. The key is never stored, only where to find it."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120, unique=True)
    base_url: str = Field(max_length=500)
    model: str = Field(max_length=200)
    api_key_env: str | None = Field(default=None, max_length=120)
    params: dict[str, Any] = _json_dict()
    created_at: datetime = _when()


class AnswerBase(SQLModel):
    text: str = _text(nullable=False, default="")
    # import | reference | generated
    source: str = Field(default="import", max_length=20)
    slot: int | None = None  # position of a reference completion in its source row
    content_hash: str = Field(max_length=64)
    # the answer's id in its source (a meta-eval row's completion_id), kept for faithful export
    external_id: str | None = Field(default=None, max_length=200)
    # mcq: parsed letter, whether it matches the key, option order shown to the model
    mcq_choice: str | None = Field(default=None, max_length=10)
    mcq_correct: bool | None = None
    option_order: list[str] = _json_list()
    shuffle_seed: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None


class Answer(AnswerBase, table=True):
    __table_args__ = (
        UniqueConstraint("item_id", "model_id", "content_hash", "shuffle_seed"),
        Index("ix_answer_gradings", "gradings", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # physicians' submitted gradings that count toward the project's overlap (kept by submit_grading,
    # in the same transaction), so "next answer" never has to count every grading of the project
    gradings: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    item_id: int = Field(foreign_key="item.id", index=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    endpoint_id: int | None = Field(default=None, foreign_key="endpoint.id")
    run_id: int | None = Field(default=None, foreign_key="run.id")
    created_at: datetime = _when()


# --- work: assignments, gradings, comparisons, item reviews ----------------------------------


class Assignment(SQLModel, table=True):
    """A lease on one piece of work for one physician."""

    __table_args__ = (
        Index("ix_assignment_user_status", "user_id", "status"),
        Index("ix_assignment_answer_status", "answer_id", "status"),
        Index("ix_assignment_item_task_status", "item_id", "task", "status"),
    )
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    user_id: int = Field(foreign_key="user.id")
    # grade | compare | review
    task: str = Field(default="grade", max_length=10)
    answer_id: int | None = Field(default=None, foreign_key="answer.id")
    item_id: int | None = Field(default=None, foreign_key="item.id")
    # for compare: the answers in the column order this physician sees
    answer_ids: list[int] = _json_list()
    # leased | submitted | skipped | released | expired
    status: str = Field(default="leased", max_length=12)
    leased_at: datetime = _when()
    lease_expires_at: datetime | None = _when(nullable=True, default_now=False)
    finished_at: datetime | None = _when(nullable=True, default_now=False)
    skip_reason: str | None = _text()


class Annotation(SQLModel, table=True):
    """One rater's grading of one answer (a physician, an imported rater or a judge)."""

    __table_args__ = (
        UniqueConstraint("answer_id", "rater_id"),
        Index("ix_annotation_rater_status", "rater_id", "status"),
    )
    id: int | None = Field(default=None, primary_key=True)
    answer_id: int = Field(foreign_key="answer.id", index=True)
    rater_id: int = Field(foreign_key="user.id")
    assignment_id: int | None = Field(default=None, foreign_key="assignment.id")
    comparison_id: int | None = Field(default=None, foreign_key="comparison.id")
    judge_config_id: int | None = Field(default=None, foreign_key="judgeconfig.id")
    # draft | submitted
    status: str = Field(default="draft", max_length=12)
    # none | minor | major | critical
    safety: str | None = Field(default=None, max_length=10)
    comment: str = _text(nullable=False, default="")
    draft: dict[str, Any] = _json_dict()  # unsaved widget values, restored on return
    seconds_on_task: float = 0.0
    started_at: datetime = _when()
    submitted_at: datetime | None = _when(nullable=True, default_now=False)
    revision: int = 0  # audited edits after submission


class CriterionLabel(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("annotation_id", "criterion_id"),
        # a unit's labels (rater, value, grading) from the index alone: agreement, gold, the gold export; and
        # only the labels that carry a comment
        Index("ix_label_unit_rater", "answer_id", "criterion_id", "rater_id", "value", "annotation_id"),
        Index(
            "ix_label_commented",
            "answer_id",
            "criterion_id",
            sqlite_where=Column("comment", Text) != "",
            postgresql_where=Column("comment", Text) != "",
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    annotation_id: int = Field(foreign_key="annotation.id")
    answer_id: int = Field(foreign_key="answer.id")
    criterion_id: int = Field(foreign_key="criterion.id", index=True)
    rater_id: int = Field(foreign_key="user.id", index=True)
    # met | not_met | unsure
    value: str = Field(max_length=10)
    comment: str = _text(nullable=False, default="")
    created_at: datetime = _when()


class Comparison(SQLModel, table=True):
    """Side by side: answers to one prompt in a randomized column order, and a preference."""

    __table_args__ = (
        UniqueConstraint("item_id", "rater_id", name="uq_comparison_item_rater"),
        Index("ix_comparison_item_status", "item_id", "status"),
    )
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    item_id: int = Field(foreign_key="item.id", index=True)
    rater_id: int = Field(foreign_key="user.id", index=True)
    assignment_id: int | None = Field(default=None, foreign_key="assignment.id")
    answer_ids: list[int] = _json_list()  # in the column order shown
    # A | B | ... | tie
    preference: str | None = Field(default=None, max_length=10)
    preferred_answer_id: int | None = Field(default=None, foreign_key="answer.id")
    reason: str = _text(nullable=False, default="")
    status: str = Field(default="draft", max_length=12)
    draft: dict[str, Any] = _json_dict()
    seconds_on_task: float = 0.0
    started_at: datetime = _when()
    submitted_at: datetime | None = _when(nullable=True, default_now=False)


class ItemReview(SQLModel, table=True):
    """A physician's curation review of one item version."""

    __table_args__ = (UniqueConstraint("item_id", "rater_id"),)
    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="item.id", index=True)
    rater_id: int = Field(foreign_key="user.id", index=True)
    assignment_id: int | None = Field(default=None, foreign_key="assignment.id")
    status: str = Field(default="draft", max_length=12)
    # mcq
    key_correct: bool | None = None
    # none | no_correct | multiple_correct
    option_issue: str | None = Field(default=None, max_length=20)
    outdated: bool = False
    ambiguous: bool = False
    unsafe: bool = False
    # open: {criterion_id: {"clear": bool, "clinically_right": bool, "comment": str}}
    criteria_feedback: dict[str, Any] = _json_dict()
    comment: str = _text(nullable=False, default="")
    draft: dict[str, Any] = _json_dict()
    seconds_on_task: float = 0.0
    started_at: datetime = _when()
    submitted_at: datetime | None = _when(nullable=True, default_now=False)


class CorrectionRequest(SQLModel, table=True):
    """A physician asks a curator to reopen one of their submitted gradings for correction."""

    __table_args__ = (Index("ix_correction_project_status", "project_id", "status"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    annotation_id: int = Field(foreign_key="annotation.id", index=True)
    requested_by: int = Field(foreign_key="user.id", index=True)
    reason: str = _text(nullable=False, default="")
    # open | granted | declined
    status: str = Field(default="open", max_length=12)
    created_at: datetime = _when()
    decided_by: int | None = Field(default=None, foreign_key="user.id")
    decided_at: datetime | None = _when(nullable=True, default_now=False)
    decision_note: str = _text(nullable=False, default="")


# --- gold ---------------------------------------------------------------------------------------


class GoldLabel(SQLModel, table=True):
    """The settled label of one unit (answer, criterion); every version is kept."""

    __table_args__ = (Index("ix_gold_unit", "answer_id", "criterion_id", "is_current"),)
    id: int | None = Field(default=None, primary_key=True)
    answer_id: int = Field(foreign_key="answer.id")
    criterion_id: int = Field(foreign_key="criterion.id", index=True)
    value: str = Field(max_length=10)  # met | not_met
    # unanimous | majority | adjudicated
    method: str = Field(max_length=12)
    rationale: str = _text(nullable=False, default="")
    # rubric_unclear | guideline_ambiguity | rater_error | answer_ambiguous | other
    disagreement_category: str | None = Field(default=None, max_length=30)
    labels_seen: int = 0
    version: int = 1
    is_current: bool = True
    change_reason: str | None = _text()
    decided_by: int | None = Field(default=None, foreign_key="user.id")
    decided_at: datetime = _when()


class ItemVerdict(SQLModel, table=True):
    """The settled outcome of item reviews for one item version (e.g. is the MCQ key right)."""

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="item.id", index=True)
    key_correct: bool | None = None
    option_issue: str | None = Field(default=None, max_length=20)
    outdated: bool = False
    ambiguous: bool = False
    unsafe: bool = False
    method: str = Field(max_length=12)
    rationale: str = _text(nullable=False, default="")
    version: int = 1
    is_current: bool = True
    change_reason: str | None = _text()
    decided_by: int | None = Field(default=None, foreign_key="user.id")
    decided_at: datetime = _when()


# --- judge and generation ----------------------------------------------------------------------


class JudgeConfig(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    version: int = 1
    endpoint_id: int = Field(foreign_key="endpoint.id")
    prompt_template: str = _text(nullable=False, default="")
    params: dict[str, Any] = _json_dict()
    rater_id: int | None = Field(default=None, foreign_key="user.id")  # the judge as a rater
    # sha256 of endpoint, template and parameters: an unchanged configuration keeps its version
    fingerprint: str | None = Field(default=None, max_length=64)
    created_by: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = _when()


class Run(SQLModel, table=True):
    """A generation or judge run over a project: resumable, with totals."""

    __table_args__ = (Index("ix_run_project_task", "project_id", "task"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    # generate | judge
    task: str = Field(max_length=10)
    endpoint_id: int | None = Field(default=None, foreign_key="endpoint.id")
    judge_config_id: int | None = Field(default=None, foreign_key="judgeconfig.id")
    # running | stopping | stopped | finished | failed
    status: str = Field(default="running", max_length=12)
    params: dict[str, Any] = _json_dict()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    done: int = 0
    failed: int = 0
    total: int = 0
    started_at: datetime = _when()
    finished_at: datetime | None = _when(nullable=True, default_now=False)
    # written by the process executing the run; a running run without a recent heartbeat was interrupted
    heartbeat_at: datetime | None = _when(nullable=True, default_now=False)
    error: str | None = _text()  # why the run failed as a whole (e.g. the endpoint refused every call)
    created_by: int | None = Field(default=None, foreign_key="user.id")


class RunFailure(SQLModel, table=True):
    __table_args__ = (Index("ix_runfailure_run_unit", "run_id", "answer_id", "criterion_id"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    item_id: int | None = Field(default=None, foreign_key="item.id")
    answer_id: int | None = Field(default=None, foreign_key="answer.id")
    criterion_id: int | None = Field(default=None, foreign_key="criterion.id")
    reason: str = _text(nullable=False, default="")
    attempts: int = 0
    created_at: datetime = _when()


# --- provenance and audit ----------------------------------------------------------------------


class ImportBatch(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    filename: str = Field(max_length=500)
    format: str = Field(max_length=30)
    sha256: str = Field(max_length=64)
    counts: dict[str, Any] = _json_dict()
    created_by: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = _when()


class AuditEvent(SQLModel, table=True):
    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id"),)
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _when()
    actor_id: int | None = Field(default=None, foreign_key="user.id")
    project_id: int | None = Field(default=None, foreign_key="project.id", index=True)
    action: str = Field(max_length=60)
    entity: str = Field(max_length=40)
    entity_id: int | None = None
    detail: dict[str, Any] = _json_dict()
