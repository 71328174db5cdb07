"""Claude Code and Gemini CLI on the bus: their hooks run `persist hook EVENT`.

`settings` merges our entries into the agents' settings.json; `run` is the hook
itself (turns), `lifecycle` the session start, compaction and end; `transcript`
reads what a transcript gained, `publish` puts it on the bus, `state` remembers
offsets and sequence numbers between calls, `failures` writes down what went wrong.
The agents' hook contracts, with their sources, are in docs/hooks.md.
"""
