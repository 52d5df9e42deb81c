"""The world model: the VirtualHome evolving-graph simulator behind a small API (programs, facts, English)."""
