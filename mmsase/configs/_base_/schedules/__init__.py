"""Bases of the new-style configs (read by mmengine, not imported)."""
