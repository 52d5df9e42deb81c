"""`e2wm fisher import`: a released-style Fisher checkpoint becomes our Fisher file, checked against the model."""

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

from e2wm.cli import main
from e2wm.train.fisher import load_fisher


def write_fisher_checkpoint(model_dir, directory, dtype=torch.bfloat16, drop=None, reshape=None):
    """A 'Fisher checkpoint' the way the authors released theirs: the model's tensor names, Fisher values."""
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    torch.manual_seed(1)
    tensors = {name: torch.rand_like(p).to(dtype) for name, p in model.state_dict().items()}
    if drop:
        tensors.pop(drop)
    if reshape:
        tensors[reshape] = torch.rand(3, 5).to(dtype)
    directory.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(directory / "model.safetensors"))
    return tensors


@pytest.mark.parametrize(("fixture", "names"), [("tiny_llama", ["q_proj", "v_proj"]), ("tiny_gpt2", ["c_attn"])])
def test_import_keeps_adapted_matrices_in_float32(fixture, names, request, tmp_path):
    model_dir = request.getfixturevalue(fixture)
    released = write_fisher_checkpoint(model_dir, tmp_path / "released")
    out = tmp_path / "fisher.safetensors"
    main(["fisher", "import", "--checkpoint", str(tmp_path / "released"), "--model", str(model_dir),
          "--out", str(out), "--n", "20000"])
    header, fisher = load_fisher(out)
    assert header.modules == names and header.n == 20000 and header.extra["source_dtype"] == ["bfloat16"]
    assert len(fisher) == 4 if fixture == "tiny_llama" else len(fisher) == 2
    for name, tensor in fisher.items():
        assert name.rsplit(".", 1)[-1] in names and tensor.dtype == torch.float32
        assert torch.equal(tensor, released[name + ".weight"].float())
    assert sum(t.numel() for t in fisher.values()) < sum(t.numel() for t in released.values()) / 3


def test_import_errors_name_the_tensor(tiny_llama, tmp_path, capsys):
    write_fisher_checkpoint(tiny_llama, tmp_path / "missing", drop="model.layers.1.self_attn.v_proj.weight")
    write_fisher_checkpoint(tiny_llama, tmp_path / "shape", reshape="model.layers.0.self_attn.q_proj.weight")
    for case, message in [("missing", "no tensor for model.layers.1.self_attn.v_proj.weight"),
                          ("shape", "model.layers.0.self_attn.q_proj.weight has shape [3, 5]"),
                          ("nowhere", "no such directory")]:
        with pytest.raises(SystemExit) as exit_info:
            main(["fisher", "import", "--checkpoint", str(tmp_path / case), "--model", str(tiny_llama),
                  "--out", str(tmp_path / f"{case}.safetensors")])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / f"{case}.safetensors").exists()
