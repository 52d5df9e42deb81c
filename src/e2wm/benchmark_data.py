"""The released E2WM benchmark files: where they come from, their checksums, the cache that holds them, and the
names that mean them everywhere (`--data e2wm`, `--data e2wm:qa`, `--train "1 e2wm:plan_gen"`, `--train paper`).

The authors' repository has no license file, so e2wm never ships the files: `e2wm data download` fetches the 11
evaluation and 4 training files at run time from the pinned commit, or copies them from a local copy (`--from`),
checks each against its sha256 and size below before it is stored (a mismatch is an error naming the file, and
nothing is stored), and writes them to $E2WM_CACHE/data/e2wm (~/.cache/e2wm/data/e2wm) in the repository's
layout below its data/ folder: eval/qa/count.json, eval/gen/plan_gen.json, train/train_count.json. The names
read only that folder, and check every file they use against the table again (a few MB: milliseconds).

Source of the table: the sha256, size in bytes and path of each file at the pinned commit
(`../shared/e2wm-benchmark/SHA256SUMS`, checked against a checkout of that commit).
"""

import http.client
import io
import logging
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from e2wm import config
from e2wm.benchmark import TASKS, TRAINING_TASKS
from e2wm.config import option
from e2wm.errors import InputError
from e2wm.files import output_folder
from e2wm.provenance import file_digest

logger = logging.getLogger(__name__)

REPOSITORY = "szxiangjn/world-model-for-language-model"
COMMIT = "57c90009cc6015de5e77d01deeff976a24e6334e"  # 2024-07-10, the repository's last commit
RAW_URL = "https://raw.githubusercontent.com/{repository}/{commit}/{path}"
NAME = "e2wm"  # the benchmark's name in --data and --train: e2wm, e2wm:qa, e2wm:gen, e2wm:<task>
GROUPS = {"qa": "multiple_choice", "gen": "generation"}  # e2wm:qa, e2wm:gen: the evaluation files of that kind
TIMEOUT = 60.0  # seconds a download waits for the server


@dataclass(frozen=True)
class ReleasedFile:
    """One file of the released benchmark: its path in the repository, its sha256 (hex) and size (bytes)."""

    path: str  # data/eval/qa/count.json
    sha256: str
    size: int

    @property
    def local(self) -> str:
        """Its path in the cache (and in a local copy laid out like it): eval/qa/count.json."""
        return self.path.removeprefix("data/")

    @property
    def training(self) -> bool:
        return self.path.startswith("data/train/")

    @property
    def task(self) -> str:
        """Its task's name: count for eval/qa/count.json and for train/train_count.json."""
        return Path(self.path).stem.removeprefix("train_") if self.training else Path(self.path).stem


RELEASED: tuple[ReleasedFile, ...] = (
    ReleasedFile("data/eval/gen/obj_move_path.json",
                 "080d1121f36fec578ee65b717035b91d70fcd65efb50a94ae88ec6aeef74db42", 413484),
    ReleasedFile("data/eval/gen/plan_gen.json",
                 "409b5fbaec756f8296c1b01c13cfe834463292c3141055ddc2cf478dac57a2c7", 185454),
    ReleasedFile("data/eval/gen/plan_gen_confusing.json",
                 "9577e8f26eac7da2121339d1ce57125495316fe8b56b558ea168c42470b825d2", 162988),
    ReleasedFile("data/eval/gen/plan_gen_unseen.json",
                 "aa27c3b0bfb58bdcad2a9ef8dfedbf45d976031e89265f9d0784ba782a1ec0ed", 58149),
    ReleasedFile("data/eval/gen/plan_gen_unseen_confusing.json",
                 "b5bf240bcfb18825d11a67ab9b8ec16db71a0ebbd71436ffd4362c41b046c428", 53255),
    ReleasedFile("data/eval/qa/act_infer.json",
                 "c782736e98279d0333824d0bb65db7638f06b992db0d28214060cd21563d175f", 597758),
    ReleasedFile("data/eval/qa/act_recog.json",
                 "d800aad4d0a81279755315cdfd8397667a7f843a003db4b3fca92c0bc151ddbd", 486592),
    ReleasedFile("data/eval/qa/count.json",
                 "849b1a24c7dd0950939e1c6b82a69db3fb1f2861a942dcb4f34d5ac2bb27545a", 618739),
    ReleasedFile("data/eval/qa/housework_qa.json",
                 "c85b24dd0083020b8f5df4bf85bcf749d55cb05dd39e0d82c6ee7518beffc5a5", 253859),
    ReleasedFile("data/eval/qa/neg_housework_qa.json",
                 "9bfabfbe7f3b4e4ae7394fdb4521d331807c80f2b13120880d46de7a4bbf98fb", 244078),
    ReleasedFile("data/eval/qa/obj_move.json",
                 "6e87722579a7f247b37c9cce5b54e5c8fb4cb0ab8cfa43f47ebd8f66630d27a0", 248595),
    ReleasedFile("data/train/train_act_recog.json",
                 "8029fc2e79e41a7fb107cd2648cbe13a57730cc75a3c385b94c4b7e393497016", 1053376),
    ReleasedFile("data/train/train_count.json",
                 "87e957c62503a2b1d2df7855f02d4e9230509189fd4eb81bbcb42f039dd60cd0", 2601115),
    ReleasedFile("data/train/train_obj_move.json",
                 "7373b74a4f7bccccadc31c7353752f1cb33a6769a0223e6b5ac2e7e5065e6417", 2059417),
    ReleasedFile("data/train/train_plan_gen.json",
                 "7518ddca8c05e62ef6e2a91d4376d6e5a14007580a739f819269750bfc07bda9", 1803029),
)
SOURCE = f"github.com/{REPOSITORY} at commit {COMMIT[:7]}"  # for messages and reports
GET = f"run `e2wm data download` (or `e2wm data download --from DIR` with a copy of the data/ folder of {SOURCE})"


def released_files() -> tuple[ReleasedFile, ...]:
    """The table above (read at call time, so that tests can put a table of their own fixture files in its place)."""
    return RELEASED


def default_dir() -> Path:
    """Where the files are stored and where the names find them: $E2WM_CACHE/data/e2wm (~/.cache/e2wm/data/e2wm)."""
    from e2wm.models import cache_dir  # models imports torch: only when a name is resolved

    return cache_dir() / "data" / NAME


def is_name(text: str) -> bool:
    """Whether a --data or --train item names the released benchmark (e2wm, e2wm:...) rather than a path."""
    return text == NAME or text.startswith(NAME + ":")


def eval_selection(name: str) -> list[ReleasedFile]:
    """The evaluation files a --data name means: e2wm (all 11), e2wm:qa (multiple choice), e2wm:gen (generation),
    e2wm:<task> (one file), in the table's order.

    Raises:
        InputError: for another name, listing those there are.
    """
    evaluation = [file for file in released_files() if not file.training]
    selector = name.removeprefix(NAME).removeprefix(":")
    if not selector:
        return evaluation
    if selector in GROUPS:
        chosen = [file for file in evaluation if TASKS[file.task].kind == GROUPS[selector]]
    else:
        chosen = [file for file in evaluation if file.task == selector]
    if not chosen:
        names = ", ".join([f"{NAME}:{group}" for group in GROUPS] + [f"{NAME}:{file.task}" for file in evaluation])
        raise InputError(f"--data {name}: not a part of the E2WM benchmark; the names are {NAME} (every evaluation "
                         f"file), {names}")
    return chosen


def training_file(task: str) -> ReleasedFile:
    """The released training file of a task (plan_gen, act_recog, count, obj_move).

    Raises:
        InputError: for another task, listing the four.
    """
    found = next((file for file in released_files() if file.training and file.task == task), None)
    if found is None:
        names = ", ".join(f"{NAME}:{name}" for name in TRAINING_TASKS)
        given = NAME if task == NAME else f"{NAME}:{task}"  # `--train "1 e2wm"`: the bare name, not e2wm:e2wm
        raise InputError(f"--train: {given}: the E2WM benchmark has no such training file; it has {names} (or "
                         f"--train paper: the paper's mixture of the four)")
    return found


def mismatch(path: Path, file: ReleasedFile) -> str | None:
    """Why path is not the released file (its size, else its sha256), or None when it is."""
    size = path.stat().st_size
    if size != file.size:
        return f"{size} bytes where the released {file.local} has {file.size}"
    digest = file_digest(path)
    if digest != file.sha256:
        return f"sha256 {digest[:12]}... where the released {file.local} has {file.sha256[:12]}..."
    return None


def cached(files: list[ReleasedFile], option_name: str) -> list[Path]:
    """The cached copies of files, each checked against the table.

    Raises:
        InputError: one line: a file missing from the cache (saying to run `e2wm data download`), or a cached
            file that differs from the released one (naming it).
    """
    folder = default_dir()
    missing = [file.local for file in files if not (folder / file.local).is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(f"{option_name}: the E2WM benchmark is not in {folder} (missing: {missing[0]}{more}): {GET}")
    paths = []
    for file in files:
        path = folder / file.local
        problem = mismatch(path, file)
        if problem:
            raise InputError(f"{path}: {problem}; not used: run `e2wm data download` to replace it")
        paths.append(path)
    return paths


def eval_files(name: str) -> list[Path]:
    """The cached evaluation files a --data name means (`eval_selection`), checked (`cached`)."""
    return cached(eval_selection(name), f"--data {name}")


def training_path(task: str, option_name: str | None = None) -> Path:
    """The cached training file of a task (`training_file`), checked (`cached`); option_name (default
    '--train e2wm:<task>') begins an error's line."""
    return cached([training_file(task)], option_name or f"--train {NAME}:{task}")[0]


@dataclass(kw_only=True)
class DownloadConfig:
    """`e2wm data download` / `download(DownloadConfig())`: the released E2WM files, checked, into the cache."""

    dest: str | None = option(None, "store the files in this folder instead of the cache (default: "
                              "$E2WM_CACHE/data/e2wm, ~/.cache/e2wm/data/e2wm, where the names e2wm, e2wm:qa, "
                              "e2wm:<task> and --train paper find them)", metavar="DIR")
    source: str | None = option(None, f"copy the files from this local folder instead of downloading them: the "
                                f"repository {REPOSITORY} (DIR/data/eval/qa/count.json, ...), its data/ folder or "
                                "a folder laid out like the cache (DIR/eval/qa/count.json, DIR/train/...)",
                                flag="--from", metavar="DIR")

    def __post_init__(self) -> None:
        config.check(self)


@dataclass
class Stored:
    """What `download` did with one file: stored (new or replaced) or kept (already there and right)."""

    file: ReleasedFile
    path: Path
    action: str  # "stored" or "kept"


def candidates(folder: Path, file: ReleasedFile) -> list[Path]:
    """Where a local copy may hold file: the repository's layout (data/eval/qa/count.json) or the cache's
    (eval/qa/count.json)."""
    return [folder / file.path, folder / file.local]


def open_url(url: str) -> BinaryIO:
    """The response to a GET of url (a file-like object of bytes); OSError (URLError) when it cannot be had."""
    return urllib.request.urlopen(url, timeout=TIMEOUT)


def offline(url: str, error: Exception) -> InputError:
    """The one-line error when a file cannot be downloaded: what to fetch by other means, and where to put it."""
    reason = getattr(error, "reason", None) or error
    return InputError(f"cannot download {url} ({reason}); where the network is, get the data/ folder of {SOURCE} "
                      f"(https://github.com/{REPOSITORY}/tree/{COMMIT}/data: {len(released_files())} files in eval/ "
                      "and train/), put it here as DIR/data, and run `e2wm data download --from DIR`")


def store(source: BinaryIO, target: Path, file: ReleasedFile) -> str | None:
    """Copy source's bytes to target if they are the released file's; the file appears whole or not at all.

    Returns:
        None when stored, else why not (`mismatch`); a mismatching copy leaves target as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            shutil.copyfileobj(source, out)
        problem = mismatch(Path(staging), file)
        if problem is None:
            os.replace(staging, target)
        return problem
    finally:
        Path(staging).unlink(missing_ok=True)


def download(settings: DownloadConfig) -> list[Stored]:
    """Store every released file in settings.dest (default `default_dir`), from settings.source or the pinned
    commit; files already there and right are kept. Each file is checked against the table before it is stored.

    Returns:
        per file, in the table's order, its path and whether it was stored or kept.
    Raises:
        InputError: one line: a download failed (what to get instead and where to put it, `offline`); or, after
            every other file was stored, files missing from the local copy or differing from the released ones
            (the first with its reason, the others by name).
    """
    dest = output_folder(Path(settings.dest).expanduser(), "--dest") if settings.dest else default_dir()
    folder = Path(settings.source).expanduser() if settings.source else None
    if folder is not None and not folder.is_dir():
        raise InputError(f"--from {folder}: no such folder")
    done: list[Stored] = []
    problems: list[tuple[bool, str, str]] = []  # (missing from the local copy, file, why not stored)
    for file in released_files():
        target = dest / file.local
        if target.is_file() and mismatch(target, file) is None:
            logger.info("%s: kept (already there, sha256 checked)", target)
            done.append(Stored(file, target, "kept"))
            continue
        if folder is None:
            url = RAW_URL.format(repository=REPOSITORY, commit=COMMIT, path=file.path)
            try:
                with open_url(url) as response:
                    received = response.read()  # a few MB at most; a broken transfer fails here, not on disk
            except (OSError, http.client.HTTPException) as error:
                raise offline(url, error) from None
            problem = store(io.BytesIO(received), target, file)
            where = url
        else:
            found = next((path for path in candidates(folder, file) if path.is_file()), None)
            if found is None:
                problems.append((True, file.local, f"{folder} has no {file.local} (nor {file.path})"))
                continue
            with found.open("rb") as handle:
                problem = store(handle, target, file)
            where = str(found)
        if problem:
            problems.append((False, file.local, f"{where}: {problem}"))
            continue
        logger.info("%s: stored (%d bytes, sha256 checked)", target, file.size)
        done.append(Stored(file, target, "stored"))
    if problems:
        problems.sort(key=lambda problem: problem[0])  # files that differ first, then missing ones
        others = ", ".join(local for _, local, _ in problems[1:])
        more = f"; also {others}" if others else ""
        total = len(released_files())
        raise InputError(f"{len(problems)} of the {total} E2WM files not stored: {problems[0][2]}{more}")
    return done
