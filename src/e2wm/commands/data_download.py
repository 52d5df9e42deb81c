"""`e2wm data download`: the released E2WM benchmark (11 evaluation and 4 training files), checked against its
sha256 checksums, into the cache where the names e2wm, e2wm:qa, ... find them (e2wm.benchmark_data)."""

from pathlib import Path

from e2wm.benchmark_data import SOURCE, DownloadConfig, default_dir, download

CONFIG = DownloadConfig


def run(config: DownloadConfig) -> None:
    done = download(config)
    stored = sum(item.action == "stored" for item in done)
    folder = Path(config.dest).expanduser() if config.dest else default_dir()
    print(f"{len(done)} files of {SOURCE} in {folder} ({stored} stored now, {len(done) - stored} already there), "
          "each matching its released sha256")
    if not config.dest:
        print("use them by name: e2wm eval --data e2wm (or e2wm:qa, e2wm:gen, e2wm:count, ...); "
              "e2wm train --train paper (or \"1 e2wm:plan_gen 0.7 e2wm:act_recog\")")
