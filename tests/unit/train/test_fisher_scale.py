"""Fisher scales: the authors' LLM.int8 row codes against an independent implementation, and the mean scale."""

import numpy as np
import pytest
import torch

from e2wm.train.fisher_scale import paper_codes, scale_fisher


def int8_row_codes(matrix: np.ndarray) -> np.ndarray:
    """LLM.int8 row-wise quantisation written out element by element (numpy, fp16 storage, float32 arithmetic,
    round half to even); an all-zero row gives zeros instead of bitsandbytes' NaN."""
    half = matrix.astype(np.float16).astype(np.float32)
    codes = np.zeros_like(half)
    for r in range(half.shape[0]):
        top = np.float32(max(abs(float(v)) for v in half[r]))
        for c in range(half.shape[1]):
            codes[r, c] = 0.0 if top == 0 else np.rint(np.float32(127) * half[r, c] / top)
    return codes


@pytest.mark.parametrize("seed", range(6))
def test_paper_codes_equal_llm_int8_row_quantisation(seed):
    generator = torch.Generator().manual_seed(seed)
    rows, cols = 7, 13
    fisher = torch.rand(rows, cols, generator=generator) ** 8 * 10.0 ** float(torch.randint(-9, 2, (1,)).item())
    fisher[0] = 0.0  # an all-zero row
    fisher[1, :4] = 1e-9  # below fp16's smallest subnormal: 0 after the cast
    fisher[2, 3] = 0.5 * 2.0**-24  # exactly halfway below the smallest subnormal
    codes = paper_codes(fisher)
    assert torch.equal(codes, torch.from_numpy(int8_row_codes(fisher.numpy())))
    assert codes.min() >= 0 and codes.max() <= 127 and torch.all(codes[0] == 0)
    nonzero = codes[1:].amax(dim=1)
    assert torch.all((nonzero == 127) | (fisher[1:].to(torch.float16).amax(dim=1) == 0))
    assert torch.equal(codes, codes.round())  # integers


def test_fan_in_fan_out_codes_are_per_output_column():
    fisher = torch.rand(5, 3)  # a Conv1D weight is (in, out): the output rows are the columns
    assert torch.equal(paper_codes(fisher, fan_in_fan_out=True), paper_codes(fisher.T).T)


def test_mean_scale_makes_the_average_entry_one_and_raw_is_unchanged():
    fisher = {"a": torch.tensor([[1.0, 3.0]]), "b": torch.tensor([[0.0, 0.0, 8.0]])}
    scaled = scale_fisher(fisher, "mean")
    assert sum(float(t.sum()) for t in scaled.values()) == pytest.approx(5.0)  # 5 entries, mean 1
    assert torch.allclose(scaled["b"], torch.tensor([[0.0, 0.0, 8 / 2.4]]))  # total 12 over 5 entries
    assert scale_fisher(fisher, "raw") is fisher
    with pytest.raises(ValueError, match="unknown Fisher scale"):
        scale_fisher(fisher, "log")
    with pytest.raises(ValueError, match="zero everywhere"):
        scale_fisher({"a": torch.zeros(2, 2)}, "mean")
