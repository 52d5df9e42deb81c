"""`--model NAME` without the Hub: unknown names fail at once with a hint, cached and local models still resolve.

The Hub's reachability is patched in every test (both ways), so the results do not depend on this machine's network.
"""

import shutil
import socket
import time
from pathlib import Path

import pytest

from e2wm import models
from e2wm.cli import main
from e2wm.errors import InputError


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """An empty Hugging Face cache, an empty current directory, offline mode off, a fresh reachability cache."""
    from huggingface_hub import constants

    (tmp_path / "hub").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.chdir(tmp_path / "cwd")
    reachable = models.hub_reachable  # tests may patch it; its process-wide cache must not leak either way
    reachable.cache_clear()
    yield tmp_path / "hub"
    reachable.cache_clear()


def hub(monkeypatch, reachable: bool | None) -> None:
    """Patch the Hub's reachability: True, False, or None (the check must not run)."""
    def check() -> bool:
        if reachable is None:
            raise AssertionError("the Hub reachability check ran")
        return reachable

    monkeypatch.setattr(models, "hub_reachable", check)


def cache_model(hub_cache: Path, repo_id: str, source: Path) -> None:
    """Lay out source's files as the Hugging Face cache does for repo_id at revision main."""
    repo = hub_cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(source, repo / "snapshots" / commit)


def test_wrong_case_fails_at_once_with_a_hint(monkeypatch, capsys):
    hub(monkeypatch, False)
    start = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        main(["plan-memory", "--model", "smollm2-135M"])
    assert exit_info.value.code == 2
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err
    assert "not a local directory, not in the Hugging Face cache, and the Hub is unreachable (offline)" in err
    assert "did you mean 'smollm2-135m'?" in err


def test_reachable_hub_keeps_the_id(monkeypatch):
    hub(monkeypatch, True)
    assert models.resolve_model_path("smollm2-135M") == "smollm2-135M"  # transformers reports its 404 itself
    assert models.resolve_model_path("org/some-model") == "org/some-model"


def test_offline_env_fails_at_once_without_the_check(monkeypatch):
    hub(monkeypatch, None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(InputError, match=r"unreachable \(offline\)$"):
        models.resolve_model_path("zzqx/unheard-of-checkpoint-9000")
    assert time.monotonic() - start < 5


def test_cached_model_resolves_offline(isolated, tiny_llama, monkeypatch, capsys):
    from huggingface_hub import constants

    cache_model(isolated, "Org/Tiny-Llama", tiny_llama)
    hub(monkeypatch, None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # transformers reads it, set at import
    assert models.resolve_model_path("Org/Tiny-Llama") == "Org/Tiny-Llama"
    main(["plan-memory", "--model", "Org/Tiny-Llama"])  # transformers finds the config in the cache
    assert "expected peak" in capsys.readouterr().out


def test_local_directory_resolves_without_the_check(tiny_llama, monkeypatch):
    hub(monkeypatch, None)
    assert models.resolve_model_path(str(tiny_llama)) == str(tiny_llama)
    shutil.copytree(tiny_llama, "my-model")
    assert models.resolve_model_path("my-model") == "my-model"


def test_hints_name_cached_ids_and_local_directories(isolated, tmp_path, monkeypatch):
    hub(monkeypatch, False)
    source = tmp_path / "source"
    source.mkdir()
    (source / "config.json").write_text("{}")
    cache_model(isolated, "Org/Tiny-Llama", source)
    shutil.copytree(source, "my-finetune")
    with pytest.raises(InputError, match="did you mean 'Org/Tiny-Llama'"):  # the cached spelling
        models.resolve_model_path("org/tiny-lama")
    with pytest.raises(InputError, match="did you mean 'my-finetune'"):
        models.resolve_model_path("my-fintune")
    with pytest.raises(InputError) as error:
        models.resolve_model_path("zzqx/unheard-of-checkpoint-9000")
    assert "did you mean" not in str(error.value)


def test_known_names_tolerate_a_broken_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    (tmp_path / "not-a-directory").write_text("")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "not-a-directory"))
    assert models.known_model_names() == [models.EMBEDDED_NAME]
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "absent"))
    assert models.known_model_names() == [models.EMBEDDED_NAME]


def test_reachability_is_checked_once_a_process(monkeypatch):
    from huggingface_hub import constants

    calls = []
    monkeypatch.setattr(models, "connects", lambda host, port, timeout: calls.append((host, port)) or False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
    for variable in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    assert models.hub_reachable() is False
    assert models.hub_reachable() is False
    assert calls == [("huggingface.co", 443)]


def test_reachability_goes_through_the_proxy(monkeypatch):
    calls = []
    monkeypatch.setattr(models, "connects", lambda host, port, timeout: calls.append((host, port)) or True)
    for variable in ("https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert models.hub_reachable() is True
    assert calls == [("proxy.example", 3128)]


def test_connects_on_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert models.connects("127.0.0.1", port, 3.0)
    start = time.monotonic()
    assert not models.connects("127.0.0.1", port, 3.0)  # closed now: refused at once
    assert time.monotonic() - start < 2
