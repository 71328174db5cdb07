"""md, html and csv exports (and a restore bundle's transcript) show a message's JSON
from the bytes the journal keeps: numbers as sent (an integer past 64 bits, `10.50`,
`1E2`, `-0`) and a repeated key each time, where orjson's reading would change them."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import subprocess
import sys

import orjson
import zmq

from tests.support import Bus, journal_records, wait_for

NUMBERS = (
    b'{"text":"order placed","order_id":123456789012345678901234567890,'
    b'"n2":18446744073709551617,"amount":10.50,"exp":1E2,"neg":-0,'
    b'"items":[{"sku":"a","qty":1,"qty":2}],"ok":true,"none":null}'
)
# spaces after separators (as Python's json.dumps writes), and nothing orjson changes
SPACED = b'{"text": "spaced", "tool": {"name": "bash", "args": ["-c", "ls"]}, "n": 3}'
# no text: a list (and search) shows the JSON on one line, the envelope left out
NO_TEXT = b'{"_persist": {"pub": "p9", "seq": 1}, "price": 1.10, "code": 7}'
MULTI = [b"orders.multi", b"hdr", b'{"text":"multi","order_id":123456789012345678901234567890}']


def persist(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args], capture_output=True, timeout=60
    )


def pairs_of(text: str) -> list[tuple[str, object]]:
    """A JSON object's members in order, numbers as their text, repeated keys kept."""
    return json.loads(  # type: ignore[no-any-return]
        text, object_pairs_hook=list, parse_float=str, parse_int=str
    )


def test_exports_show_numbers_and_repeated_keys_as_sent(bus: Bus) -> None:
    bus.start_broker()
    bus.start_recorder()
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.linger = 1000
    pub.connect(bus.front)
    try:
        assert pub.poll(5000)
        for payload in (NUMBERS, SPACED, NO_TEXT):
            pub.send_multipart([b"orders", payload])
        pub.send_multipart(MULTI)
        wait_for(
            lambda: sum(r["kind"] == "msg" for r in journal_records(bus.log_dir)) == 4,
            what="messages written",
        )
    finally:
        pub.close()
        ctx.term()
    log = ("--log-dir", str(bus.log_dir))
    made = persist("checkpoint", *log)
    assert made.returncode == 0, made.stderr
    restored = persist("restore", "latest", *log)
    assert restored.returncode == 0, restored.stderr
    (bundle,) = (bus.log_dir / "restore").iterdir()
    shown = {"transcript.md": (bundle / "transcript.md").read_text()}
    for fmt in ("md", "html", "csv"):
        out = persist("export", "--all", "--format", fmt, *log)
        assert out.returncode == 0, out.stderr
        shown[fmt] = out.stdout.decode()
    shown["html"] = html.unescape(shown["html"])
    body = [  # the payload less its text, as the transcript's JSON block shows it
        ("order_id", "123456789012345678901234567890"),
        ("n2", "18446744073709551617"),
        ("amount", "10.50"),
        ("exp", "1E2"),
        ("neg", "-0"),
        ("items", [[("sku", "a"), ("qty", "1"), ("qty", "2")]]),
        ("ok", True),
        ("none", None),
    ]
    for name in ("md", "html", "transcript.md"):
        text = shown[name]
        blocks = re.findall(r"\{\n  \"order_id\".*?\n\}", text, re.S)
        assert [pairs_of(b) for b in blocks] == [body], (name, blocks)
        assert '"amount": 10.50,\n  "exp": 1E2,' in text  # written as orjson indents
        # orjson's writing where it changes nothing
        assert '{\n  "tool": {\n    "name": "bash",\n    "args": [\n      "-c",' in text, name
        assert '"n": 3\n}' in text, name
        assert "1.2345678901234568e+29" not in text and "10.5," not in text, name
        assert '"order_id":123456789012345678901234567890' in text, name  # the multi-frame
    rows = list(csv.DictReader(io.StringIO(shown["csv"])))
    payloads = [r["payload"].encode() for r in rows if r["kind"] == "msg"]
    assert payloads == [NUMBERS, SPACED, NO_TEXT, MULTI[-1]]  # the frames as sent
    assert rows[-1]["text"] == "hdr │ multi"
    listed = persist("search", "code", "--json", *log)  # the one-line form of NO_TEXT
    assert listed.returncode == 0, listed.stderr
    (hit,) = orjson.loads(listed.stdout)["hits"]
    assert hit["snippet"] == '{"price":1.10,"code":7}'
