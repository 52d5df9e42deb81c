"""Generation with vLLM (extra `e2wm[vllm]`, CUDA only): base model plus LoRA adapter, greedy or beam.

The prompts are the same token ids the hf backend decodes from, so under greedy decoding both
backends give the same first lines (up to the kernels' floating-point differences). As with the hf backend, only
e2wm's options apply: the engine is built with generation_config="vllm", so that the model's generation_config.json
(which vLLM's default "auto" merges into every request's SamplingParams, and whose max_new_tokens caps max_tokens)
is not read; the run's config.json records what it held (`decoding.ignored_settings`).
"""

import importlib.util
import json
from pathlib import Path

import torch

from e2wm.errors import InputError


def check_available() -> None:
    """Fail with one clear line where vLLM cannot run."""
    if importlib.util.find_spec("vllm") is None:
        raise InputError("--backend vllm needs vLLM: pip install 'e2wm[vllm]' (CUDA GPUs only)")
    if not torch.cuda.is_available():
        raise InputError("--backend vllm needs a CUDA GPU; none is available here (use --backend hf)")


def lora_rank(adapter: str) -> int:
    config = json.loads((Path(adapter) / "adapter_config.json").read_text())
    return int(config.get("r", 8))


class VllmGenerator:
    """One vLLM engine for a run; `generate` mirrors e2wm.eval.generation.generate."""

    def __init__(self, model_path: str, adapter: str | None, dtype: str, max_length: int,
                 gpu_memory_utilization: float = 0.5, seed: int = 0):
        from vllm import LLM

        self.adapter = adapter
        self.llm = LLM(
            model=model_path, dtype=dtype, seed=seed, max_model_len=max_length, enable_lora=adapter is not None,
            max_lora_rank=max(8, lora_rank(adapter)) if adapter else 16,
            gpu_memory_utilization=gpu_memory_utilization, generation_config="vllm",  # e2wm's settings only
        )

    def lora_request(self):
        if not self.adapter:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest("e2wm-adapter", 1, str(Path(self.adapter).resolve()))

    def generate(self, tokenizer, prompts: list[list[int]], *, max_new_tokens: int = 256, num_beams: int = 1,
                 stop: str | None = "\n", indices: list[int] | None = None, **_) -> list[str]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        chosen = prompts if indices is None else [prompts[i] for i in indices]
        requests = [TokensPrompt(prompt_token_ids=ids) for ids in chosen]
        if num_beams > 1:
            from vllm.sampling_params import BeamSearchParams

            outputs = self.llm.beam_search(
                requests, BeamSearchParams(beam_width=num_beams, max_tokens=max_new_tokens),
                lora_request=self.lora_request(),
            )
            texts = [tokenizer.decode(out.sequences[0].tokens[len(ids):], skip_special_tokens=True)
                     for out, ids in zip(outputs, chosen)]
            if stop is None:
                return texts
            return [text.split(stop, 1)[0] + (stop if stop in text else "") for text in texts]
        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop=[stop] if stop else None,
                                include_stop_str_in_output=True)
        outputs = self.llm.generate(requests, params, lora_request=self.lora_request(), use_tqdm=True)
        return [out.outputs[0].text for out in outputs]
