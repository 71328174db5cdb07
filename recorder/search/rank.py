"""Relevance for a few hundred candidates, computed here instead of by FTS5's bm25.

FTS5's bm25() first counts every record holding each word or phrase (its IDF):
for a common word that is a scan of its whole doclist, for a phrase of common
words an evaluation of the phrase over the whole index (30-180 ms on 1M messages).
Here the candidates' texts (read from the journal for their snippets anyway) give
the term frequencies and lengths, and the vocabulary snapshot (`terms`) the
document frequencies of single words; a phrase or a prefix counts as rare as the
query's own matches. The formula is BM25's (k1 = 1.2, b = 0.75).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from recorder.search.query import Query, Term, TermKind, tokenize

K1 = 1.2
B = 0.75


def term_count(term: Term, tokens: list[str]) -> int:
    """How often `term` occurs in a text's tokens (a phrase: its tokens in a row)."""
    want = term.tokens
    if not want:
        return 0
    if len(want) == 1:
        if term.kind is TermKind.PREFIX:
            return sum(1 for t in tokens if t.startswith(want[0]))
        return tokens.count(want[0])
    n = len(want)
    last = want[-1]
    found = 0
    for i in range(len(tokens) - n + 1):
        if tokens[i : i + n - 1] == list(want[:-1]):
            tok = tokens[i + n - 1]
            if tok == last or (term.kind is TermKind.PREFIX and tok.startswith(last)):
                found += 1
    return found


def bm25(
    texts: Mapping[int, str],
    query: Query,
    *,
    total_docs: int,
    doc_freq: Mapping[str, int],
    matched: int,
) -> dict[int, float]:
    """Score of each candidate (higher is more relevant)."""
    terms = [t for group in query.groups for t in group]
    tokens = {doc: list(tokenize(text)) for doc, text in texts.items()}
    if not tokens:
        return {}
    avg = max(1.0, sum(len(t) for t in tokens.values()) / len(tokens))
    n = max(total_docs, matched, 1)
    idf = {}
    for term in terms:
        single = len(term.tokens) == 1 and term.kind is TermKind.WORD
        df = doc_freq.get(term.tokens[0], matched) if single and term.tokens else matched
        df = max(1, min(df, n))
        idf[term] = math.log(1 + (n - df + 0.5) / (df + 0.5))
    scores = {}
    for doc, toks in tokens.items():
        norm = K1 * (1 - B + B * len(toks) / avg)
        score = 0.0
        for term in terms:
            tf = term_count(term, toks)
            if tf:
                score += idf[term] * tf * (K1 + 1) / (tf + norm)
        scores[doc] = score
    return scores
