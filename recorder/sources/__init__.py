"""Readers of the session files other agents write (Claude Code, Gemini CLI, Codex CLI).

A layer just above `recorder.store`: it imports the store and `recorder.errors` only,
never zmq or textual. Every reader treats each file as untrusted and changing: a bad
line is counted and skipped, never raised (see `model.ReadReport`).
"""
