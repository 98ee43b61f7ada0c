"""The default taxonomy of clinical specialties, the rules for naming and ordering them, and the item
dimensions. Pure."""

DEFAULT_SPECIALTIES = (
    "Allergy and Immunology",
    "Anesthesiology",
    "Cardiology",
    "Critical Care",
    "Dermatology",
    "Emergency Medicine",
    "Endocrinology",
    "Family Medicine",
    "Gastroenterology",
    "Geriatrics",
    "Hematology",
    "Infectious Disease",
    "Internal Medicine",
    "Nephrology",
    "Neurology",
    "Obstetrics and Gynecology",
    "Oncology",
    "Ophthalmology",
    "Orthopedics",
    "Otolaryngology",
    "Pathology",
    "Pediatrics",
    "Pharmacology",
    "Psychiatry",
    "Pulmonology",
    "Radiology",
    "Rheumatology",
    "Surgery",
    "Urology",
)

DIMENSIONS = {
    "knowledge": "Medical knowledge",
    "safety-ethics": "Safety and ethics",
    "record-understanding": "Understanding records",
    "patient-service": "Serving patients",
    "care": "Care and management",
}

STATUSES = ("draft", "in_review", "approved", "retired")

MAX_SPECIALTY_CHARS = 120


class SpecialtyError(ValueError):
    """A specialty name or change that cannot be made; the message says what is wrong and how to fix it."""


def clean_specialty_name(name: str) -> str:
    """The name with outer spaces removed and inner runs of spaces made one; SpecialtyError when it is empty,
    longer than MAX_SPECIALTY_CHARS, or holds quotation marks, backslashes or control characters. Pure."""
    cleaned = " ".join(str(name or "").split())
    if not cleaned:
        raise SpecialtyError("Name: write the specialty's name; it is empty.")
    if len(cleaned) > MAX_SPECIALTY_CHARS:
        raise SpecialtyError(
            f"Name: at most {MAX_SPECIALTY_CHARS} characters; this one has {len(cleaned)}. Shorten it."
        )
    if any(c in '"\\' or not c.isprintable() for c in cleaned):
        raise SpecialtyError('Name: leave out quotation marks ("), backslashes (\\) and control characters.')
    return cleaned


def same_specialty(first: str, second: str) -> bool:
    """Whether two names are the same specialty: equal ignoring case and outer spaces. Pure."""
    return first.strip().casefold() == second.strip().casefold()


def taken_by(name: str, existing: list[str], *, ignoring: str | None = None) -> str | None:
    """The existing specialty that `name` would duplicate (ignoring case), or None; `ignoring` is the
    specialty being renamed, which may keep its own name in another case. Pure."""
    for other in existing:
        if same_specialty(other, name) and not (ignoring is not None and other == ignoring):
            return other
    return None


def missing_defaults(existing: list[str]) -> list[str]:
    """The default specialties not in `existing` (ignoring case), in the default order. Pure."""
    present = {name.strip().casefold() for name in existing}
    return [name for name in DEFAULT_SPECIALTIES if name.casefold() not in present]


def renamed_in(names: list[str], old: str, new: str) -> list[str]:
    """A specialties list with `old` written `new`, in the same place, each name kept once. Pure."""
    result: list[str] = []
    for name in names:
        replaced = new if name == old else name
        if replaced not in result:
            result.append(replaced)
    return result


def moved(order: list[int], specialty_id: int, step: int) -> list[int]:
    """The specialty ids in their new order after moving one by `step` places (-1 up, +1 down), kept within
    the list; the same order when it cannot move further. Pure."""
    if specialty_id not in order:
        raise SpecialtyError("That specialty no longer exists; reload the page.")
    position = order.index(specialty_id)
    target = min(max(position + step, 0), len(order) - 1)
    result = [i for i in order if i != specialty_id]
    result.insert(target, specialty_id)
    return result
