"""Readers of the session files other agents write (Claude Code, Gemini CLI, Codex CLI).

A layer just above `recorder.store`: it imports the store and `recorder.errors` only,
never zmq or textual. Every reader treats each file as untrusted and changing: a bad
line is counted and skipped, never raised (see `model.ReadReport`).

Entry points:
- `claude.read_transcript(path)`, `gemini.read_transcript(path)`,
  `codex.read_transcript(path)` -> `model.Transcript` (`session`, `messages`,
  `sidechain`, `report`); `claude.parse_file` + `claude.active_chain`
  (from `claude_chain`) for the raw lines.
- `discover.Roots.default()`, `discover.scan(roots, cache_path)` -> every `model.Session`
  newest first; `discover.read_session(session)`; `discover.iter_messages(roots)`.
- `journal_view.to_records(messages)` -> `recorder.store.reader.Record`s that
  `recorder.export.render.view` / `record_text` render like journal records.
- `listing.list_sessions`, `copies.protect` / `read_copy` / `list_copies`,
  `fork.fork`, `monitor.decide` / `Monitor`.
"""
