"""e2wm: language models meet world models (embodied experiences, EWC-LoRA, E2WM evaluation)."""

__version__ = "0.1.0"
