"""Replies a loopback model gives in tests: a judge verdict for grader prompts, a letter for multiple-choice
questions, draft rubric criteria for rubric drafting prompts (`drafting`), a short clinical answer otherwise.
Used as `StubServer(reply=...)`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

RUBRIC_ITEM = re.compile(r"# Criterion\s*\n+\s*\[(-?\d+)\] (.*)")
OPTION_LINE = re.compile(r"^([A-Z])\. (.*)$", re.MULTILINE)
DRAFTED_CONVERSATION = re.compile(r"<conversation>\n(.*)\n</conversation>", re.DOTALL)
OPEN_ANSWER = "Rest, fluids, and see a doctor within a day if the fever rises above 39 C or the child stops drinking."


def last_user_text(request: dict[str, Any]) -> str:
    """The content of the request's last user message."""
    messages = request.get("messages") or []
    return str(next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), ""))


def judge_verdict(request: dict[str, Any]) -> str | None:
    """For a grader prompt: met when the criterion's points are positive, in a json fence; else None."""
    found = RUBRIC_ITEM.search(last_user_text(request))
    if found is None:
        return None
    met = int(found.group(1)) > 0
    verdict = {"explanation": f"Checked against: {found.group(2)[:60]}", "criteria_met": met}
    return "```json\n" + json.dumps(verdict) + "\n```"


def choosing(correct_texts: Iterable[str]) -> Callable[[dict[str, Any]], str]:
    """A model that picks, in a multiple-choice prompt, the shown option whose text is one of `correct_texts`
    (else A), judges grader prompts, and answers open questions."""
    wanted = set(correct_texts)

    def reply(request: dict[str, Any]) -> str:
        verdict = judge_verdict(request)
        if verdict is not None:
            return verdict
        text = last_user_text(request)
        options = OPTION_LINE.findall(text)
        if options and "Answer: <letter>" in text:
            letter = next((letter for letter, option in options if option in wanted), "A")
            return f"Looking at the options, the best fit is clear.\nAnswer: {letter}"
        return OPEN_ANSWER

    return reply


def knowing(rows: Iterable[dict[str, Any]]) -> Callable[[dict[str, Any]], str]:
    """A model that knows MedQA rows (`question`, `options`, `answer_idx`): for the question asked it picks the
    shown option that is the row's key; it judges grader prompts and answers open questions like `choosing`."""
    keys = {row["question"].strip(): _first_line(row["options"][row["answer_idx"]]) for row in rows}
    fallback = choosing([])

    def reply(request: dict[str, Any]) -> str:
        text = last_user_text(request)
        question = text.rsplit("\n\nA. ", 1)[0].strip()
        if "Answer: <letter>" in text and question in keys:
            shown = OPTION_LINE.findall(text.rsplit("\n\nA. ", 1)[1].join(["A. ", ""]))
            letter = next((letter for letter, option in shown if option.strip() == keys[question]), "A")
            return f"Answer: {letter}"
        return fallback(request)

    return reply


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else ""


def always_first(request: dict[str, Any]) -> str:
    """A model that always answers A to multiple choice (so shuffling changes its accuracy)."""
    return judge_verdict(request) or ("Answer: A" if "Answer: <letter>" in last_user_text(request) else OPEN_ANSWER)


def rubric_drafts(request: dict[str, Any]) -> str | None:
    """For a rubric drafting prompt (review/rubric_drafting.py): four criteria, the first quoting the start of the
    conversation's last user turn, as a fenced JSON object with prose around it; else None."""
    text = last_user_text(request)
    found = DRAFTED_CONVERSATION.search(text)
    if found is None or "rubric criteria" not in text:
        return None
    turns = json.loads(found.group(1))
    question = next(turn["content"] for turn in reversed(turns) if turn["role"] == "user")
    criteria = [
        {"criterion": f"Answers the question asked: {question[:40]}", "points": 6, "axis": "completeness"},
        {
            "criterion": "Advises urgent in-person care for red flags such as trouble breathing or confusion.",
            "points": 8,
            "axis": "accuracy",
        },
        {
            "criterion": "Recommends a prescription-only medicine without a clinician's assessment.",
            "points": -7,
            "axis": "accuracy",
        },
        {"criterion": "Uses plain language a parent can follow.", "points": 3, "axis": "communication quality"},
    ]
    return "Here is a draft rubric.\n```json\n" + json.dumps({"criteria": criteria}) + "\n```\nEdit as needed."


def drafting(request: dict[str, Any]) -> str:
    """A model that drafts rubric criteria for drafting prompts and otherwise behaves like `choosing([])`."""
    return rubric_drafts(request) or choosing([])(request)
