"""Step folders: checkpoint-N written atomically beside the exact-resume checkpoint/, the oldest pruned by step."""

import pytest

from e2wm.train.checkpoint import prune_steps, save_pretrained, step_folders


class Saves:
    """A stand-in for a model or tokenizer: save_pretrained writes one file, or fails like a full disk."""

    def __init__(self, name: str, fail: bool = False):
        self.name, self.fail = name, fail

    def save_pretrained(self, folder):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / self.name).write_text(self.name)
        if self.fail:
            raise OSError("no space left on device")


def test_prune_keeps_the_last_steps_by_number(tmp_path):
    for name in ["checkpoint", "checkpoint.tmp", "checkpoint-2", "checkpoint-10", "checkpoint-3", "checkpoint-9.tmp",
                 "adapter"]:
        (tmp_path / name).mkdir()
    (tmp_path / "checkpoint-11").write_text("a file, not a step folder")
    assert [step for step, _ in step_folders(tmp_path)] == [2, 3, 10]  # 10 after 3: by number, not by name
    assert prune_steps(tmp_path, 2) == [tmp_path / "checkpoint-2"]
    assert prune_steps(tmp_path, 2) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "adapter", "checkpoint", "checkpoint-10", "checkpoint-11", "checkpoint-3", "checkpoint-9.tmp", "checkpoint.tmp"]
    assert prune_steps(tmp_path, 1) == [tmp_path / "checkpoint-3"]


def test_save_pretrained_replaces_the_folder_atomically(tmp_path):
    final = tmp_path / "checkpoint-4"
    save_pretrained(Saves("adapter_model.safetensors"), None, final, "adapter")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4"]
    assert (final / "adapter" / "adapter_model.safetensors").read_text() == "adapter_model.safetensors"
    with pytest.raises(OSError):  # a failed write leaves the previous folder as it was
        save_pretrained(Saves("model.safetensors", fail=True), None, final, "adapter")
    assert [p.name for p in (final / "adapter").iterdir()] == ["adapter_model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4"]  # and no half-written checkpoint-4.tmp
    save_pretrained(Saves("model.safetensors"), Saves("tokenizer.json"), final)  # no subfolder; with a tokenizer
    assert sorted(p.name for p in final.iterdir()) == ["model.safetensors", "tokenizer.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4"]  # the old one (checkpoint-4.old) removed
