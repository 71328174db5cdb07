"""Searching the journal through a derived SQLite FTS5 index.

`engine.SearchEngine` (and `engine.search`, the one-call API) is the one engine
behind the CLI and the TUI; `query` the query language; `index` the index file
and `index.Document`, the typed shape every source is indexed as; `indexer`
keeps the index level with the journal; `stats` counts metadata.
"""
