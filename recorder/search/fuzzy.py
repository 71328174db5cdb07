"""Typo tolerance: vocabulary words one or two edits away, from the `terms` snapshot
of FTS5's `fts5vocab` (rapidfuzz over the words of nearby lengths; no trigram tables),
less the words found only inside secrets (`docs.secret_words`): a typo of a password
must not print it back as its stand-in."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from recorder.search.index import SearchIndex
from recorder.search.query import Query, TermKind, fold, fts_string

MIN_FUZZY_LEN = 4
FUZZY_TERMS = 24  # vocabulary terms one typo-tolerant word may stand for


class Vocabulary:
    """The index's words by length, read lazily, refreshed with the snapshot."""

    def __init__(self, index: SearchIndex) -> None:
        self.index = index
        self._terms: tuple[tuple[Any, Any], dict[int, list[str]]] | None = None
        self._secret: Counter[str] = Counter()

    def _vocabulary(self, lengths: range) -> dict[int, list[str]]:
        """The `terms` snapshot's words of these lengths (only those are read, in one
        pass), cached by length until the snapshot changes."""
        # both: a snapshot taken after words only left has the same `terms_docs`
        stamp = (self.index.meta("terms_docs"), self.index.meta("terms_version"))
        if self._terms is None or self._terms[0] != stamp:
            self._terms = (stamp, {})
            self._secret = self._secret_words()
        by_len = self._terms[1]
        missing = [n for n in lengths if n not in by_len]
        if missing:
            for n in missing:
                by_len[n] = []
            marks = ",".join("?" * len(missing))
            sql = f"SELECT term, docs FROM terms WHERE length(term) IN ({marks})"
            secret = self._secret
            for term, docs in self.index.query(sql, missing):
                if docs > secret.get(term, 0):  # in a record outside its secrets too
                    by_len[len(term)].append(term)
        return by_len

    def _secret_words(self) -> Counter[str]:
        """How many records hold each word only inside their secrets (at least as many
        as the snapshot counted: the docs are read after it)."""
        counts: Counter[str] = Counter()
        sql = "SELECT secret_words FROM docs WHERE secrets > 0 AND secret_words IS NOT NULL"
        for (words,) in self.index.query(sql):
            counts.update(words.split())
        return counts

    def similar_terms(self, word: str) -> tuple[str, ...]:
        """Vocabulary terms within one typo of `word` (two for 8+ letters), best first."""
        word = fold(word)
        if len(word) < MIN_FUZZY_LEN:
            return ()
        k = 1 if len(word) < 8 else 2
        lengths = range(len(word) - k, len(word) + k + 1)
        vocab = self._vocabulary(lengths)
        found: list[tuple[int, str]] = []
        for n in lengths:
            choices = vocab.get(n)
            if not choices:
                continue
            for term, dist, _i in process.extract(
                word, choices, scorer=Levenshtein.distance, score_cutoff=k, limit=FUZZY_TERMS
            ):
                if term != word:
                    found.append((int(dist), term))
        found.sort()
        return tuple(t for _d, t in found[:FUZZY_TERMS])

    def widen(self, query: Query) -> tuple[str | None, dict[str, tuple[str, ...]]]:
        """`query` with each plain word widened to its typo-tolerant stand-ins."""
        stand_ins: dict[str, tuple[str, ...]] = {}
        parts = []
        widened = False
        for group in query.groups:
            alts = []
            for term in group:
                alts.append(term.fts())
                if term.kind is TermKind.WORD and len(term.tokens) == 1:
                    similar = self.similar_terms(term.tokens[0])
                    if similar:
                        stand_ins[term.text] = similar
                        alts.extend(fts_string(t) for t in similar)
                        widened = True
            parts.append("(" + " OR ".join(alts) + ")")
        if not widened:
            return None, {}
        expr = " AND ".join(parts)
        excluded = query.excluded_fts()
        if excluded:
            expr = f"({expr}) NOT ({excluded})"
        return expr, stand_ins
