"""Fuzzing of every file e2wm reads (Hypothesis): evaluation and training JSONL (and `--train` mixtures),
experience records for `build`, YAML configs, Fisher safetensors headers, perplexity and Fisher corpora (JSONL
and plain text), an eval run's metrics.json / config.json / predictions and a training run's log.jsonl for
`report`, and an adapter's adapter_config.json.

Inputs are random structures (any JSON value where a string, list or object is expected, fields missing or
extra, nesting), random unicode (lone surrogates, NUL, control characters, right-to-left marks, long strings),
random bytes (not UTF-8, a byte order mark, CRLF or CR line ends, a file cut anywhere) and sizes (empty, one
byte, many lines). The property, for each: a result, or InputError (what the command line prints as its one
line with exit code 2), never another exception, and nothing written where the input was refused. The readers
are called in-process where the command calls them (with a tiny tokenizer where the command encodes), so that
an example takes milliseconds; a few examples go end to end through `e2wm.cli.main`. Derandomized: the same
examples on every run.
"""

import copy
import json
import random
from pathlib import Path

import pytest
import yaml
from adversarial.support import GEN, QA, TEXT, snapshot
from helpers.experience_fixtures import programs, random_episode
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from e2wm.cli import main, parse
from e2wm.errors import InputError

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def fuzz(examples: int) -> settings:
    """FUZZ with a number of examples (each test's share of the suite's time)."""
    return settings(FUZZ, max_examples=examples)

# -- random values ------------------------------------------------------------------------------------------------
ODD = ["\ud83d", "\udfff", "\ud800x", "\x00", "\x1b[31m", "\u202e", "\u200f", "\ufeff", "\r", "\r\n", "\u2028",
       "\u0085", "\t", "é", "中文", "ไทย", "\U0001f600", "\\u", "\"", "{", "]", " ", ""]
CHARS = st.one_of(st.characters(exclude_categories=()), st.sampled_from([c for c in ODD if len(c) == 1]))
TEXT_ = st.one_of(st.lists(st.one_of(st.text(CHARS, max_size=4), st.sampled_from(ODD)), max_size=5).map("".join),
                  st.builds(lambda s, n: s * n, st.sampled_from(["a", "中", "\x00"]), st.integers(2000, 20000)))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT_)
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT_, inner, max_size=3),
                    max_leaves=8)
RAW_LINES = [b"", b" ", b"\xff\xfe", b"\xef\xbb\xbf{}", b"\xed\xa0\xbd", b'{"a": "\\ud83d"}', b"[" * 5000,
             b'{"a": ' + b"9" * 5000 + b"}", b"NaN", b"Infinity", b'{"a": 1, "a": 2}', b'"text"', b"null", b"{",
             b'{"input": "x"', b"\x00", b"\x1a", b"\xc3"]


def encoded(value, ascii_only: bool) -> bytes:
    """JSON of value as a line's bytes: ASCII escapes, or raw UTF-8 (a lone surrogate then as its three bytes,
    which no UTF-8 reader accepts)."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


STRUCTURE = ("replace", "remove", "add", "text")  # what `mutated` may do at a place; "text" alone keeps the schema


@st.composite
def mutated(draw, record, changes: int = 3, how: tuple[str, ...] = STRUCTURE):
    """record (a JSON value) with up to `changes` changes at random places: a value replaced by any JSON value, a
    field or item removed, a field or item added, or a string replaced by random text."""
    record = copy.deepcopy(record)
    for _ in range(draw(st.integers(0, changes))):
        places = [(None, None, record)]
        stack = [record]
        while stack:
            node = stack.pop()
            children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
            for key, child in children:
                places.append((node, key, child))
                stack.append(child)
        parent, key, node = draw(st.sampled_from(places))
        change = draw(st.sampled_from(how))
        if change == "text":
            if parent is not None and isinstance(node, str):
                parent[key] = draw(TEXT_)
        elif parent is None:
            record = draw(JSON) if change == "replace" else record
            if change == "add" and isinstance(record, dict):
                record[draw(TEXT_)] = draw(JSON)
        elif change == "replace":
            parent[key] = draw(JSON)
        elif change == "remove":
            del parent[key]
        elif isinstance(node, dict):
            node[draw(TEXT_)] = draw(JSON)
        elif isinstance(node, list):
            node.insert(draw(st.integers(0, len(node))), draw(JSON))
    return record


@st.composite
def lines_file(draw, valid: list, whole: bool = False):
    """The bytes of a JSONL file, in one of three moods: the valid records with random text in their strings
    (the schema kept), records changed in structure too (`mutated`), or chaos: any JSON values and raw byte lines,
    random bytes spliced in, the file cut anywhere or nothing but random bytes. LF or CRLF line ends (CR alone in
    chaos), a byte order mark, ASCII escapes or raw UTF-8, any number of lines; whole: every valid record in
    order, up to two of them changed (for readers that need many records, as `build` does)."""
    mood = draw(st.sampled_from(["text", "text", "structure", "chaos"]))
    records = [mutated(record, 2, ("text",)) if mood == "text" else mutated(record) for record in valid]
    extra = [JSON, st.sampled_from(RAW_LINES)] if mood == "chaos" else []
    if whole:
        values = list(valid)
        for _ in range(draw(st.integers(0, 2))):
            at = draw(st.integers(0, len(values) - 1))
            values[at] = draw(st.one_of(records[at], *extra))
    else:
        values = draw(st.lists(st.one_of(*records, *extra), min_size=0 if mood == "chaos" else 1, max_size=6))
    ascii_only = draw(st.booleans())
    data = [v if isinstance(v, bytes) else encoded(v, ascii_only) for v in values]
    ends = [b"\n", b"\r\n", b"\r"] if mood == "chaos" else [b"\n", b"\r\n"]
    text = draw(st.sampled_from(ends)).join(data) + draw(st.sampled_from([b"\n", b"", b"\r\n"]))
    if draw(st.booleans()):
        text = b"\xef\xbb\xbf" + text
    edit = draw(st.sampled_from(["cut", "splice", "bytes"])) if mood == "chaos" else None
    if edit == "cut" and text:
        text = text[: draw(st.integers(0, len(text)))]
    elif edit == "splice":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(min_size=1, max_size=4)) + text[at:]
    elif edit == "bytes":
        text = draw(st.binary(max_size=64))
    return text


def outcome(call, *args, **kwargs):
    """call's result, or the InputError it raised (the one line of exit code 2); any other exception fails."""
    try:
        result = call(*args, **kwargs)
    except InputError as error:
        event(f"{call.__name__}: refused")  # `pytest --hypothesis-show-statistics` counts both
        return error
    event(f"{call.__name__}: accepted")
    return result


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_gpt2):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_gpt2)


@pytest.fixture
def fresh(tmp_path):
    """A new empty folder per example (Hypothesis runs many examples in one test call)."""
    count = iter(range(10**6))

    def make() -> Path:
        folder = tmp_path / str(next(count))
        folder.mkdir()
        return folder
    return make


# -- evaluation files ---------------------------------------------------------------------------------------------
@fuzz(150)
@given(data=lines_file([QA, GEN, QA | {"answer_list": ["1", "2", "3"], "answer": "3"}]),
       name=st.sampled_from(["count.jsonl", "plan_gen.jsonl", "mine.json", "object_path.jsonl"]))
def test_evaluation_files(data, name, tokenizer, fresh):
    from e2wm.eval.config import EvalConfig
    from e2wm.eval.items import item_digest, load_eval_files
    from e2wm.eval.run import check_limits

    folder = fresh()
    path = write(folder, name, data)
    before = snapshot(folder)
    tasks = outcome(load_eval_files, [str(path)])
    if not isinstance(tasks, InputError):
        config = EvalConfig(model="m", data=[str(path)], out=str(folder / "out"), max_new_tokens=4)
        if not isinstance(outcome(check_limits, tokenizer, tasks, config, 64, []), InputError):
            for task in tasks:  # what eval writes of each item: its digest, its texts as JSON
                for item in task.items:
                    item_digest(item)
                    json.dumps(vars(item), ensure_ascii=False).encode("utf-8")
    assert snapshot(folder) == before


# -- training files and mixtures ----------------------------------------------------------------------------------
MIXTURE_ITEM = st.one_of(st.sampled_from(["1", "0.5", "0", "-1", "nan", "inf", "1e309", "heavy", "a.jsonl",
                                          "b.jsonl", "plan_gen", "e2wm:count", "paper", "\ud83d"]), TEXT_)


@fuzz(120)
@given(data=lines_file([GEN, {"input": "Q: x?\nA:", "ref": "y"}]),
       mixture=st.one_of(st.just("1 a.jsonl"), st.lists(MIXTURE_ITEM, max_size=5).map(" ".join)),
       max_len=st.integers(2, 40), truncation=st.sampled_from(["left", "right"]))
def test_training_files(data, mixture, max_len, truncation, tokenizer, fresh, monkeypatch):
    from e2wm.train.data import load_examples, parse_mixture

    folder = fresh()
    monkeypatch.chdir(folder)
    write(folder, "a.jsonl", data)
    write(folder, "b.jsonl", encoded(GEN, True) + b"\n")
    before = snapshot(folder)
    parsed = outcome(parse_mixture, mixture, folder)
    if not isinstance(parsed, InputError):
        outcome(load_examples, parsed, tokenizer, max_len, truncation)
    assert snapshot(folder) == before


# -- experience records (e2wm build) ------------------------------------------------------------------------------
@fuzz(60)
@given(plans=lines_file(programs(), whole=True), explore=lines_file([random_episode(i, steps=8) for i in range(8)],
                                                                    whole=True),
       which=st.sampled_from(["plans", "explore", "both"]))
def test_experience_records(plans, explore, which, fresh):
    from e2wm.data.config import BuildConfig
    from e2wm.recipes.build import build

    folder = fresh()
    given_files = {"plans": str(write(folder, "plans.jsonl", plans)) if which != "explore" else None,
                   "explore": str(write(folder, "explore.jsonl", explore)) if which != "plans" else None}
    before = snapshot(folder)
    result = outcome(build, BuildConfig(**given_files, out=str(folder / "out")))
    if isinstance(result, InputError):
        assert snapshot(folder) == before
    else:
        json.dumps(result)


# -- YAML configs -------------------------------------------------------------------------------------------------
COMMAND_OPTIONS = {
    "eval": ["model", "data", "out", "batch_size", "limit", "max_len", "num_beams", "ppl_data", "adapter", "dtype"],
    "train": ["model", "train", "out", "method", "lora_r", "lam", "lambda", "max_steps", "modules", "fisher", "lr"],
    "build": ["plans", "explore", "out", "shots", "seed", "story_steps", "answer_form"],
    "fisher": ["model", "corpus", "n", "out", "max_len", "batch_size", "modules"],
    "collect plans": ["programs", "simulations", "out", "max_programs", "workers"],
    "report": ["runs", "train_log", "out", "title", "bootstrap_resamples"],
    "demo": ["num_programs", "out", "train_steps", "programs"],
}


@st.composite
def config_file(draw):
    command = draw(st.sampled_from(sorted(COMMAND_OPTIONS)))
    keys = st.one_of(st.sampled_from(COMMAND_OPTIONS[command]), TEXT_, st.integers(), st.none())
    mapping = draw(st.dictionaries(keys, JSON, max_size=4))
    form = draw(st.sampled_from(["yaml", "yaml", "raw", "bytes"]))
    if form == "yaml":
        data = yaml.safe_dump(mapping, allow_unicode=draw(st.booleans())).encode("utf-8", "surrogatepass")
    elif form == "raw":
        data = draw(st.text(CHARS, max_size=60)).encode("utf-8", "surrogatepass")
    else:
        data = draw(st.binary(max_size=60))
    return command, data


@fuzz(150)
@given(case=config_file())
def test_yaml_configs(case, fresh, capsys):
    command, data = case
    folder = fresh()
    path = write(folder, "config.yaml", data)
    before = snapshot(folder)
    try:
        outcome(parse, command, ["--config", str(path)])
    except SystemExit as stop:  # argparse's usage error: one line, exit 2
        assert stop.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert snapshot(folder) == before


# -- Fisher headers -----------------------------------------------------------------------------------------------
HEADER = {"base_model": "m", "modules": ["q_proj"], "shapes": {"model.q_proj": [2, 2]}, "n": 2, "corpus": "c.jsonl",
          "max_len": 8, "dtype": "float32", "seed": 0, "extra": {}}


@fuzz(100)
@given(header=mutated(HEADER), form=st.sampled_from(["json", "json", "text", "no header", "garbage"]),
       text=st.text(CHARS, max_size=30), garbage=st.binary(max_size=40))
def test_fisher_headers(header, form, text, garbage, fresh):
    import torch
    from safetensors.torch import save_file

    from e2wm.train.fisher import HEADER_KEY, load_fisher

    folder = fresh()
    path = folder / "f.safetensors"
    if form == "garbage":
        path.write_bytes(garbage)
    else:
        metadata = {"json": {HEADER_KEY: json.dumps(header)}, "text": {HEADER_KEY: text}, "no header": {}}[form]
        try:
            save_file({"model.q_proj": torch.ones(2, 2)}, str(path), metadata=metadata)
        except UnicodeEncodeError:  # safetensors cannot store a lone surrogate: no such file can exist
            return
    before = snapshot(folder)
    outcome(load_fisher, path)
    assert snapshot(folder) == before


# -- perplexity and Fisher corpora --------------------------------------------------------------------------------
@fuzz(120)
@given(data=st.one_of(lines_file([TEXT, {"text": "a\n\nb"}]), st.text(CHARS, max_size=80).map(
    lambda s: s.encode("utf-8", "surrogatepass")), st.binary(max_size=80)),
       suffix=st.sampled_from([".jsonl", ".json", ".txt", ""]))
def test_corpora(data, suffix, tokenizer, fresh):
    from e2wm.eval.encoding import encode
    from e2wm.eval.perplexity import read_texts
    from e2wm.train.fisher import encode_texts

    folder = fresh()
    path = write(folder, "corpus" + suffix, data)
    before = snapshot(folder)
    texts = outcome(read_texts, path)
    if not isinstance(texts, InputError):
        encode_texts(tokenizer, texts, 16)  # as `e2wm fisher` encodes them
        [encode(tokenizer, text) for text in texts]  # as eval --ppl-data does
        json.dumps(texts, ensure_ascii=False).encode("utf-8")
    assert snapshot(folder) == before


# -- run folders that `e2wm report` reads -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eval_run(tiny_gpt2, tmp_path_factory) -> Path:
    """A real `e2wm eval` run of the tiny GPT-2 (QA, generation, perplexity), whose files the report fuzz mutates."""
    from adversarial.support import write_lines

    root = tmp_path_factory.mktemp("eval-run")
    count = write_lines(root / "data" / "count.jsonl", QA, QA | {"answer": "Wash dishes"}, QA)
    gen = write_lines(root / "data" / "plan_gen.jsonl", GEN, GEN)
    ppl = write_lines(root / "ppl.jsonl", TEXT, TEXT | {"text": "Open fridge. Grab cup."})
    main(["eval", "--model", str(tiny_gpt2), "--data", str(count), str(gen), "--ppl-data", str(ppl),
          "--max-new-tokens", "4", "--device", "cpu", "--out", str(root / "run")])
    return root / "run"


def run_files(run: Path) -> dict[str, object]:
    """The report's inputs of a run folder: the JSON files whole, the JSONL ones as lists of rows."""
    files = {}
    for path in [run / "metrics.json", run / "config.json", *sorted((run / "predictions").glob("*.jsonl"))]:
        text = path.read_text(encoding="utf-8")
        files[str(path.relative_to(run))] = (json.loads(text) if path.suffix == ".json" else
                                             [json.loads(line) for line in text.splitlines()])
    return files


@fuzz(40)
@given(data=st.data())
def test_report_runs(data, eval_run, fresh, monkeypatch):
    from e2wm.eval import report as report_module

    monkeypatch.setattr(report_module, "score_chart", lambda runs, file: None)  # the PNG: not a reader, slow
    files = run_files(eval_run)
    folder = fresh()
    for run in ("base", "other"):
        for name, value in files.items():
            if run == "other" and data.draw(st.booleans()):  # the base run as written, the other one changed
                if name.endswith(".jsonl"):
                    content = data.draw(lines_file(value))
                else:
                    content = encoded(data.draw(mutated(value)), data.draw(st.booleans()))
            else:
                content = b"".join(encoded(row, True) + b"\n" for row in value) if name.endswith(".jsonl") else \
                    encoded(value, True)
            write(folder / run, name, content)
    before = snapshot(folder)
    result = outcome(report_module.write_report, [folder / "base", folder / "other"], [], folder / "report.md",
                     resamples=100)
    if isinstance(result, InputError):
        assert snapshot(folder) == before


LOG_ROW = {"step": 1, "loss": 1.0, "ce": 1.0, "ewc": 0.0, "lr": 0.1, "grad_norm": 0.5, "seconds": 0.1,
           "task_ce": {"a.jsonl": 1.0}, "eval_ppl": 5.0}
TRAIN_CONFIG = {"options": {"method": "lora", "model": "m", "train": "1 a.jsonl", "batch_size": 2, "grad_accum": 1,
                            "seed": 0}, "settings": {"inputs": {"a.jsonl": "0" * 64}}}


@fuzz(40)
@given(log=lines_file([LOG_ROW, LOG_ROW | {"step": 2}]), config=mutated(TRAIN_CONFIG),
       adapter=mutated({"r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}))
def test_report_train_logs(log, config, adapter, fresh, monkeypatch):
    from e2wm.eval import report as report_module

    for chart in ("train_chart", "curve_chart"):  # the PNGs: not readers, slow
        monkeypatch.setattr(report_module, chart, lambda logs, file: None)
    folder = fresh()
    write(folder / "train", "log.jsonl", log)
    write(folder / "train", "config.json", encoded(config, True))
    write(folder / "train" / "adapter", "adapter_config.json", encoded(adapter, True))
    before = snapshot(folder)
    result = outcome(report_module.write_report, [], [folder / "train"], folder / "report.md")
    if isinstance(result, InputError):
        assert snapshot(folder) == before


# -- end to end, through the command line -------------------------------------------------------------------------
def one_line_or_success(argv: list, root: Path, capsys) -> None:
    """`e2wm argv` in-process: exit 0, or exit 2 with one line on standard error (progress bars aside) and nothing
    under root changed."""
    from adversarial.support import error_lines

    before = snapshot(root)
    capsys.readouterr()
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as stop:
        code = stop.code or 0
    err = capsys.readouterr().err
    event(f"{argv[0]}: exit {code}")
    assert code in (0, 2), err
    if code == 2:
        assert len(error_lines(err)) == 1, err
        assert snapshot(root) == before, err


@fuzz(6)
@given(qa=lines_file([QA]), gen=lines_file([GEN]), ppl=lines_file([TEXT]))
def test_eval_end_to_end(qa, gen, ppl, tiny_gpt2, fresh, capsys):
    folder = fresh()
    data = [write(folder, "count.jsonl", qa), write(folder, "plan_gen.jsonl", gen)]
    one_line_or_success(["eval", "--model", tiny_gpt2, "--data", *data, "--ppl-data", write(folder, "ppl.jsonl", ppl),
                         "--max-new-tokens", "2", "--device", "cpu", "--out", folder / "eval"], folder, capsys)


@fuzz(4)
@given(pairs=lines_file([GEN]), corpus=lines_file([TEXT]))
def test_train_and_fisher_end_to_end(pairs, corpus, tiny_llama, fresh, capsys):
    folder = fresh()
    one_line_or_success(["fisher", "--model", tiny_llama, "--corpus", write(folder, "c.jsonl", corpus), "--n", "2",
                         "--device", "cpu", "--out", folder / "f.safetensors"], folder, capsys)
    one_line_or_success(["train", "--model", tiny_llama, "--train", f"1 {write(folder, 'a.jsonl', pairs)}",
                         "--method", "lora", "--max-steps", "1", "--batch-size", "1", "--device", "cpu",
                         "--out", folder / "run"], folder, capsys)


@fuzz(6)
@given(adapter_config=mutated({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}),
       seed=st.integers(0, 3))
def test_adapter_config_end_to_end(adapter_config, seed, foreign, fresh, capsys):
    folder = fresh()
    adapter = folder / "adapter"
    adapter.mkdir()
    recorded = json.loads((foreign.llama_adapter / "adapter_config.json").read_text())
    keys = random.Random(seed).sample(sorted(recorded), 3)
    changed = {**recorded, **adapter_config} if isinstance(adapter_config, dict) else adapter_config
    if isinstance(changed, dict):
        changed = {key: value for key, value in changed.items() if key not in keys or key in adapter_config}
    write(adapter, "adapter_config.json", encoded(changed, True))
    write(adapter, "adapter_model.safetensors", (foreign.llama_adapter / "adapter_model.safetensors").read_bytes())
    qa = write(folder, "count.jsonl", encoded(QA, True) + b"\n")
    one_line_or_success(["eval", "--model", foreign.llama, "--adapter", adapter, "--data", qa, "--device", "cpu",
                         "--out", folder / "eval"], folder, capsys)


# -- what the fuzzing found: each fault as a plain test --------------------------------------------------------------
@pytest.mark.parametrize(("line", "said"), [
    (b"[" * 5000 + b"]" * 5000, "a.jsonl:2: bad JSON (nested too deeply to read)"),  # was a RecursionError
    (b'{"input": ' + b"9" * 5000 + b"}", "a.jsonl:2: bad JSON (a number too long to read)"),  # was a ValueError
    (b'{"input": "x", "ref": ["\\ud83d"]}', "a.jsonl:2: field 'ref[0]' holds a lone surrogate \\ud83d (not text"),
    (b'{"input": {"a": [1, {"b\\udfff": 2}]}}', "a.jsonl:2: field 'input.a[1].b\\udfff' (a key) holds a lone "
                                                "surrogate \\udfff"),
    (b'{"input": "\\ud83d\\ude00 is a whole pair", "ref": "y"}', None),
])
def test_json_lines_that_python_cannot_read_are_refused_with_their_line(line, said, tmp_path):
    from e2wm.files import read_jsonl

    path = write(tmp_path, "a.jsonl", encoded(GEN, True) + b"\n" + line + b"\n")
    if said is None:
        assert read_jsonl(path)[1]["input"] == "\U0001f600 is a whole pair"
        return
    with pytest.raises(InputError) as refused:
        read_jsonl(path)
    assert str(refused.value).startswith(f"{path.parent}/{said}"), str(refused.value)


def test_an_error_quoting_a_line_break_stays_one_line(tmp_path, capsys):
    """A field name or a YAML parser's message may hold line breaks and control characters: the one line of exit
    code 2 shows them escaped (it was two lines for a key with a newline, and for PyYAML's reader errors)."""
    plans = write(tmp_path, "plans.jsonl", encoded(programs()[0] | {"a\nb\ud83d": 1}, True) + b"\n")
    config = write(tmp_path, "config.yaml", b"out: x\x1f\n")
    for argv in (["build", "--plans", plans, "--out", tmp_path / "out"], ["build", "--config", config]):
        with pytest.raises(SystemExit) as stop:
            main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.count("\n") == 1, err
    assert "#x001f: special characters are not allowed\\n  in" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("header", "said"), [
    ({**HEADER, "modules": "q_proj"}, "field 'modules' must be list, got str"),  # was a wrong join, then a TypeError
    ({**HEADER, "modules": [1]}, "field 'modules' must hold strings only"),
    ({**HEADER, "shapes": {"model.q_proj": "2x2"}}, "field 'shapes.model.q_proj' must be a list of integers"),
    ({k: v for k, v in HEADER.items() if k != "n"}, "field 'n' is missing"),  # was a TypeError from FisherHeader
    ({**HEADER, "layers": 2}, "field 'layers' is not a field of an e2wm Fisher header"),
    ([HEADER], "expected a JSON object, got list"),
])
def test_a_fisher_header_of_other_fields_is_refused(header, said, tmp_path):
    import torch
    from safetensors.torch import save_file

    from e2wm.train.fisher import HEADER_KEY, load_fisher

    path = tmp_path / "f.safetensors"
    save_file({"model.q_proj": torch.ones(2, 2)}, str(path), metadata={HEADER_KEY: json.dumps(header)})
    with pytest.raises(InputError) as refused:
        load_fisher(path)
    assert str(refused.value) == f"--fisher {path} (its e2wm_fisher header): {said}"


def test_a_run_config_of_other_types_reads_as_not_recorded(eval_run, tmp_path):
    """The report's header reads a run's config.json leniently (what was not recorded is unknown): values of other
    types are unknown too, where `config.get` on a list or `None.startswith` were tracebacks."""
    from e2wm.eval.report import write_report

    run = tmp_path / "run"
    for name, value in run_files(eval_run).items():
        rows = value if name.endswith(".jsonl") else [value]
        write(run, name, b"\n".join(encoded(row, True) for row in rows) + b"\n")
    write(run, "config.json", encoded({"config": {"model": ["m"], "adapter": 3, "data": [None, "e2wm:count"]}}, True))
    text = write_report([run], [], tmp_path / "report.md", resamples=100)
    assert "model `?`; no adapter; data `e2wm:count` (the released E2WM benchmark" in text
    write(run, "config.json", encoded({"config": "m"}, True))
    assert "no config.json, so model and data are not recorded" in write_report([run], [], tmp_path / "r.md",
                                                                                resamples=100)


@pytest.mark.parametrize(("result", "said"), [
    ({"accuracy": 0.5, "n": "2"}, "n must be a finite number, got '2'"),
    ({"accuracy": 0.5, "accuracy_ci95": [0.1]}, "accuracy_ci95 must be [low, high] (finite numbers) or null"),
    ({"rougeL": 0.5, "majority": 0.5, "chance": 0.5}, "majority needs chance and an accuracy beside it"),
    ({"accuracy": 0.5, "majority": None, "chance": 0.5}, "majority must be a finite number, got None"),
    ([0.5], "must be an object of metrics, got list"),
    ({"accuracy": 7.5}, "accuracy must be between 0 and 1, got 7.5"),
    ({"rougeL": -0.1}, "rougeL must be between 0 and 1, got -0.1"),
    ({"accuracy": 0.5, "n": -3}, "n must not be negative, got -3"),
])
def test_metrics_the_report_cannot_read_are_refused(result, said, tmp_path):
    from e2wm.eval.report import load_run

    write(tmp_path / "run", "metrics.json", encoded({"count": result}, True))
    with pytest.raises(InputError) as refused:
        load_run(tmp_path / "run", "run")
    assert str(refused.value).startswith(f"{tmp_path / 'run' / 'metrics.json'}: task 'count'")
    assert said in str(refused.value)


@pytest.mark.parametrize(("config", "said"), [
    ({"r": 4, "target_modules": ["q_proj"]}, "not a PEFT adapter config (an object with a peft_type such as LORA; "
                                             "got dict)"),  # was KeyError: 'peft_type'
    ([], "not a PEFT adapter config (an object with a peft_type such as LORA; got list)"),  # was a TypeError
    ({"peft_type": "LORA", "r": "\ud83d"}, "adapter_config.json: field 'r' holds a lone surrogate"),
])
def test_an_adapter_config_peft_cannot_read_is_refused(config, said, tmp_path):
    from e2wm.models import adapter_config

    adapter = tmp_path / "adapter"
    write(adapter, "adapter_config.json", encoded(config, True))
    with pytest.raises(InputError) as refused:
        adapter_config(adapter, str(adapter))
    assert said in str(refused.value)
