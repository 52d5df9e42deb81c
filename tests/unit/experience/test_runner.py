"""The collection runner: records in job order whatever order the workers finish them in, resumable from the
first missing job, each job's seconds beside the records."""

import itertools
import json

from helpers.experience_fixtures import late_record

from e2wm.experience.runner import collect, done_keys, in_job_order, timings_path


def test_the_reorder_buffer_releases_each_value_once_its_prefix_is_complete():
    for order in itertools.permutations(range(5)):
        assert list(in_job_order((i, f"v{i}") for i in order)) == [f"v{i}" for i in range(5)]
    released = []
    buffer = in_job_order(iter([(2, "c"), (0, "a"), (3, "d"), (1, "b")]))
    released.append(next(buffer))  # 0 came second: released at once, 2 still waits for 1
    assert released == ["a"] and list(buffer) == ["b", "c", "d"]
    assert list(in_job_order([(1, "b"), (2, "c")])) == []  # job 0 never finished: nothing may be written


def test_records_are_written_in_job_order_when_workers_finish_in_reverse(tmp_path):
    out = tmp_path / "episodes.jsonl"
    jobs = [(episode, 0.6 - 0.15 * episode) for episode in range(4)]  # job 0 finishes last
    assert collect(late_record, jobs, out, "episode", workers=3) == (4, 2)
    assert [json.loads(line)["episode"] for line in out.read_text().splitlines()] == [0, 1, 2, 3]
    timings = [json.loads(line) for line in timings_path(out).read_text().splitlines()]
    assert [t["episode"] for t in timings] == [0, 1, 2, 3] and all(t["seconds"] >= 0 for t in timings)
    assert timings[0]["seconds"] >= 0.5  # measured in the worker: the job's own sleep


def test_a_resumed_collection_continues_from_the_first_missing_job(tmp_path):
    whole, cut = tmp_path / "whole.jsonl", tmp_path / "cut.jsonl"
    collect(late_record, [(e, 0.0) for e in range(5)], whole, "episode", workers=2)
    lines = whole.read_bytes().splitlines(keepends=True)
    cut.write_bytes(b"".join(lines[:2]) + lines[2][:7])  # a kill mid-append of the third record
    timings_path(cut).write_bytes(b'{"episode": 0, "seconds": 0.0}\n{"episo')  # and of its second timing
    done = done_keys(cut, "episode")
    assert done == {0, 1} and cut.read_bytes() == b"".join(lines[:2])  # the torn line is gone
    collect(late_record, [(e, 0.0) for e in range(5) if e not in done], cut, "episode", workers=2)
    assert cut.read_bytes() == whole.read_bytes()
    timings = [json.loads(line) for line in timings_path(cut).read_text().splitlines()]
    assert [t["episode"] for t in timings] == [0, 2, 3, 4]  # whole lines only; the cut one is dropped
