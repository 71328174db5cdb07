"""Widgets, one module per idea."""
