"""`python -m e2wm` (also what `accelerate launch -m e2wm` runs)."""

from e2wm.cli import main

if __name__ == "__main__":
    main()
