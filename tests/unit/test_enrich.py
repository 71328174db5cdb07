"""Enrichment rules files: what the recorder would crash on, or silently misread, is
refused by file, rule and key."""

from __future__ import annotations

import re

import pytest

from recorder.daemon.enrich import Enricher
from recorder.errors import BadOption


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ("[[chain]]\ntype = 'x'\nkeys = 5\n", "[[chain]] rule 1: keys is not a list of strings"),
        ("[[chain]]\nkeys = ['a']\n", "[[chain]] rule 1: type is missing or not a string"),
        ("[[ace]]\nlayer = '2'\n", "[[ace]] rule 1: layer is missing or not a whole number"),
        ("[[ace]]\nlayer = 2\nkeyword = ['x']\n", "keyword is not a rule key"),
        ("[[tags]]\ntag = 't'\nvalues = { a = { b = 1 } }\n", "values is not a table of values"),
        ("[settings]\nscan_bytes = 'lots'\n", "settings.scan_bytes is not a whole number"),
        ("[settings]\nscan_bytes = -1\n", "settings.scan_bytes is not a whole number"),
        ("[settings]\nsender_keys = 'from'\n", "settings.sender_keys is not a list of strings"),
        ("[settings]\nscanbytes = 64\n", "settings.scanbytes is not a setting"),
        ("chain = 5\n", "chain is not a list of rules"),
        ("[chains]\n", "chains is not a table of rules"),
        ("garbage [[[", "is not valid TOML"),
    ],
)
def test_rules_that_would_crash_or_never_match_are_refused_by_name(toml: str, problem: str) -> None:
    with pytest.raises(BadOption, match=re.escape(problem)):
        Enricher.from_toml(toml, "my.toml")


def test_the_default_rules_pass_their_own_check() -> None:
    assert Enricher.load().rules
