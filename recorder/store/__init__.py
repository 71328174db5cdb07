"""The log folder on disk: its layout, the journal (writing and reading), checkpoints, status.

Knows nothing of the bus or the daemon (an import contract checks it).
"""
