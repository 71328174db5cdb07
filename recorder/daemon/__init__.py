"""The recorder process: its core loop, options, enrichment, control requests, runner, spawning."""
