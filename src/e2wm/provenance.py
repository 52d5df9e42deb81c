"""Where a result came from: content digests of inputs (files, adapters, models) and the software it ran on.

Digests are sha256 hex strings of file bytes. A large file is hashed once per (path, inode, size, mtime,
ctime) and the digest kept in $E2WM_CACHE/digests.json (~/.cache/e2wm), so re-hashing GPT-J's 24 GB of
weights on every eval does not happen; a rewritten file has a new ctime (which `touch` cannot set back)
and is hashed again. What lm-evaluation-
harness records in its results file (versions, git hash, model revision, date) is `environment()`.
"""

import hashlib
import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from e2wm.files import write_json

CHUNK = 1 << 20  # bytes read at a time
CACHED_ABOVE = 64 << 20  # files larger than this (bytes) have their digest cached
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.json", "*.model", "*.txt", "*.gguf")  # what a model directory holds


def _cache_file() -> Path:
    return Path(os.environ.get("E2WM_CACHE", Path.home() / ".cache" / "e2wm")) / "digests.json"


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (hex); cached by (absolute path, inode, size, mtime, ctime) above 64 MiB."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"
    cache = _cache_file()
    known: dict[str, str] = {}
    if stat.st_size > CACHED_ABOVE and cache.is_file():
        try:
            known = json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            known = {}
        if key in known:
            return known[key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    value = digest.hexdigest()
    if stat.st_size > CACHED_ABOVE:
        known[key] = value
        write_json(cache, known)
    return value


def tree_digest(folder: str | Path, patterns: tuple[str, ...] = WEIGHT_PATTERNS) -> str:
    """sha256 over the sorted (relative name, file digest) pairs of the folder's files matching patterns."""
    folder = Path(folder)
    files = sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(folder)}\0{file_digest(file)}\n".encode())
    return digest.hexdigest()


def path_digest(path: str | Path) -> str | None:
    """The digest of a file, or of a folder's model/adapter/data files (every file below it for a data folder);
    None when the path does not exist."""
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    if path.is_dir():
        return tree_digest(path, WEIGHT_PATTERNS + ("**/*.json", "**/*.jsonl"))
    return None


def model_fingerprint(name: str) -> str | None:
    """What identifies a base model before it is loaded: the sha256 of a local (or the embedded) model's
    files, else the commit of a Hub id's cached snapshot, else None (a Hub id not downloaded yet)."""
    from e2wm.models import resolve_model_path

    path = Path(resolve_model_path(name))
    if path.is_dir():
        return tree_digest(path)
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
    except Exception:  # an id the hub library rejects: nothing cached
        return None
    return Path(cached).parent.name if isinstance(cached, str) else None  # .../snapshots/<commit>/config.json


def model_revision(model) -> str | None:
    """The loaded model's Hub commit (transformers records it on the config), else None (a local directory)."""
    config = getattr(model, "config", None)
    return getattr(config, "_commit_hash", None)


def package_versions() -> dict[str, str | None]:
    """Versions of e2wm and the libraries a score depends on (None where one is not installed)."""
    versions = {}
    for name in ("e2wm", "torch", "transformers", "peft", "accelerate", "safetensors", "datasets", "rouge-score",
                 "virtualhome-eval", "vllm", "bitsandbytes"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The commit of the e2wm checkout the package runs from (with '+dirty' for uncommitted changes), else None
    (an installed package: a git repository around it, e.g. a project whose venv holds e2wm, is not e2wm's)."""
    source = Path(__file__).resolve().parent
    try:
        top = subprocess.run(["git", "-C", str(source), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        if (Path(top) / "src" / "e2wm").resolve() != source:
            return None
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def environment(device: str | None = None) -> dict:
    """Software, machine and time of a run: versions, git commit, Python, platform, device, UTC date."""
    import torch

    info = {
        "versions": package_versions(),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if device is not None:
        info["device"] = device
        if device.startswith("cuda") and torch.cuda.is_available():
            info["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return info
