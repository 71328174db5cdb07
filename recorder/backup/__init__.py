"""`persist backup` and `persist restore-backup` (see README)."""
