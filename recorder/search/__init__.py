"""Searching the journal: the query language and the searcher."""
