"""Run collection jobs in parallel (processes, or Ray tasks on a cluster) and append each record as it lands.

The output file is the checkpoint: jobs whose key is already in it are skipped, and every record is
appended and flushed on its own, so a crash or kill loses only the jobs in flight.
"""

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from e2wm.errors import InputError, at
from e2wm.files import append_jsonl, iter_jsonl


def done_keys(path: Path, key: str) -> set:
    """Keys of the records already in an output file; a last line cut short by a kill is removed."""
    if not path.is_file():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):  # an interrupted append: drop the partial line
        data = data[: data.rfind(b"\n") + 1]
        path.write_bytes(data)
    keys = set()
    for number, record in iter_jsonl(path):
        if key not in record:
            raise InputError(f"{at(path, number, key)} is missing; not an output of e2wm collect?")
        keys.add(record[key])
    return keys


def _processes(work: Callable, jobs: list[tuple], workers: int) -> Iterator[dict]:
    if workers <= 1:
        yield from (work(*job) for job in jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(work, *job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _ray(work: Callable, jobs: list[tuple], address: str) -> Iterator[dict]:
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'e2wm[ray]'") from None
    ray.init(address=None if address == "local" else address, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(work)
    pending = [remote.remote(*job) for job in jobs]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        yield ray.get(ready[0])


def collect(work: Callable, jobs: list[tuple], out: Path, workers: int = 1, ray_address: str | None = None,
            label: str = "collect") -> tuple[int, int]:
    """Run work(*job) for every job and append the records to out; returns (records written, successes).

    A record with a boolean `success` counts towards the success rate shown on the progress bar.
    """
    results = _ray(work, jobs, ray_address) if ray_address else _processes(work, jobs, workers)
    written = successes = 0
    with tqdm(total=len(jobs), desc=label, unit="job", dynamic_ncols=True, disable=not jobs) as bar:
        for record in results:
            append_jsonl(out, record)
            written += 1
            if "success" in record:
                successes += bool(record["success"])
                bar.set_postfix_str(f"success {successes}/{written} ({successes / written:.0%})")
            bar.update()
    return written, successes


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
