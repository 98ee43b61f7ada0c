"""Near-duplicate signatures of items: the text that is compared, its shingles, MinHash signatures.

Pure: text in, signatures and similarities out; no database.

- The text of an item: an `open` item's conversation (every turn's content, in order); an `mcq` item's
  question followed by its option texts in sorted order, so a copy with reordered options (or other
  letters) has the same text.
- Words: the text in lower case, cut at every character that is not a letter or a digit (ASCII
  punctuation, spaces, and the Unicode spaces, dashes, quotes and symbols of U+00A0..U+00BF and
  U+2000..U+206F); every run of the digits 0-9 counts as "0", so a copy with other ages, doses or lab
  values is still a copy.
- Shingles: the word bigrams (two consecutive words), each hashed to 32 bits. On the shared MedQA and
  HealthBench rows, word bigrams separate near-copies from distinct items as well as character 5-grams
  do (constructed near-copies of items of 50 words or more: 0.7 and above, most above 0.8; distinct
  items: at most 0.55, but for two real near-copies in MedQA), with a fifth of the shingles and a far
  lower similarity between unrelated items, which keeps checking a whole import fast. A text of fewer
  than two words has no shingles and is never matched.
- A signature is datasketch's MinHash of the shingle hashes (128 permutations, the `affine32` scheme,
  seed 1), stored as 128 little-endian uint32 values (512 bytes). `signatures` computes the same values
  for many texts at once with numpy. The similarity of two signatures is the fraction of equal values:
  an estimate of the Jaccard similarity of the two shingle sets (standard error about 0.04 near 0.7).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from datasketch import MinHash

NUM_PERM = 128
SIGNATURE_BYTES = NUM_PERM * 4
SIGNATURE_DTYPE = np.dtype("<u4")
SEED = 1
SCHEME = "affine32"

U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


def _byte_classes() -> npt.NDArray[np.uint8]:
    """Each byte of UTF-8 text → the byte it counts as inside a word, or 0 where words are cut."""
    classes = np.zeros(256, dtype=np.uint8)
    for byte in range(256):
        if byte >= 0x80:  # part of a non-ASCII character: a letter unless marked below
            classes[byte] = byte
        elif chr(byte).isdigit():
            classes[byte] = ord("0")
        elif chr(byte).isalpha():
            classes[byte] = ord(chr(byte).lower())
    return classes


_CLASSES = _byte_classes()
_ZERO = ord("0")
# Polynomial hashing of words (byte spans), modulo 2**64: numpy's unsigned arithmetic wraps around.
_RADIX = 0x100000001B3  # odd, so it has an inverse modulo 2**64
_RADIX_INVERSE = pow(_RADIX, -1, 2**64)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_HIGH_HALF = np.uint64(32)
_ITEM_SHIFT = np.uint64(32)
_CHUNK_BYTES = 1 << 20  # texts hashed together, at most (unless one text is longer)
_BLOCK_SHINGLES = 1 << 13  # shingles permuted together: 4 MB of uint32 values, cache-sized
_PERMUTATIONS = MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME).permutations
_EMPTY = np.full(NUM_PERM, np.iinfo(np.uint32).max, dtype=np.uint32)


def _identity(value: int) -> int:
    return value


def item_text(
    kind: str,
    conversation: Iterable[Mapping[str, Any]] | None,
    question: str | None,
    options: Mapping[str, str] | None,
) -> str:
    """The text of an item that near-duplicate checks compare. Pure."""
    if kind == "mcq":
        return "\n".join([question or "", *sorted(str(text) for text in (options or {}).values())])
    return "\n".join(str(turn.get("content") or "") for turn in conversation or ())


def shingles(text: str) -> U32:
    """The distinct 32-bit hashes of the text's word bigrams, sorted. Pure."""
    keys = _shingle_keys([text])
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def signature(text: str) -> tuple[bytes, int]:
    """The text's MinHash signature (512 bytes, datasketch) and its number of distinct shingles. Pure."""
    hashed = shingles(text)
    minhash = MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=_identity, permutations=_PERMUTATIONS, scheme=SCHEME)
    if hashed.size:
        minhash.update_batch(hashed.tolist())
    return minhash.hashvalues.astype(SIGNATURE_DTYPE).tobytes(), int(hashed.size)


def signatures(texts: Sequence[str]) -> list[tuple[bytes, int]]:
    """`signature` of many texts at once (the same values, computed with numpy in bulk). Pure."""
    result: list[tuple[bytes, int]] = []
    start = 0
    while start < len(texts):
        end, size = start, 0
        while end < len(texts) and (end == start or size + len(texts[end]) <= _CHUNK_BYTES):
            size += len(texts[end])
            end += 1
        matrix, counts = _minhash_rows(_shingle_keys(texts[start:end]), end - start)
        matrix = matrix.astype(SIGNATURE_DTYPE)
        result.extend((matrix[row].tobytes(), int(counts[row])) for row in range(end - start))
        start = end
    return result


def _shingle_keys(texts: Sequence[str]) -> U64:
    """Distinct (text index << 32 | bigram hash) keys of the texts' word bigrams, sorted."""
    lowered = [text.lower().encode("utf-8") for text in texts]
    joined = np.frombuffer(b"\n".join(lowered), dtype=np.uint8)
    if joined.size == 0:
        return np.empty(0, dtype=np.uint64)
    classes = _CLASSES[joined]
    if joined.max() >= 0x80:
        _cut_unicode_punctuation(joined, classes)
    in_word = classes != 0
    word_start = in_word.copy()
    word_start[1:] &= ~in_word[:-1]
    kept = in_word.copy()
    kept[1:] &= ~((classes[1:] == _ZERO) & (classes[:-1] == _ZERO))  # a run of digits is one "0"
    characters = classes[kept].astype(np.uint64) + np.uint64(1)
    starts_at = np.flatnonzero(word_start)  # in the joined text
    starts = np.flatnonzero(word_start[kept])  # in the kept characters
    if starts.size < 2:
        return np.empty(0, dtype=np.uint64)
    text_starts = np.cumsum([0] + [len(text) + 1 for text in lowered[:-1]])
    text_of_word = np.searchsorted(text_starts, starts_at, side="right") - 1
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = characters.size
    # prefix[i] = sum of c[j] * radix**j for j < i; a word's hash is (prefix[end] - prefix[start]) / radix**start
    length = characters.size
    powers = np.full(length, _RADIX, dtype=np.uint64)
    powers[0] = 1
    np.cumprod(powers, dtype=np.uint64, out=powers)
    inverse = np.full(length, _RADIX_INVERSE, dtype=np.uint64)
    inverse[0] = 1
    np.cumprod(inverse, dtype=np.uint64, out=inverse)
    prefix = np.zeros(length + 1, dtype=np.uint64)
    np.cumsum(characters * powers, dtype=np.uint64, out=prefix[1:])
    words = (prefix[ends] - prefix[starts]) * inverse[starts]
    same_text = text_of_word[:-1] == text_of_word[1:]
    bigrams = ((words[:-1] * _MIX + words[1:]) * _MIX)[same_text] >> _HIGH_HALF
    owners = text_of_word[:-1][same_text].astype(np.uint64)
    return _distinct((owners << _ITEM_SHIFT) | bigrams)


def _distinct(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The distinct values, sorted (np.unique, without the hashing path that is slower on large arrays)."""
    values = np.sort(values)
    if values.size < 2:
        return values
    new = np.empty(values.size, dtype=bool)
    new[0] = True
    np.not_equal(values[1:], values[:-1], out=new[1:])
    return values[new]


def _cut_unicode_punctuation(joined: npt.NDArray[np.uint8], classes: npt.NDArray[np.uint8]) -> None:
    """Cut words at U+00A0..U+00BF (C2 A0..BF) and U+2000..U+206F (E2 80..81 xx), in place."""
    latin = np.flatnonzero((joined[:-1] == 0xC2) & (joined[1:] >= 0xA0) & (joined[1:] <= 0xBF))
    classes[latin] = 0
    classes[latin + 1] = 0
    general = np.flatnonzero((joined[:-2] == 0xE2) & ((joined[1:-1] == 0x80) | (joined[1:-1] == 0x81)))
    for offset in (0, 1, 2):
        classes[general + offset] = 0


def _fmix32(values: U32) -> U32:
    """MurmurHash3's 32-bit finalizer, as datasketch applies it before its affine32 permutations."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


def _minhash_rows(keys: U64, n_texts: int) -> tuple[U32, npt.NDArray[np.int64]]:
    """MinHash values (n_texts x 128) and shingle counts from sorted (text << 32 | hash) keys."""
    owners = (keys >> _ITEM_SHIFT).astype(np.int64)
    counts = np.bincount(owners, minlength=n_texts)
    matrix = np.tile(_EMPTY[:, None], (1, n_texts))  # one column per text while computing
    mixed = _fmix32((keys & np.uint64(0xFFFFFFFF)).astype(np.uint32))
    a, b = (np.asarray(p, dtype=np.uint32)[:, None] for p in _PERMUTATIONS)
    for start in range(0, keys.size, _BLOCK_SHINGLES):
        block_owners = owners[start : start + _BLOCK_SHINGLES]
        permuted = a * mixed[None, start : start + _BLOCK_SHINGLES] + b  # 128 x block, each row one permutation
        firsts = np.flatnonzero(np.concatenate(([True], block_owners[1:] != block_owners[:-1])))
        segment_owners = block_owners[firsts]
        reduced = np.minimum.reduceat(permuted, firsts, axis=1)
        matrix[:, segment_owners] = np.minimum(matrix[:, segment_owners], reduced)
    return np.ascontiguousarray(matrix.T), counts


def signature_matrix(values: Iterable[bytes]) -> U32:
    """Stored signatures as an (n x 128) uint32 matrix, one row each. Pure."""
    joined = b"".join(values)
    if len(joined) % SIGNATURE_BYTES:
        raise ValueError(f"a signature has {SIGNATURE_BYTES} bytes")
    return np.frombuffer(joined, dtype=SIGNATURE_DTYPE).reshape(-1, NUM_PERM).astype(np.uint32, copy=False)


def agreements(value: bytes | U32, matrix: U32) -> npt.NDArray[np.uint8]:
    """How many of the 128 values of one signature each row of an (n x 128) matrix shares. Pure."""
    row = signature_matrix([value])[0] if isinstance(value, bytes) else value
    if matrix.shape[0] == 0:
        return np.zeros(0, dtype=np.uint8)
    if matrix.flags.f_contiguous and not matrix.flags.c_contiguous:
        # stored column by column: one sweep of each column, counted in bytes (at most 128), three times faster
        count, equal = np.zeros(matrix.shape[0], dtype=np.uint8), np.empty(matrix.shape[0], dtype=np.bool_)
        for column, values in enumerate(matrix.T):
            np.equal(values, row[column], out=equal)
            np.add(count, equal.view(np.uint8), out=count)
        return count
    # counted in bytes: a third faster than np.count_nonzero over the rows
    return np.equal(matrix, row).sum(axis=1, dtype=np.uint8)


def similarities(value: bytes | U32, matrix: U32) -> npt.NDArray[np.float64]:
    """Estimated Jaccard similarity of one signature to each row of an (n x 128) matrix. Pure."""
    return agreements(value, matrix) / NUM_PERM


def agreements_needed(threshold: float) -> int:
    """How many of the 128 signature values two texts must share to reach the threshold. Pure."""
    return int(np.ceil(threshold * NUM_PERM - 1e-9))


def band_rows(threshold: float) -> int:
    """Values per band such that two signatures at or above the threshold agree on a whole band. Pure.

    Two such signatures differ in at most d = 128 - agreements_needed values; cut into 128 // rows
    disjoint bands, more bands than d leaves at least one band with no difference.
    """
    differences = NUM_PERM - agreements_needed(threshold)
    rows = 1
    while NUM_PERM // (rows + 1) > differences:
        rows += 1
    return rows


def candidate_pairs(queries: U32, corpus: U32, threshold: float) -> tuple[I64, I64]:
    """(query row, corpus row) pairs that agree on a whole band, each once. Pure.

    Every pair whose similarity reaches the threshold is among them (see band_rows), so checking the
    candidates finds all matches, as comparing every pair would, without comparing every pair.
    """
    empty = np.empty(0, dtype=np.int64)
    if queries.shape[0] == 0 or corpus.shape[0] == 0:
        return empty, empty
    rows = band_rows(threshold)
    found: list[I64] = []
    width = np.int64(corpus.shape[0])
    for start in range(0, (NUM_PERM // rows) * rows, rows):
        query_keys = _band_keys(queries[:, start : start + rows])
        corpus_keys = _band_keys(corpus[:, start : start + rows])
        order = np.argsort(corpus_keys, kind="stable")
        sorted_keys = corpus_keys[order]
        first = np.searchsorted(sorted_keys, query_keys, side="left")
        counts = np.searchsorted(sorted_keys, query_keys, side="right") - first
        hits = np.flatnonzero(counts)
        if hits.size == 0:
            continue
        per_hit = counts[hits]
        # for each hit h: sorted positions first[h] .. first[h] + counts[h] - 1
        offsets = np.arange(per_hit.sum()) - np.repeat(np.cumsum(per_hit) - per_hit, per_hit)
        corpus_rows = order[np.repeat(first[hits], per_hit) + offsets]
        found.append(np.repeat(hits, per_hit).astype(np.int64) * width + corpus_rows)
    if not found:
        return empty, empty
    pairs = _distinct(np.concatenate(found))
    return pairs // width, pairs % width


def _band_keys(band: U32) -> U64:
    """One 64-bit key per row of a band: equal rows, equal keys (unequal rows rarely collide)."""
    keys = band[:, 0].astype(np.uint64)
    for column in range(1, band.shape[1]):
        keys = keys * _MIX + band[:, column].astype(np.uint64)
    return keys


def pair_similarities(queries: U32, corpus: U32, query_rows: I64, corpus_rows: I64) -> npt.NDArray[np.float64]:
    """Estimated Jaccard similarity of each (query row, corpus row) pair. Pure."""
    similarity = np.empty(query_rows.size, dtype=np.float64)
    step = 100_000  # pairs at a time: 12.8 MB of comparisons
    for start in range(0, query_rows.size, step):
        chunk = slice(start, start + step)
        equal = queries[query_rows[chunk]] == corpus[corpus_rows[chunk]]
        similarity[chunk] = np.count_nonzero(equal, axis=1) / NUM_PERM
    return similarity
