"""`e2wm data download`: the released files copied from a local folder or fetched by URL, each checked against its
checksum before it is stored; a mismatch and an offline machine stop with one line. No network: the URL opener is
replaced, and the checksum table is that of fixture files (helpers.benchmark) except where the real table is
checked against ../shared."""

import hashlib
import io
import shutil
import urllib.error
from dataclasses import replace

import pytest
from helpers.benchmark import FILES, write_release
from helpers.files import command_output

from e2wm import benchmark_data


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("E2WM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "data" / "e2wm"


def download(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr stripped) of `e2wm data download args`."""
    code, out, err = command_output(capsys, ["data", "download", *args])
    return code, out, err.strip()


def test_a_local_copy_with_matching_checksums_is_stored_once(tmp_path, cache, capsys, monkeypatch):
    monkeypatch.setattr(benchmark_data, "RELEASED", write_release(tmp_path / "repo"))
    code, out, _ = download(capsys, "--from", tmp_path / "repo")
    assert code == 0 and f"8 files of github.com/{benchmark_data.REPOSITORY} at commit 57c9000 in {cache}" in out
    assert "(8 stored now, 0 already there)" in out and "--data e2wm" in out
    for path in FILES:
        assert (cache / path.removeprefix("data/")).read_bytes() == (tmp_path / "repo" / path).read_bytes()
    assert not list(cache.rglob("*.tmp"))  # no staging file left behind
    code, out, _ = download(capsys, "--from", tmp_path / "repo")  # again: every file is there and right
    assert code == 0 and "(0 stored now, 8 already there)" in out


def test_a_copy_laid_out_like_the_cache_goes_to_dest(tmp_path, cache, capsys, monkeypatch):
    monkeypatch.setattr(benchmark_data, "RELEASED", write_release(tmp_path / "copy", layout="cache"))
    code, out, _ = download(capsys, "--from", tmp_path / "copy", "--dest", tmp_path / "mine")
    assert code == 0 and f"in {tmp_path / 'mine'}" in out and "--data e2wm" not in out  # names read the cache only
    assert (tmp_path / "mine" / "eval" / "qa" / "count.json").is_file() and not cache.exists()


def test_a_mismatching_file_is_named_and_never_stored(tmp_path, cache, capsys, monkeypatch):
    table = write_release(tmp_path / "repo")
    bad = tmp_path / "repo" / "data/eval/qa/count.json"
    original = bad.read_bytes()
    bad.write_bytes(original.replace(b'"answer": "2"', b'"answer": "4"'))  # same size, other bytes
    monkeypatch.setattr(benchmark_data, "RELEASED", table)
    code, _, err = download(capsys, "--from", tmp_path / "repo")
    digest = hashlib.sha256(bad.read_bytes()).hexdigest()
    assert code == 2 and len(err.splitlines()) == 1
    assert (f"1 of the 8 E2WM files not stored: {bad}: sha256 {digest[:12]}... where the released "
            f"eval/qa/count.json has {table[0].sha256[:12]}...") in err
    assert not (cache / "eval/qa/count.json").exists() and (cache / "eval/qa/act_recog.json").is_file()
    (cache / "eval/qa/act_recog.json").write_text("changed\n")  # a cached file that is no longer right is replaced
    bad.write_bytes(original)
    code, out, _ = download(capsys, "--from", tmp_path / "repo")
    assert code == 0 and "(2 stored now, 6 already there)" in out


def test_missing_files_are_listed_after_the_others_are_stored(tmp_path, cache, capsys, monkeypatch):
    monkeypatch.setattr(benchmark_data, "RELEASED", write_release(tmp_path / "repo"))
    shutil.rmtree(tmp_path / "repo" / "data" / "train")
    code, _, err = download(capsys, "--from", tmp_path / "repo")
    assert code == 2 and err.endswith(f"4 of the 8 E2WM files not stored: {tmp_path / 'repo'} has no "
                                      "train/train_plan_gen.json (nor data/train/train_plan_gen.json); also "
                                      "train/train_count.json, train/train_act_recog.json, train/train_obj_move.json")
    assert len(list(cache.rglob("*.json"))) == 4
    code, _, err = download(capsys, "--from", tmp_path / "nowhere")
    assert code == 2 and err.endswith(f"--from {tmp_path / 'nowhere'}: no such folder")


def test_download_fetches_the_pinned_commit(tmp_path, cache, capsys, monkeypatch):
    monkeypatch.setattr(benchmark_data, "RELEASED", write_release(tmp_path / "repo"))
    asked = []

    def opener(url):
        asked.append(url)
        return io.BytesIO((tmp_path / "repo" / url.split(benchmark_data.COMMIT + "/")[1]).read_bytes())

    monkeypatch.setattr(benchmark_data, "open_url", opener)
    code, out, _ = download(capsys)
    assert code == 0 and "(8 stored now" in out
    assert asked[0] == ("https://raw.githubusercontent.com/szxiangjn/world-model-for-language-model/"
                        "57c90009cc6015de5e77d01deeff976a24e6334e/data/eval/qa/count.json")
    assert len(asked) == 8 and (cache / "train" / "train_count.json").is_file()


def test_offline_says_what_to_download_and_where_to_put_it(tmp_path, cache, capsys, monkeypatch):
    def offline(url):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(benchmark_data, "open_url", offline)
    code, _, err = download(capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("e2wm data download: error: cannot download https://raw.githubusercontent.com/szxiangjn/"
                          "world-model-for-language-model/57c90009cc6015de5e77d01deeff976a24e6334e/data/eval/gen/"
                          "obj_move_path.json (Temporary failure in name resolution)")
    assert ("get the data/ folder of github.com/szxiangjn/world-model-for-language-model at commit 57c9000 "
            "(https://github.com/szxiangjn/world-model-for-language-model/tree/"
            "57c90009cc6015de5e77d01deeff976a24e6334e/data: 15 files in eval/ and train/), put it here as DIR/data, "
            "and run `e2wm data download --from DIR`") in err
    assert not cache.exists()


def test_the_real_table_takes_the_released_training_files_and_refuses_the_dev_slice(tmp_path, cache, capsys,
                                                                                    benchmark_dir):
    """../shared's train/ holds the released training files (their checksums match); its eval-dev/ holds a third
    of each evaluation file, so a copy of it laid out as the release does not match."""
    code, _, err = download(capsys, "--from", benchmark_dir)
    assert code == 2 and "11 of the 15 E2WM files not stored" in err
    for task in ("plan_gen", "act_recog", "count", "obj_move"):
        assert (cache / "train" / f"train_{task}.json").read_bytes() == (
            benchmark_dir / "train" / f"train_{task}.json").read_bytes()
    shutil.copytree(benchmark_dir / "eval-dev", tmp_path / "copy" / "eval")
    code, _, err = download(capsys, "--from", tmp_path / "copy")
    copied = tmp_path / "copy" / "eval" / "gen" / "obj_move_path.json"
    assert code == 2 and (f"11 of the 15 E2WM files not stored: {copied}: 138570 bytes where the released "
                          "eval/gen/obj_move_path.json has 413484") in err


def test_the_table_is_the_shared_checksum_list(benchmark_dir):
    """The package's table holds exactly the facts of ../shared/e2wm-benchmark/SHA256SUMS: commit, sha256, size."""
    text = (benchmark_dir / "SHA256SUMS").read_text()
    listed = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    assert benchmark_data.COMMIT in text.splitlines()[0]
    assert [(f.sha256, str(f.size), f.path) for f in benchmark_data.RELEASED] == [tuple(x) for x in listed]
    assert sum(not f.training for f in benchmark_data.RELEASED) == 11
    assert [f.task for f in benchmark_data.RELEASED if f.training] == ["act_recog", "count", "obj_move", "plan_gen"]
    assert replace(benchmark_data.RELEASED[0], path="data/train/train_x.json").task == "x"
