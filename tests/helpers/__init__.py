"""Helpers shared by test modules in several folders: `from helpers.<module> import ...` (tests/ is on the path)."""
