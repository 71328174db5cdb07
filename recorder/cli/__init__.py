"""`persist`: one module per command group; `python -m recorder.cli` runs it."""
