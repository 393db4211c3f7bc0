"""Automation (DESIGN.md §7): the spec-folder sensor, the report schedule, run-failure monitoring."""
