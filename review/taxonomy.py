"""The default taxonomy of clinical specialties and the item dimensions. Pure."""

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
