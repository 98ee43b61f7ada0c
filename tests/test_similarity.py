"""Near-duplicate signatures (review.similarity): the text compared, the word bigrams against a plain
reference, the signatures against datasketch, constructed near-copies of the shared rows against the
threshold, and the highest similarity between distinct shared items."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datasketch import MinHash

from review import similarity

THRESHOLD = 0.7  # Project.duplicate_threshold's default
REPLACEMENTS = ["patient", "acute", "severe", "recent", "mild", "chronic"]
ADDED = " She also reports a recent trip abroad and a new cat at home."


def rows(shared_data: Path, name: str) -> list[dict[str, Any]]:
    with (shared_data / name).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def mcq_text(row: dict[str, Any]) -> str:
    return similarity.item_text("mcq", [], row["question"], row["options"])


def open_text(row: dict[str, Any]) -> str:
    return similarity.item_text("open", row["prompt"], None, None)


def reference_bigrams(text: str) -> set[tuple[str, str]]:
    """The documented words, written plainly: letters and digits (any non-ASCII character but the Unicode
    punctuation blocks counts as a letter), digit runs as "0"; then the distinct pairs of neighbours."""
    cleaned = []
    for char in text.lower():
        code = ord(char)
        if code < 128:
            cleaned.append(char if char.isalnum() else " ")
        elif 0xA0 <= code <= 0xBF or 0x2000 <= code <= 0x206F:
            cleaned.append(" ")
        else:
            cleaned.append(char)
    words = re.sub(r"[0-9]+", "0", "".join(cleaned)).split()
    return set(zip(words, words[1:], strict=False))


def estimate(first: str, second: str) -> float:
    one, _ = similarity.signature(first)
    other, _ = similarity.signature(second)
    return float(similarity.similarities(one, similarity.signature_matrix([other]))[0])


def pairwise(texts: list[str]) -> np.ndarray:
    """Every pair's estimated similarity, compared the plain way (a row against all rows)."""
    matrix = similarity.signature_matrix(value for value, _ in similarity.signatures(texts))
    scores = np.stack([similarity.similarities(matrix[row], matrix) for row in range(len(texts))])
    np.fill_diagonal(scores, 0)
    return scores


def change_words(text: str, rng: random.Random, count: int = 3) -> str:
    words = text.split(" ")
    for position in rng.sample(range(len(words)), count):
        words[position] = REPLACEMENTS[position % len(REPLACEMENTS)]
    return " ".join(words)


def change_numbers(text: str) -> str:
    return re.sub(r"\d+", lambda m: str(int(m.group()) + 5), text)


# --- the text and its shingles -------------------------------------------------------------------------------


def test_mcq_text_is_the_question_and_the_sorted_option_texts():
    """Test that an MCQ's text is its question then its option texts in sorted order, whatever the letters."""
    text = similarity.item_text("mcq", [], "Which drug?", {"A": "Zinc", "B": "Aspirin", "C": "Morphine"})
    assert text == "Which drug?\nAspirin\nMorphine\nZinc"
    swapped = similarity.item_text("mcq", [], "Which drug?", {"C": "Zinc", "A": "Morphine", "B": "Aspirin"})
    assert swapped == text


def test_open_text_is_every_turn_in_order():
    """Test that an open item's text is every turn's content in order, the assistant's turns included."""
    turns = [
        {"role": "user", "content": "My knee hurts."},
        {"role": "assistant", "content": "Since when?"},
        {"role": "user", "content": "Two days."},
    ]
    assert similarity.item_text("open", turns, None, {}) == "My knee hurts.\nSince when?\nTwo days."


def test_shingles_are_the_word_bigrams_of_the_documented_words(shared_data):
    """Test that the shingles of every shared item are exactly its distinct word bigrams, by a plain reference."""
    texts = [mcq_text(r) for r in rows(shared_data, "medqa/medqa_5options_test.jsonl")]
    texts += [open_text(r) for r in rows(shared_data, "healthbench/hard_sample_30.jsonl")]
    texts += [open_text(r) for r in rows(shared_data, "healthbench/context_seeking_consensus_hard_104.jsonl")]
    assert any(not text.isascii() for text in texts)  # curly quotes, dashes, mm³, accents
    for text in texts:
        assert similarity.shingles(text).size == len(reference_bigrams(text)), text[:80]


def test_normalisation_ignores_case_punctuation_numbers_and_spacing():
    """Test that case, punctuation, Unicode quotes and dashes, spacing and the digits themselves do not count."""
    plain = "a 45 year old man has chest pain for 3 days and it's worse"
    noisy = "A  45-year-old MAN has chest pain — for 300 days, and it’s worse!!"
    assert np.array_equal(similarity.shingles(plain), similarity.shingles(noisy))
    assert similarity.signature(plain) == similarity.signature(noisy)
    assert not np.array_equal(similarity.shingles(plain), similarity.shingles(plain.replace("chest", "belly")))


def test_texts_of_fewer_than_two_words_have_no_shingles():
    """Test that empty, blank, one-word and punctuation-only texts have no shingles and count 0."""
    for text in ("", "   ", "Headache", "?!…", "42"):
        assert similarity.shingles(text).size == 0
        assert similarity.signature(text)[1] == 0
    assert similarity.signature("Headache again")[1] == 1


def test_shingles_of_many_texts_never_cross_from_one_text_to_the_next():
    """Test that texts signed together get exactly the signatures each gets alone (no bigram across texts)."""
    texts = ["ends with chest", "pain starts here", "", "chest pain", "one"]
    assert similarity.signatures(texts) == [similarity.signature(text) for text in texts]


# --- signatures --------------------------------------------------------------------------------------------


def test_signatures_are_datasketch_minhashes_of_the_shingles(shared_data):
    """Test that every signature, alone or in bulk, equals datasketch's own MinHash of the same shingles."""
    texts = [mcq_text(r) for r in rows(shared_data, "medqa/medqa_5options_test.jsonl")[:150]]
    texts += [open_text(r) for r in rows(shared_data, "healthbench/hard_sample_30.jsonl")]
    texts += ["", "one", "two words", "naïve café – “quoted” 12 mg"]
    bulk = similarity.signatures(texts)
    for text, (value, count) in zip(texts, bulk, strict=True):
        hashes = similarity.shingles(text)
        independent = MinHash(num_perm=128, seed=1, hashfunc=lambda v: v, scheme="affine32")
        independent.update_batch([int(h) for h in hashes])
        assert value == independent.hashvalues.astype("<u4").tobytes()
        assert len(value) == similarity.SIGNATURE_BYTES == 512
        assert count == hashes.size
        assert similarity.signature(text) == (value, count)


def test_similarity_estimates_jaccard_like_datasketch(shared_data):
    """Test that similarities() gives datasketch's Jaccard estimate for each row, and 1.0 for a copy."""
    texts = [mcq_text(r) for r in rows(shared_data, "medqa/medqa_5options_test.jsonl")[:40]]
    values = [value for value, _ in similarity.signatures(texts)]
    matrix = similarity.signature_matrix(values)
    scores = similarity.similarities(values[0], matrix)
    assert scores[0] == 1.0
    first = MinHash(num_perm=128, seed=1, hashvalues=matrix[0], scheme="affine32")
    for row in range(1, len(texts)):
        other = MinHash(num_perm=128, seed=1, hashvalues=matrix[row], scheme="affine32")
        assert scores[row] == pytest.approx(first.jaccard(other))
    assert similarity.similarities(values[0], similarity.signature_matrix([])).size == 0


def test_agreements_count_equal_values_in_rows_and_in_column_ordered_matrices():
    """Test that agreements counts the equal values of each row exactly as comparing them one by one does,
    for a matrix stored row by row and the same matrix stored column by column, including 0 and 128."""
    rng = np.random.default_rng(5)
    matrix = rng.integers(0, 4, size=(2000, similarity.NUM_PERM), dtype=np.uint32)  # many equal values
    probe = matrix[7].copy()
    matrix[11] = probe
    matrix[12] = probe + 1
    expected = np.array([sum(int(a == b) for a, b in zip(row, probe, strict=True)) for row in matrix.tolist()])
    by_columns = np.ascontiguousarray(matrix.T).T
    assert by_columns.flags.f_contiguous and not by_columns.flags.c_contiguous
    for stored in (matrix, by_columns):
        counts = similarity.agreements(probe, stored)
        assert counts.tolist() == expected.tolist()
        assert (counts[7], counts[11], counts[12]) == (128, 128, 0)
    assert similarity.agreements(probe.tobytes(), by_columns).tolist() == expected.tolist()
    assert similarity.similarities(probe, by_columns).tolist() == (expected / 128).tolist()
    assert similarity.agreements(probe, by_columns[:0]).size == 0


def test_signature_matrix_rejects_a_truncated_signature():
    """Test that stored bytes of the wrong length are refused rather than misread."""
    with pytest.raises(ValueError, match="512 bytes"):
        similarity.signature_matrix([b"\x00" * 100])


# --- candidates: every pair at or above the threshold, without comparing every pair ----------------------------


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.6, 0.7, 0.8, 0.95, 1.0])
def test_band_rows_leave_a_whole_equal_band_for_every_pair_at_the_threshold(threshold):
    """Test that the band size is the largest for which differing values are fewer than bands."""
    rows_per_band = similarity.band_rows(threshold)
    differences = 128 - similarity.agreements_needed(threshold)
    assert 128 // rows_per_band > differences
    assert 128 // (rows_per_band + 1) <= differences
    assert similarity.agreements_needed(threshold) / 128 >= threshold - 1e-12
    assert (similarity.agreements_needed(threshold) - 1) / 128 < threshold


@pytest.mark.parametrize("threshold", [0.4, 0.55, 0.7, 0.76, 0.9])
def test_candidate_pairs_find_every_pair_that_comparing_all_pairs_finds(shared_data, threshold):
    """Test that the banded candidates hold every pair at or above the threshold, as the full comparison says,
    on the MedQA items plus constructed near-copies at every distance."""
    source = rows(shared_data, "medqa/medqa_5options_test.jsonl")
    rng = random.Random(5)
    texts = [mcq_text(r) for r in source]
    for count in range(1, 40):  # copies from nearly identical to far apart
        row = source[count]
        texts.append(similarity.item_text("mcq", [], change_words(row["question"], rng, count), row["options"]))
    matrix = similarity.signature_matrix(value for value, _ in similarity.signatures(texts))
    queries = matrix[1200:]
    full = np.stack([similarity.similarities(queries[row], matrix) for row in range(queries.shape[0])])
    needed = similarity.agreements_needed(threshold)
    expected = {(int(q), int(c)) for q, c in np.argwhere(full * 128 >= needed)}
    rows_q, rows_c = similarity.candidate_pairs(queries, matrix, threshold)
    scores = similarity.pair_similarities(queries, matrix, rows_q, rows_c)
    found = {(int(q), int(c)) for q, c, s in zip(rows_q, rows_c, scores, strict=True) if s * 128 >= needed}
    assert found == expected
    assert len(expected) > queries.shape[0]  # more than each query with itself
    assert len(set(zip(rows_q.tolist(), rows_c.tolist(), strict=True))) == rows_q.size  # each candidate once


# --- the threshold on the shared data -----------------------------------------------------------------------


def test_constructed_near_copies_of_medqa_items_reach_the_threshold(shared_data):
    """Test that MedQA items of 50 words or more stay at or above 0.7 with three words changed, every number
    changed, the options reordered, or a sentence added."""
    rng = random.Random(0)
    checked = 0
    for row in rows(shared_data, "medqa/medqa_5options_test.jsonl")[:300]:
        original = mcq_text(row)
        if len(original.split()) < 50:
            continue
        reordered = dict(zip(row["options"], reversed(list(row["options"].values())), strict=True))
        copies = {
            "three words changed": similarity.item_text("mcq", [], change_words(row["question"], rng), row["options"]),
            "numbers changed": similarity.item_text("mcq", [], change_numbers(row["question"]), row["options"]),
            "options reordered": similarity.item_text("mcq", [], row["question"], reordered),
            "sentence added": similarity.item_text("mcq", [], row["question"] + ADDED, row["options"]),
        }
        for how, copy in copies.items():
            assert estimate(original, copy) >= THRESHOLD, (how, row["question"][:60])
        assert estimate(original, copies["numbers changed"]) == 1.0
        assert estimate(original, copies["options reordered"]) == 1.0
        checked += 1
    assert checked >= 290


def test_constructed_near_copies_of_healthbench_prompts_reach_the_threshold(shared_data):
    """Test that HealthBench conversations of 60 words or more stay at or above 0.7 with three words of the
    last turn changed, its numbers changed, or a sentence added to it."""
    rng = random.Random(1)
    checked = 0
    source = rows(shared_data, "healthbench/hard_sample_30.jsonl")
    source += rows(shared_data, "healthbench/context_seeking_consensus_hard_104.jsonl")
    for row in source:
        original = open_text(row)
        last = row["prompt"][-1]["content"]
        if len(original.split()) < 60 or len(last.split()) < 4:
            continue
        for changed in (change_words(last, rng), change_numbers(last), last + ADDED):
            turns = [*row["prompt"][:-1], {"role": "user", "content": changed}]
            assert estimate(original, similarity.item_text("open", turns, None, None)) >= THRESHOLD
        checked += 1
    assert checked >= 60


def test_distinct_shared_items_stay_below_the_threshold(shared_data):
    """Test the highest similarity between distinct shared items: the two known MedQA near-copies (lines 317 and
    383, a vignette reworded; lines 536 and 1130, one study abstract) reach 0.7, every other pair stays below
    0.55 in MedQA and below 0.1 in the HealthBench Hard sample."""
    medqa = pairwise([mcq_text(r) for r in rows(shared_data, "medqa/medqa_5options_test.jsonl")])
    above = {(int(a) + 1, int(b) + 1) for a, b in np.argwhere(np.triu(medqa) >= THRESHOLD)}  # 1-based lines
    assert above == {(317, 383), (536, 1130)}
    assert medqa[316, 382] == pytest.approx(0.7656, abs=1e-4)
    medqa[[316, 382, 535, 1129], [382, 316, 1129, 535]] = 0
    assert medqa.max() == pytest.approx(0.5469, abs=1e-4)
    hard = pairwise([open_text(r) for r in rows(shared_data, "healthbench/hard_sample_30.jsonl")])
    assert hard.max() == pytest.approx(0.0703, abs=1e-4)
    consensus = pairwise(
        [open_text(r) for r in rows(shared_data, "healthbench/context_seeking_consensus_hard_104.jsonl")]
    )
    assert consensus.max() < 0.15
