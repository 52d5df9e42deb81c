"""Run collection jobs in parallel (processes, or Ray tasks on a cluster) and write their records in job order.

The output file is the checkpoint: jobs whose key is already in it are skipped. Records are written in the
order of the jobs whatever order the workers finish them in: a finished record waits in a reorder buffer
(`in_job_order`) until every job before it is written, and each record is appended and flushed on its own.
So the file is always the records of a prefix of the jobs: a crash or kill loses the jobs in flight and
the finished ones waiting behind them, a re-run continues from the first missing job, and a seed gives a
byte-identical file at any number of workers, interrupted or not. The wall seconds of each job (measured
in its worker) go beside it, to OUT.timings.jsonl: the one output that differs between two runs.
"""

import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from e2wm.errors import InputError, at
from e2wm.files import append_jsonl, drop_torn_tail, iter_jsonl

T = TypeVar("T")


def timings_path(out: Path) -> Path:
    """Where the jobs' wall seconds of the collection `out` are kept: OUT.timings.jsonl."""
    return out.with_name(out.name + ".timings.jsonl")


def done_keys(path: Path, key: str) -> set:
    """Keys of the records already in an output file; a last line cut short by a kill is removed.

    Raises InputError naming file, line and field for a record without the key, or with a key (an episode
    number, a program id) that an earlier line already holds: two runs appended to one file, and resuming
    would keep both copies.
    """
    if not path.is_file():
        return set()
    drop_torn_tail(path)
    first: dict = {}
    for number, record in iter_jsonl(path):
        if key not in record:
            raise InputError(f"{at(path, number, key)} is missing; not an output of e2wm collect?")
        value = record[key]
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise InputError(f"{at(path, number, key)} must be a string or an integer, got {type(value).__name__}")
        if value in first:
            raise InputError(f"{at(path, number, key)}: {value!r} again (first at line {first[value]}): two runs "
                             "wrote this file? keep one copy of each record (or collect into a new --out)")
        first[value] = number
    return set(first)


def timed(work: Callable[..., dict], *job) -> tuple[dict, float]:
    """(work(*job), its wall seconds rounded to ms): what a worker sends back."""
    start = time.perf_counter()
    record = work(*job)
    return record, round(time.perf_counter() - start, 3)


def in_job_order(results: Iterable[tuple[int, T]]) -> Iterator[T]:
    """The reorder buffer: values that come as (job index, value) in any order, yielded in index order 0, 1, 2,
    ..., each as soon as every value before it has come. Indices must be 0..n-1, each once; values whose
    predecessors never come stay buffered (and are lost with the buffer when the caller stops)."""
    waiting: dict[int, T] = {}
    following = 0
    for index, value in results:
        waiting[index] = value
        while following in waiting:
            yield waiting.pop(following)
            following += 1


def _processes(work: Callable, jobs: list[tuple], workers: int) -> Iterator[tuple[int, tuple[dict, float]]]:
    """(job index, `timed` result) per job, in the order the jobs finish."""
    if workers <= 1:
        yield from ((index, timed(work, *job)) for index, job in enumerate(jobs))
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(timed, work, *job): index for index, job in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _ray(work: Callable, jobs: list[tuple], address: str) -> Iterator[tuple[int, tuple[dict, float]]]:
    """(job index, `timed` result) per job as Ray tasks, in the order the jobs finish."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'e2wm[ray]'") from None
    ray.init(address=None if address == "local" else address, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(timed)
    pending = {remote.remote(work, *job): index for index, job in enumerate(jobs)}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        yield pending.pop(ready[0]), ray.get(ready[0])


def collect(work: Callable, jobs: list[tuple], out: Path, key: str, workers: int = 1, ray_address: str | None = None,
            label: str = "collect") -> tuple[int, int]:
    """Run work(*job) for every job and append the records to out in job order; returns (records written,
    successes).

    Each record's `key` field and its job's seconds are appended to OUT.timings.jsonl after the record. A
    record with a boolean `success` counts towards the success rate shown on the progress bar.
    """
    results = _ray(work, jobs, ray_address) if ray_address else _processes(work, jobs, workers)
    timings = timings_path(out)
    if timings.is_file():
        drop_torn_tail(timings)
    written = successes = 0
    with tqdm(total=len(jobs), desc=label, unit="job", dynamic_ncols=True, disable=not jobs) as bar:
        for record, seconds in in_job_order(results):
            append_jsonl(out, record)
            append_jsonl(timings, {key: record[key], "seconds": seconds})
            written += 1
            if "success" in record:
                successes += bool(record["success"])
                bar.set_postfix_str(f"success {successes}/{written} ({successes / written:.0%})")
            bar.update()
    return written, successes


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
