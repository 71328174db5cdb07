"""The demo's conversation: four agents, one task, a failing test, a lost message, checkpoints.

Plain data, kept apart from the runner (`recorder.launch.demo`) that plays it."""

from __future__ import annotations

from typing import Any

# (agent, topic, payload) lines and ("checkpoint", label) / ("lose", agent) steps.
Step = tuple[str, ...] | tuple[str, str, dict[str, Any]]


SCRIPT: list[Any] = [
    (
        "planner",
        "broadcast.tasks",
        {
            "type": "broadcast",
            "to": "*",
            "text": "New task from the user: rate-limit the public API to 100 requests per minute "
            "per API key. I'll split it up.",
        },
    ),
    (
        "planner",
        "agents.coder.request",
        {
            "type": "request",
            "to": "coder",
            "id": "t1",
            "text": "Please implement a token-bucket limiter as middleware in api/middleware.py; "
            "the key comes from the X-Api-Key header.",
        },
    ),
    (
        "coder",
        "agents.planner.reply",
        {
            "type": "reply",
            "in_reply_to": "t1",
            "text": "On it. Token bucket per key in Redis: 100 tokens, "
            "refilled at 100/60 per second, 429 with Retry-After when empty.",
        },
    ),
    (
        "planner",
        "agents.reviewer.request",
        {
            "type": "request",
            "to": "reviewer",
            "id": "t2",
            "text": "Please look at coder's design before too much code is written.",
        },
    ),
    (
        "reviewer",
        "agents.coder.reply",
        {
            "type": "reply",
            "in_reply_to": "t2",
            "text": "Redis is a new dependency: do we have it in staging? "
            "Either way keep the backend pluggable so tests can use memory.",
        },
    ),
    (
        "coder",
        "agents.reviewer.reply",
        {
            "type": "reply",
            "text": "Staging runs Redis 7. "
            "I'll add a Limiter protocol with memory and Redis backends.",
        },
    ),
    ("checkpoint", "plan agreed"),
    (
        "coder",
        "tools.call",
        {
            "type": "tool_call",
            "tool": "edit_file",
            "args": {"path": "api/middleware.py", "lines_added": 84},
        },
    ),
    (
        "coder",
        "tools.result",
        {
            "type": "tool_result",
            "tool": "edit_file",
            "ok": True,
            "text": "api/middleware.py: +84 -3",
        },
    ),
    (
        "coder",
        "tools.call",
        {
            "type": "tool_call",
            "tool": "run_tests",
            "args": {"cmd": "pytest tests/test_rate_limit.py -q"},
        },
    ),
    (
        "tester",
        "tools.result",
        {
            "type": "tool_result",
            "tool": "run_tests",
            "ok": False,
            "text": "2 failed, 14 passed: test_refill_after_window, test_retry_after_header",
        },
    ),
    (
        "coder",
        "agents.coder.error",
        {
            "type": "error",
            "error": "AssertionError",
            "text": "Retry-After was 0, expected 1 (test_retry_after_header)",
        },
    ),
    (
        "coder",
        "agents.tester.request",
        {
            "type": "request",
            "to": "tester",
            "id": "t3",
            "text": "Does the frozen-clock fixture reach the middleware too?",
        },
    ),
    ("lose", "tester"),  # one of tester's messages never reaches the broker
    (
        "tester",
        "agents.coder.reply",
        {
            "type": "reply",
            "in_reply_to": "t3",
            "text": "It patches time.time, but the limiter reads time.monotonic. Inject the clock.",
        },
    ),
    (
        "coder",
        "tools.call",
        {
            "type": "tool_call",
            "tool": "edit_file",
            "args": {"path": "api/middleware.py", "lines_added": 9, "lines_removed": 4},
        },
    ),
    (
        "coder",
        "tools.call",
        {
            "type": "tool_call",
            "tool": "run_tests",
            "args": {"cmd": "pytest tests/test_rate_limit.py -q"},
        },
    ),
    (
        "tester",
        "tools.result",
        {"type": "tool_result", "tool": "run_tests", "ok": True, "text": "16 passed in 0.41s"},
    ),
    ("checkpoint", "tests green"),
    (
        "coder",
        "agents.reviewer.request",
        {
            "type": "request",
            "to": "reviewer",
            "id": "t4",
            "text": "PR #482 is ready: token bucket, Redis and memory backends, 429 + Retry-After.",
        },
    ),
    (
        "reviewer",
        "agents.coder.reply",
        {
            "type": "reply",
            "in_reply_to": "t4",
            "text": "Looks good. One change: the 429 path logs the raw API key. "
            "Log a hash instead.",
        },
    ),
    (
        "coder",
        "agents.reviewer.reply",
        {
            "type": "reply",
            "in_reply_to": "t4",
            "text": "Fixed in 3f9c2e1: keys are logged as the first 8 hex digits of their SHA-256.",
        },
    ),
    ("reviewer", "agents.planner.reply", {"type": "reply", "text": "Approved and merged."}),
    ("checkpoint", "review approved"),
    (
        "tester",
        "agents.planner.reply",
        {
            "type": "reply",
            "text": "Load test: 1,000 keys at 120 req/min each: 429s start at 100 as expected, "
            "p99 latency +0.4 ms.",
        },
    ),
    (
        "planner",
        "broadcast.tasks",
        {
            "type": "broadcast",
            "to": "*",
            "text": "Rate limiting is live. Next: document the limits in the API guide.",
        },
    ),
]


AGENTS = ("planner", "coder", "reviewer", "tester")
