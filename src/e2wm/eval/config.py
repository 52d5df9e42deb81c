"""The config of `e2wm eval`: which model, which files, how to decode and score."""

from dataclasses import dataclass

from e2wm import config
from e2wm.benchmark import NORMS
from e2wm.chat import HELP as CHAT_HELP
from e2wm.config import option
from e2wm.errors import InputError
from e2wm.models import (
    ADAPTER_SCALE_HELP,
    AUTOCAST_HELP,
    AUTOCASTS,
    LoadedModelOptions,
    check_adapter_scale,
    check_autocast,
    resolve_adapter,
)

BACKENDS = ("hf", "vllm")
PERPLEXITY = "perplexity on general text"  # the --help group of the options that change only the ppl result
BEAM_STOPS = ("newline", "full")  # e2wm's default; the authors' eval_gen.py
PPL_MODES = ("windows", "paper")  # e2wm's default; the authors' eval_ppl.py
EAI_FORMS = ("native", "e2wm", "e2wm-no-goals")  # the prompt forms of eai:action_sequence (e2wm.eval.eai)
STATISTICS = "statistics (docs/statistics.md)"
RESAMPLES = 10_000  # bootstrap resamples by default (eval standard errors and report intervals)
SEED = 1234  # the bootstrap's default seed


@dataclass(kw_only=True)
class EvalConfig(LoadedModelOptions):
    """`e2wm eval` / `e2wm.evaluate`: score a model (and adapter) on E2WM files, plus perplexity on general text.

    A finished task is reused on a re-run only when its file's bytes and every result setting are the same:
    all fields not marked result=False, but `data` (the file's bytes stand for it) and the PERPLEXITY group,
    which changes only the perplexity: each --ppl-data set is saved and reused on its own fingerprint (its texts,
    the model and the settings it reads; e2wm.eval.run.ppl_fingerprint).
    """

    adapter: str | None = option(None, "PEFT adapter directory to apply, or the name of an adapter shipped with e2wm "
                                 "(e2wm/adapters/<name>, each with its model card)", group="model")
    adapter_scale: float = option(1.0, ADAPTER_SCALE_HELP + "; needs --adapter and --backend hf", minimum=0,
                                  group="model", metavar="S")
    data: list[str] = option(help="E2WM .json/.jsonl files, or directories searched for them (training files "
                             "train_* and stats.json left out), or the released benchmark by name (after `e2wm data "
                             "download`): e2wm (its 11 files), e2wm:qa, e2wm:gen, e2wm:<task> (e2wm:count, ...); "
                             "eai:action_sequence: the Embodied Agent Interface's 342 tasks, judged by executing "
                             "the plans (--eai-form)")
    out: str = option(help="run directory for metrics.json, results.md, predictions/", result=False)
    autocast: str = option("none", AUTOCAST_HELP, choices=AUTOCASTS, group="model")
    chat_template: bool = option(False, CHAT_HELP + "; a multiple-choice option is scored right after the opened "
                                 "assistant turn, without the ' ' before it (lm-evaluation-harness's "
                                 "--apply_chat_template)")
    limit: int | None = option(None, "evaluate only the first N items of each file (default: every item)", minimum=1)
    batch_size: int = option(1, "prompts decoded together (generation) and windows per pass (perplexity)",
                             minimum=1)
    num_beams: int = option(1, "beam size for generation (1: greedy)", minimum=1)
    beam_stop: str = option("newline", "newline: a criterion ends each sequence at its first newline; full: decode "
                            "all --max-new-tokens and keep the first line of the best whole beam (the authors' "
                            "eval_gen.py; slower). Only matters with --num-beams > 1: greedy decoding gives the same "
                            "first line either way", choices=BEAM_STOPS)
    max_new_tokens: int = option(256, "tokens generated at most per answer", minimum=1)
    robothow_dir: str | None = option(None, "a full RobotHow directory (same layout as the bundled programs): plan "
                                      "items whose reference is one of its programs are also run in the simulator "
                                      "(default: the 518 bundled programs)")
    eai_form: str = option("native", "the prompt of --data eai:action_sequence: native (EAI's own prompt, a JSON "
                           "answer: the leaderboard's setting), e2wm (E2WM's plan question with the goals told in "
                           "English and two worked examples; the English plan is read back into actions), "
                           "e2wm-no-goals (the same without the goals)", choices=EAI_FORMS)
    norm: str | None = option(None, "QA normalisation for every task (default: each task's, from e2wm.benchmark)",
                              choices=NORMS)
    max_len: int | None = option(None, "token limit of prompt + answer (default: the model's)", minimum=2)
    ppl_data: list[str] | None = option(None, "general texts (JSONL with 'text', plain text, or a saved HF dataset) "
                                        "for perplexity, each its own result: the first file's task is ppl, each "
                                        "further one's ppl:<label>, the label its file name without the extension "
                                        "(default: none computed)", group=PERPLEXITY)
    ppl_mode: str = option("windows", "windows: every text in non-overlapping windows of up to 1024 tokens, the "
                           "tokenizer's BOS kept; paper: the first --ppl-texts texts, each cut to its first 800 "
                           "tokens, no BOS (the authors' eval_ppl.py), also reporting perplexity_base2 = 2**NLL",
                           choices=PPL_MODES, group=PERPLEXITY)
    ppl_texts: int = option(5000, "--ppl-mode paper: score only the first N texts (the authors took 5000)",
                            minimum=1, group=PERPLEXITY)
    backend: str = option("hf", "generation backend: hf (transformers) or vllm (extra e2wm[vllm], CUDA)",
                          choices=BACKENDS)
    gpu_memory_utilization: float = option(0.5, "share of GPU memory vLLM may take (the hf model for QA shares "
                                           "the GPU)", above=0, result=False)
    num_processes: int = option(1, "shard the items over N processes (runs `accelerate launch -m e2wm eval ...`)",
                                minimum=1, result=False)
    bootstrap_resamples: int = option(RESAMPLES, "resamples of the bootstrap standard errors (ROUGE, LCS, "
                                      "perplexity)", minimum=100, group=STATISTICS)
    seed: int = option(SEED, "seed of the bootstrap resampling (the same seed gives the same standard errors)",
                       minimum=0, group=STATISTICS)

    def __post_init__(self) -> None:
        if self.adapter:  # a shipped adapter's name becomes its folder, so every later step sees a path
            self.adapter = resolve_adapter(self.adapter)
        if isinstance(self.ppl_data, str):  # one file, as --ppl-data was before it took several (YAML, Python)
            self.ppl_data = [self.ppl_data]
        super().__post_init__()
        check_autocast(self.autocast, self.dtype)
        self.adapter_scale = float(self.adapter_scale)  # a YAML 1 or 0 records and fingerprints as 1.0, 0.0
        check_adapter_scale(self.adapter_scale, self.adapter)
        if self.adapter_scale != 1 and self.backend == "vllm":  # vLLM's LoRARequest takes no scale
            raise InputError(f"--adapter-scale {self.adapter_scale:g} with --backend vllm: vLLM applies an adapter "
                             "at its trained scale; use --backend hf, or merge the scaled adapter first (`e2wm "
                             "export merged --adapter-scale S`) and evaluate that model with vllm")


@dataclass(kw_only=True)
class ReportConfig:
    """`e2wm report` / `e2wm.report`: eval runs side by side and training curves, as markdown + PNG charts."""

    runs: list[str] = option(default_factory=list, help="`e2wm eval` run directories; the first is the baseline "
                             "of the relative changes", positional=True, metavar="RUN_DIR")
    train_log: list[str] = option(default_factory=list, help="`e2wm train` directories whose log.jsonl to plot "
                                  "(loss, CE, EWC; the eval_ppl / eval_accuracy curves when logged)", metavar="DIR")
    out: str = option(help="markdown file; the PNG charts are written beside it")
    title: str = option("E2WM report", "the report's heading")
    bootstrap_resamples: int = option(RESAMPLES, "resamples of the paired bootstrap intervals, and label swaps of "
                                      "the permutation test past 20 differing items", minimum=100, group=STATISTICS)
    seed: int = option(SEED, "seed of the paired bootstrap and of a Monte Carlo permutation test (the same seed "
                       "gives the same intervals and p-values)", minimum=0, group=STATISTICS)
    eai_leaderboard_cache: str | None = option(None, "folder of the cached EAI leaderboard (the LLM outputs shipped "
                                               "with virtualhome-eval, scored by EAI's evaluator: about 16 minutes "
                                               "on one core the first time) shown beside runs of eai:action_sequence "
                                               "(default: e2wm's cache folder, $E2WM_CACHE or ~/.cache/e2wm)",
                                               metavar="DIR", result=False)
    no_eai_leaderboard: bool = option(False, "leave the EAI leaderboard out of the report (the evaluated runs' EAI "
                                      "table stays)")
    drift_on: str = option("ppl", "the perplexity set whose relative change against the first run is the drift of "
                           "the learning-against-forgetting frontier: ppl (the first --ppl-data file of `e2wm eval`), "
                           "or a further file's ppl:<label> (or its label alone)", metavar="LABEL")

    def __post_init__(self) -> None:
        config.check(self)
