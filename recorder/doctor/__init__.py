"""`persist doctor`: checks a log folder and repairs its derived files (see README)."""
