"""Turning journal ranges into files: one record renderer, export writers, restore bundles."""
