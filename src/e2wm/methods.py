"""What a finetuning run trains and which regularisers it adds: names shared by `e2wm train`, its model card,
the evaluation's header and the report (the recorded options of a run are read with `recorded_method`).

A run is an adapter kind (ADAPTERS: what is trained, built in e2wm.recipes.finetune.build_model) plus a list of
regularisers (REGULARISERS: terms added to the loss, e2wm.train.regularisers). --method is the earlier shorthand:
ewc-lora = lora + ewc, lora = lora alone, full = full finetuning (+ ewc when a Fisher is given).
"""

from e2wm.errors import InputError

ADAPTERS = ("lora", "osf", "full")
REGULARISERS = ("ewc", "kl", "replay")  # in the log's and the labels' order
METHODS = ("ewc-lora", "lora", "full")
ADAPTER_LABELS = {"lora": "LoRA", "osf": "OSF", "full": "full finetuning"}
REGULARISER_LABELS = {"ewc": "EWC", "kl": "KL anchor", "replay": "replay"}


def resolve_method(method: str | None, adapter: str | None, regularisers: str | None, fisher: str | None
                   ) -> tuple[str, str]:
    """(adapter, regularisers) of a run: regularisers as a comma-separated list in REGULARISERS' order, "none" for
    none. --method is a shorthand (ewc-lora: lora + ewc; lora: lora alone; full: full + ewc when a Fisher is
    given, as earlier versions trained it); explicit --adapter-kind / --regularisers must agree with it.

    Raises InputError on an unknown regulariser, a repeated one, or a --method that contradicts them."""
    names = [] if regularisers in (None, "none") else [name.strip() for name in regularisers.split(",")]
    unknown = [name for name in names if name not in REGULARISERS]
    if unknown or len(set(names)) != len(names):
        raise InputError(f"--regularisers {regularisers}: expected a comma-separated list of distinct names among "
                         f"{', '.join(REGULARISERS)} (or none)")
    if method is not None:
        if method not in METHODS:
            raise InputError(f"--method {method}: expected one of {', '.join(METHODS)}")
        implied = {"ewc-lora": ("lora", ["ewc"]), "lora": ("lora", []),
                   "full": ("full", ["ewc"] if fisher else [])}[method]
        if adapter not in (None, implied[0]) or (regularisers is not None and sorted(names) != sorted(implied[1])):
            raise InputError(f"--method {method} means --adapter-kind {implied[0]} --regularisers "
                             f"{','.join(implied[1]) or 'none'}; give either --method or those two")
        adapter, names = implied
    elif regularisers is None:
        names = ["ewc"]
    ordered = [name for name in REGULARISERS if name in names]
    return adapter or "lora", ",".join(ordered) or "none"


def regulariser_names(regularisers: str) -> list[str]:
    """The names of a resolved --regularisers value (`resolve_method`'s): [] for "none"."""
    return [] if regularisers == "none" else regularisers.split(",")


def recorded_method(options: dict) -> tuple[str, list[str]]:
    """(adapter, regulariser names) of a run from its recorded options (config.json's "options"), whichever
    version of e2wm recorded them: runs before the adapter_kind and regularisers options had only "method".

    Raises InputError when the recorded values are not ones e2wm knows."""
    adapter, regularisers = resolve_method(options.get("method"), options.get("adapter_kind"),
                                           options.get("regularisers"), options.get("fisher"))
    return adapter, regulariser_names(regularisers)


def method_label(adapter: str, regularisers: list[str]) -> str:
    """A readable name: EWC-LoRA (the E2WM method, lora + ewc alone), LoRA, full finetuning, or the adapter's name
    with its regularisers ("LoRA + KL anchor + replay", "full finetuning + EWC")."""
    if adapter == "lora" and regularisers == ["ewc"]:
        return "EWC-LoRA"
    return " + ".join([ADAPTER_LABELS.get(adapter, adapter), *(REGULARISER_LABELS.get(r, r) for r in regularisers)])
