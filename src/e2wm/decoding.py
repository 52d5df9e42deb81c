"""Decoding with e2wm's settings only: keep a model's generation_config.json out of `generate`, and say what it held.

Hub models often ship sampling settings in generation_config.json (do_sample, temperature, top-k/p, repetition
penalties, no-repeat n-grams, minimum lengths, forced or suppressed tokens). transformers 5.x `generate` fills each
field of the GenerationConfig passed to it that is None from the model's `generation_config`
(`GenerationMixin._prepare_generation_config`: `update(**self.generation_config.to_dict(), defaults_only=True)`),
and some fields have no neutral non-None value (forced_bos_token_id, suppress_tokens), so a config built from
scratch is not enough: `own_settings_only` swaps in an empty one for the call. transformers issue 29080,
llama-cpp-python issue 878.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager

from transformers import GenerationConfig

# generation_config fields that do not change which tokens are chosen from a given prompt: not reported as ignored
NOT_DECODING = frozenset({
    "transformers_version", "_from_model_config", "bos_token_id", "decoder_start_token_id", "pad_token_id",
    "use_cache", "cache_implementation", "cache_config", "compile_config", "output_attentions",
    "output_hidden_states", "output_scores", "output_logits", "return_dict_in_generate",
})


def generating_model(model):
    """The transformers model whose `generate` runs and reads `generation_config`: the base model under a PEFT
    wrapper (PeftModel.generate copies the base model's config onto it), else model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@contextmanager
def own_settings_only(model) -> Iterator[None]:
    """While inside, the model's generation_config is transformers' empty default, so that `generate` uses the
    GenerationConfig passed to it and transformers' neutral defaults for the rest (see the module's note);
    restored on leaving, also after an error."""
    target = generating_model(model)
    saved = target.generation_config
    target.generation_config = GenerationConfig()
    try:
        yield
    finally:
        target.generation_config = saved


def ignored_settings(model, own: GenerationConfig) -> dict:
    """The model's generation_config fields that e2wm's decoding does not follow: each field its file sets (not
    None) to a value other than what `own` uses (its value, else transformers' default), leaving out the fields
    that do not change the chosen tokens (NOT_DECODING). {} for a plain model's file (token ids only).

    Returns:
        field -> the model's value (JSON-serialisable, as in generation_config.json), sorted by field.
    """
    defaults = GenerationConfig._get_default_generation_params()
    used = own.to_dict()
    settings = generating_model(model).generation_config.to_dict()
    ignored = {}
    for key, value in sorted(settings.items()):
        effective = used.get(key) if used.get(key) is not None else defaults.get(key)
        if key not in NOT_DECODING and value is not None and value != effective:
            ignored[key] = json.loads(json.dumps(value, default=repr), parse_constant=str)  # inf, NaN: "Infinity"
    return ignored


