"""`e2wm data prose`: passages of human-written English prose (Jane Austen's novels, from a Debian package) as a
JSONL file for the general-text drift measure (`e2wm eval --ppl-data`); the job is e2wm.prose.make_prose."""

from e2wm.prose import ProseConfig, make_prose

CONFIG = ProseConfig


def run(config: ProseConfig) -> None:
    done = make_prose(config)
    print(f"wrote {done.texts} texts, {done.words} words ({done.words / done.texts:.0f} a text) to {done.path}")
    print(f"source: {done.source}; license: {done.license}")
    print(f"use it as `e2wm eval --ppl-data {done.path}` or `e2wm train --eval-ppl-data {done.path}`; keep it out of "
          "`e2wm fisher --corpus` (the Fisher's text must not be the drift measure's)")
