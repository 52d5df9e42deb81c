"""`e2wm report`: evaluation runs side by side (table + bar chart) and training curves, as markdown + PNG."""

from pathlib import Path

from e2wm.report import report


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="*", metavar="RUN_DIR", help="`e2wm eval` run directories; the first is the "
                        "baseline of the relative changes")
    parser.add_argument("--train-log", nargs="+", default=[], metavar="DIR",
                        help="`e2wm train` directories whose log.jsonl to plot (loss, CE, EWC)")
    parser.add_argument("--out", required=True, help="markdown file; the PNG charts are written beside it")
    parser.add_argument("--title", default="E2WM report")


def run(args) -> None:
    out = Path(args.out)
    text = report([Path(p) for p in args.runs], [Path(p) for p in args.train_log], out, args.title)
    print(text)
    print(f"wrote {out}")
