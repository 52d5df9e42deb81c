"""Hostile and broken input to every command: each case is refused with the promise of `support.refused` (exit 2,
one line on standard error naming the file, line and field where there is one, no traceback, nothing written).

A case is a function registered with `@case(*fragments)`: it builds its inputs under `tmp` and returns the
argv; the refusal's line must contain every fragment. docs/reliability.md counts them.
"""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from adversarial.support import GEN, PAIR, QA, TEXT, Foreign, refused, write_lines
from helpers.experience_fixtures import programs, random_episode

from e2wm.cli import main

CASES: dict[str, tuple[tuple[str, ...], Callable[[Path, Foreign], list]]] = {}


def case(*fragments: str):
    def register(build: Callable[[Path, Foreign], list]):
        CASES[build.__name__.removeprefix("case_").replace("_", "-")] = (fragments, build)
        return build
    return register


def yaml(tmp: Path, text: str) -> Path:
    return write_lines(tmp / "config.yaml", text)


def plans(tmp: Path, *lines) -> Path:
    return write_lines(tmp / "plans.jsonl", *(lines or programs()[:3]))


def episodes(tmp: Path, *lines) -> Path:
    return write_lines(tmp / "explore.jsonl", *(lines or [random_episode(0), random_episode(1)]))


def pairs(tmp: Path, *lines) -> Path:
    return write_lines(tmp / "a.jsonl", *(lines or [PAIR, PAIR]))


def train(tmp: Path, f: Foreign, mixture: str, *extra) -> list:
    return ["train", "--model", f.llama, "--train", mixture, "--method", "lora", "--out", tmp / "run", *extra]


def qa(tmp: Path, *lines) -> Path:
    return write_lines(tmp / "count.jsonl", *(lines or [QA, QA]))


def evaluate(tmp: Path, f: Foreign, data, *extra) -> list:
    return ["eval", "--model", f.gpt2, "--data", data, "--out", tmp / "eval", *extra]


def fisher(tmp: Path, f: Foreign, corpus, *extra) -> list:
    return ["fisher", "--model", f.llama, "--corpus", corpus, "--n", "2", "--out", tmp / "f.safetensors", *extra]


def folder_with_a_file(tmp: Path, name: str) -> Path:
    folder = tmp / name
    write_lines(folder / "keep.txt", "not e2wm's")
    return folder


# -- the command line itself ------------------------------------------------------------------------------------
@case("unknown command 'trian'", "did you mean 'train'")
def case_cli_unknown_command(tmp, f):
    return ["trian"]


@case("ev\\udcff': not UTF-8 (byte 0xff)", "rename it")
def case_cli_out_name_not_utf8(tmp, f):
    return ["eval", "--model", f.gpt2, "--data", qa(tmp), "--out", str(tmp) + "/ev\udcff"]  # os.fsdecode(b"ev\xff")


@case("unrecognized arguments: --plan")
def case_cli_unknown_option(tmp, f):
    return ["build", "--plan", plans(tmp), "--out", tmp / "out"]


@case("config.yaml:3", "bad YAML")
def case_cli_bad_yaml(tmp, f):
    return ["build", "--config", yaml(tmp, "out: x\nplans: [unclosed")]


@case("config.yaml", "a directory, not a file")
def case_cli_config_is_a_directory(tmp, f):
    (tmp / "config.yaml").mkdir()
    return ["build", "--config", tmp / "config.yaml"]


@case("config.yaml:1", "not UTF-8")
def case_cli_config_not_utf8(tmp, f):
    return ["build", "--config", write_lines(tmp / "config.yaml", b"out: \xff\xfe")]


# -- world --------------------------------------------------------------------------------------------------------
@case("unknown program id 'file0_0'")
def case_world_unknown_program(tmp, f):
    return ["world", "--program", "file0_0"]


@case("nowhere: not a RobotHow directory")
def case_world_missing_robothow_dir(tmp, f):
    return ["world", "--program", "file1_1", "--robothow-dir", tmp / "nowhere"]


@case("robothow.txt: not a RobotHow directory")
def case_world_robothow_dir_is_a_file(tmp, f):
    return ["world", "--program", "file1_1", "--robothow-dir", write_lines(tmp / "robothow.txt", "x")]


# -- collect plans / collect explore -------------------------------------------------------------------------------
@case("unknown program id 'file0_0'")
def case_plans_unknown_program(tmp, f):
    return ["collect", "plans", "--programs", "file0_0", "--out", tmp / "p.jsonl"]


@case("--simulations must be at least 1, got 0")
def case_plans_zero_simulations(tmp, f):
    return ["collect", "plans", "--programs", "file3_1", "--simulations", "0", "--out", tmp / "p.jsonl"]


@case("--max-programs must be at least 1, got -2")
def case_plans_negative_max_programs(tmp, f):
    return ["collect", "plans", "--max-programs", "-2", "--out", tmp / "p.jsonl"]


@case("--out", "done", "a directory, not a file")
def case_plans_out_is_a_folder(tmp, f):
    return ["collect", "plans", "--programs", "file3_1", "--out", folder_with_a_file(tmp, "done")]


@case("p.jsonl:2: bad JSON")
def case_plans_out_broken_in_the_middle(tmp, f):
    out = write_lines(tmp / "p.jsonl", {"program": "file3_1"}, '{"program": "file15_2"', {"program": "file153_2"})
    return ["collect", "plans", "--programs", "file3_1", "--out", out]


@case("p.jsonl:1: field 'program' is missing", "not an output of e2wm collect")
def case_plans_out_of_another_kind(tmp, f):
    return ["collect", "plans", "--programs", "file3_1", "--out", write_lines(tmp / "p.jsonl", {"episode": 0})]


@case("p.jsonl:2: not UTF-8 text (byte 0xff)")
def case_plans_out_not_utf8(tmp, f):
    out = write_lines(tmp / "p.jsonl", {"program": "file3_1"}, b'{"program": "\xff"}')
    return ["collect", "plans", "--programs", "file3_1", "--out", out]


@case("--simulations must be an integer, got 2.5")
def case_plans_yaml_float_for_an_int(tmp, f):
    return ["collect", "plans", "--config", yaml(tmp, f"simulations: 2.5\nout: {tmp / 'p.jsonl'}")]


@case("config.yaml: field 'simulation' is not an option of this command")
def case_plans_yaml_unknown_key(tmp, f):
    return ["collect", "plans", "--config", yaml(tmp, f"simulation: 5\nout: {tmp / 'p.jsonl'}")]


@case("e.jsonl.settings.json:1: bad JSON")
def case_explore_settings_file_cut_short(tmp, f):
    write_lines(tmp / "e.jsonl.settings.json", '{"seed": 0, "ste')
    return ["collect", "explore", "--out", write_lines(tmp / "e.jsonl", {"episode": 0})]


@case("--episodes must be at least 1, got 0")
def case_explore_zero_episodes(tmp, f):
    return ["collect", "explore", "--episodes", "0", "--out", tmp / "e.jsonl"]


@case("--characters must be at least 1, got -1")
def case_explore_negative_characters(tmp, f):
    return ["collect", "explore", "--characters", "-1", "--out", tmp / "e.jsonl"]


@case("--workers must be at least 1, got 0")
def case_explore_zero_workers(tmp, f):
    return ["collect", "explore", "--workers", "0", "--out", tmp / "e.jsonl"]


@case("unknown program id 'kitchen'")
def case_explore_unknown_scene(tmp, f):
    return ["collect", "explore", "--scene", "kitchen", "--out", tmp / "e.jsonl"]


@case("--steps must be an integer, got 1.5")
def case_explore_yaml_float_for_an_int(tmp, f):
    return ["collect", "explore", "--config", yaml(tmp, f"steps: 1.5\nout: {tmp / 'e.jsonl'}")]


@case("--out /dev/null: not a regular file")
def case_explore_out_to_a_device(tmp, f):  # a traceback from fsync after the work
    return ["collect", "explore", "--episodes", "1", "--out", "/dev/null"]


@case("e.jsonl:1: field 'episode' is missing")
def case_explore_out_of_another_kind(tmp, f):
    return ["collect", "explore", "--out", write_lines(tmp / "e.jsonl", {"program": "file3_1"})]


# -- data download (from a local copy: no test reaches the network) -------------------------------------------------
@case("--from", "nowhere: no such folder")
def case_data_download_missing_source(tmp, f):
    return ["data", "download", "--from", tmp / "nowhere", "--dest", tmp / "cache"]


@case("--dest", "cache.txt", "a file, not a folder")
def case_data_download_dest_is_a_file(tmp, f):
    write_lines(tmp / "copy" / "train" / "train_count.json", {"input": "x", "ref": "y"})
    return ["data", "download", "--from", tmp / "copy", "--dest", write_lines(tmp / "cache.txt", "x")]


# -- data prose ---------------------------------------------------------------------------------------------------
@case("--source", "no Rdata.rdx there")
def case_data_prose_empty_source(tmp, f):
    (tmp / "d").mkdir()
    return ["data", "prose", "--out", tmp / "p.jsonl", "--source", tmp / "d"]


# -- train regularisers -------------------------------------------------------------------------------------------
@case("--regularisers replay needs --replay-data")
def case_train_replay_without_text(tmp, f):
    return ["train", "--model", f.llama, "--train", f"1 {pairs(tmp)}", "--regularisers", "replay", "--out", tmp / "r"]


# -- build --------------------------------------------------------------------------------------------------------
@case("plans.jsonl:2: bad JSON")
def case_build_bad_json_in_the_middle(tmp, f):
    return ["build", "--plans", plans(tmp, programs()[0], "{not json", programs()[1]), "--out", tmp / "out"]


@case("plans.jsonl:2: field 'activity' is missing")
def case_build_missing_field(tmp, f):
    record = {k: v for k, v in programs()[1].items() if k != "activity"}
    return ["build", "--plans", plans(tmp, programs()[0], record), "--out", tmp / "out"]


@case("plans.jsonl:1: field 'success' must be bool, got str")
def case_build_mistyped_field(tmp, f):
    return ["build", "--plans", plans(tmp, programs()[0] | {"success": "yes"}), "--out", tmp / "out"]


@case("plans.jsonl:1: field 'plan_text[1]' must be str, got int")
def case_build_mistyped_list_item(tmp, f):
    record = programs()[0]
    record["plan_text"] = [record["plan_text"][0], 7]
    return ["build", "--plans", plans(tmp, record), "--out", tmp / "out"]


@case("explore.jsonl:2: field 'steps[0].actor' must be int")
def case_build_mistyped_nested_field(tmp, f):
    bad = random_episode(1)
    bad["steps"][0]["actor"] = "John"
    return ["build", "--explore", episodes(tmp, random_episode(0), bad), "--out", tmp / "out"]


@case("explore.jsonl:1: field 'characters' must be a non-empty list")
def case_build_no_characters(tmp, f):
    return ["build", "--explore", episodes(tmp, random_episode(0) | {"characters": []}), "--out", tmp / "out"]


@case("plans.jsonl", "empty file (no records)")
def case_build_empty_file(tmp, f):
    (tmp / "plans.jsonl").write_bytes(b"")
    return ["build", "--plans", tmp / "plans.jsonl", "--explore", episodes(tmp), "--out", tmp / "out"]


@case("plans.jsonl:3: not UTF-8 text (byte 0xe0)")
def case_build_not_utf8(tmp, f):
    french = programs()[2] | {"activity": "Lire un livre à la fenêtre"}
    latin1 = json.dumps(french, ensure_ascii=False).encode("latin-1")
    return ["build", "--plans", plans(tmp, programs()[0], programs()[1], latin1), "--out", tmp / "out"]


@case("plans.jsonl", "a directory, not a file")
def case_build_directory_for_a_file(tmp, f):
    (tmp / "plans.jsonl").mkdir()
    return ["build", "--plans", tmp / "plans.jsonl", "--out", tmp / "out"]


@case("--out", "out.txt", "a file, not a folder")
def case_build_out_is_a_file(tmp, f):
    return ["build", "--plans", plans(tmp), "--out", write_lines(tmp / "out.txt", "x")]


@case("--shots must be at least 0, got -1")
def case_build_negative_shots(tmp, f):
    return ["build", "--plans", plans(tmp), "--shots", "-1", "--out", tmp / "out"]


@case("--story-steps must be an integer, got 2.0")
def case_build_yaml_float_for_an_int(tmp, f):
    return ["build", "--config", yaml(tmp, f"story_steps: 2.0\nexplore: {episodes(tmp)}\nout: {tmp / 'out'}")]


@case("--tokenizer tiny-tokenizer: not a local directory, not in the Hugging Face cache")
def case_build_unknown_tokenizer(tmp, f):
    return ["build", "--plans", plans(tmp), "--tokenizer", "tiny-tokenizer", "--out", tmp / "out"]


@case("give --plans, --explore or both")
def case_build_no_input(tmp, f):
    return ["build", "--out", tmp / "out"]


# -- fisher, fisher import ----------------------------------------------------------------------------------------
@case("corpus.jsonl:2: bad JSON")
def case_fisher_bad_json_in_the_middle(tmp, f):
    return fisher(tmp, f, write_lines(tmp / "corpus.jsonl", TEXT, '{"text": "cut', TEXT))


@case("corpus.jsonl:2: field 'text' is missing")
def case_fisher_missing_field(tmp, f):
    return fisher(tmp, f, write_lines(tmp / "corpus.jsonl", TEXT, {"body": "x"}))


@case("corpus.jsonl:1: field 'text' must be str, got int")
def case_fisher_mistyped_field(tmp, f):
    return fisher(tmp, f, write_lines(tmp / "corpus.jsonl", {"text": 42}))


@case("corpus.jsonl", "no text in the corpus")
def case_fisher_empty_file(tmp, f):
    return fisher(tmp, f, write_lines(tmp / "corpus.jsonl", "", "   "))


@case("corpus.txt:3: not UTF-8 text (byte 0xff)")
def case_fisher_plain_text_not_utf8(tmp, f):
    return fisher(tmp, f, write_lines(tmp / "corpus.txt", "One text.", "", b"Another \xff one."))


@case("--corpus", "corpus", "not a saved Hugging Face dataset")
def case_fisher_folder_not_a_dataset(tmp, f):
    return fisher(tmp, f, folder_with_a_file(tmp, "corpus"))


@case("--corpus", "no text has two or more tokens")
def case_fisher_texts_too_short(tmp, f):
    return ["fisher", "--model", f.gpt2, "--corpus", write_lines(tmp / "c.jsonl", {"text": "a"}, {"text": "b"}),
            "--out", tmp / "f.safetensors"]


@case("--n must be at least 1, got 0")
def case_fisher_zero_texts(tmp, f):
    return fisher(tmp, f, "model-samples", "--n", "0")


@case("--max-len must be at least 2, got 1")
def case_fisher_max_len_1(tmp, f):
    return fisher(tmp, f, "model-samples", "--max-len", "1")


@case("--batch-size must be at least 1, got -4")
def case_fisher_negative_batch(tmp, f):
    return fisher(tmp, f, "model-samples", "--batch-size", "-4")


@case("--modules", "lm_heads")
def case_fisher_unknown_module(tmp, f):
    return fisher(tmp, f, write_lines(tmp / "c.jsonl", TEXT), "--modules", "lm_heads")


@case("--model smollm-135m", "did you mean 'smollm2-135m'")
def case_fisher_unknown_model_name(tmp, f):
    return ["fisher", "--model", "smollm-135m", "--corpus", write_lines(tmp / "c.jsonl", TEXT), "--out",
            tmp / "f.safetensors"]


@case("--model", "has no config.json")
def case_fisher_model_folder_without_config(tmp, f):
    return ["fisher", "--model", folder_with_a_file(tmp, "model"), "--out", tmp / "f.safetensors"]


@case("--model", "cannot load its tokenizer (Couldn't instantiate the backend tokenizer")
def case_fisher_model_folder_without_tokenizer(tmp, f):
    model = tmp / "model"
    model.mkdir()
    (model / "config.json").write_bytes((Path(f.llama) / "config.json").read_bytes())
    return ["fisher", "--model", model, "--corpus", write_lines(tmp / "corpus.jsonl", TEXT), "--n", "2",
            "--out", tmp / "f.safetensors"]


@case("--out", "f.safetensors", "a directory, not a file")
def case_fisher_out_is_a_folder(tmp, f):
    folder_with_a_file(tmp, "f.safetensors")
    return fisher(tmp, f, write_lines(tmp / "c.jsonl", TEXT))


@case("model.safetensors", "cannot read")
def case_fisher_import_not_safetensors(tmp, f):
    write_lines(tmp / "ckpt" / "model.safetensors", "this is not a safetensors file")
    return ["fisher", "import", "--checkpoint", tmp / "ckpt", "--model", f.llama, "--out", tmp / "f.safetensors"]


@case("--checkpoint", "q_proj.weight has shape", "but the model's is [32, 32]")
def case_fisher_import_of_another_model(tmp, f):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(f.wide_fisher))
    (tmp / "ckpt").mkdir()
    save_file({name + ".weight": value for name, value in tensors.items()}, str(tmp / "ckpt" / "model.safetensors"))
    return ["fisher", "import", "--checkpoint", tmp / "ckpt", "--model", f.llama, "--out", tmp / "f.safetensors"]


@case("--checkpoint", "no tensor for model.layers.0.self_attn.q_proj.weight (a Fisher of another model?)")
def case_fisher_import_of_another_architecture(tmp, f):
    from safetensors.torch import save_file

    (tmp / "ckpt").mkdir()
    save_file({"transformer.h.0.attn.c_attn.weight": torch.ones(32, 96)}, str(tmp / "ckpt" / "model.safetensors"))
    return ["fisher", "import", "--checkpoint", tmp / "ckpt", "--model", f.llama, "--out", tmp / "f.safetensors"]


@case("pytorch_model.bin: refused: its weights file holds objects other than tensors")
def case_fisher_import_pickle_that_runs_code(tmp, f):
    from helpers.files import RunsCode

    (tmp / "ckpt").mkdir()
    torch.save({"x": RunsCode(tmp / "ran")}, tmp / "ckpt" / "pytorch_model.bin")  # the snapshot sees "ran" appear
    return ["fisher", "import", "--checkpoint", tmp / "ckpt", "--model", f.llama, "--out", tmp / "f.safetensors"]


@case("--n must be at least 0, got -5")
def case_fisher_import_negative_n(tmp, f):
    return ["fisher", "import", "--checkpoint", tmp, "--model", f.llama, "--n", "-5", "--out", tmp / "f.safetensors"]


# -- train --------------------------------------------------------------------------------------------------------
@case("weight '0'", "must be a positive number")
def case_train_zero_weight(tmp, f):
    return train(tmp, f, f"0 {pairs(tmp)}")


@case("weight '-0.5'", "must be a positive number")
def case_train_negative_weight(tmp, f):
    return train(tmp, f, f"1 {pairs(tmp)} -0.5 {pairs(tmp)}")


@case("item 1 'heavy' is not a weight")
def case_train_non_numeric_weight(tmp, f):
    return train(tmp, f, f"heavy {pairs(tmp)}")


@case("expected pairs 'WEIGHT FILE ...' (got 3 items)")
def case_train_odd_number_of_tokens(tmp, f):
    return train(tmp, f, f"1 {pairs(tmp)} 0.5")


@case("weight 'nan'", "must be a positive number")
def case_train_nan_weight(tmp, f):
    return train(tmp, f, f"nan {pairs(tmp)}")


@case("item 1 'heavy' is not a weight")
def case_train_yaml_mixture_with_a_word_for_a_weight(tmp, f):
    return ["train", "--config", yaml(tmp, f"model: {f.llama}\nmethod: lora\nout: {tmp / 'run'}\ntrain:\n"
                                           f"  {pairs(tmp)}: heavy")]


@case("a.jsonl:2: bad JSON")
def case_train_bad_json_in_the_middle(tmp, f):
    return train(tmp, f, f"1 {pairs(tmp, PAIR, '{oops}', PAIR)}")


@case("a.jsonl:2: field 'ref' is missing")
def case_train_missing_field(tmp, f):
    return train(tmp, f, f"1 {pairs(tmp, PAIR, {'input': 'x'})}")


@case("a.jsonl:1: field 'input' must be str, got list")
def case_train_mistyped_field(tmp, f):
    return train(tmp, f, f"1 {pairs(tmp, {'input': ['x'], 'ref': 'y'})}")


@case("a.jsonl:1: field 'ref' is empty")
def case_train_blank_answer(tmp, f):
    return train(tmp, f, f"1 {pairs(tmp, {'input': 'x', 'ref': '  '})}")


@case("a.jsonl", "the file is empty")
def case_train_empty_file(tmp, f):
    return train(tmp, f, f"1 {write_lines(tmp / 'a.jsonl', '')}")


@case("a.jsonl:1: not UTF-8 text (byte 0x80)")
def case_train_not_utf8(tmp, f):
    data = pairs(tmp, b'{"input": "\x80", "ref": "y"}')
    return train(tmp, f, f"1 {data}")


@case("data", "a directory, not a file")
def case_train_directory_for_a_file(tmp, f):
    return train(tmp, f, f"1 {folder_with_a_file(tmp, 'data')}")


@case("--fisher", "not a safetensors file")
def case_train_fisher_not_safetensors(tmp, f):
    garbage = write_lines(tmp / "f.safetensors", "not a safetensors file")
    return ["train", "--model", f.llama, "--train", f"1 {pairs(tmp)}", "--fisher", garbage, "--out", tmp / "run"]


@case("--fisher", "q_proj has shape [32, 48] but the model's weight is [32, 32]")
def case_train_fisher_of_another_model(tmp, f):
    return ["train", "--model", f.llama, "--train", f"1 {pairs(tmp)}", "--fisher", f.wide_fisher,
            "--out", tmp / "run"]


@case("--fisher", "holds nan at [0, 0]", "1 entries not finite or negative")
def case_train_fisher_with_a_nan(tmp, f):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(f.wide_fisher), framework="pt") as handle:
        metadata, tensors = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    next(iter(tensors.values()))[0, 0] = float("nan")
    save_file(tensors, str(tmp / "nan.safetensors"), metadata=metadata)
    return ["train", "--model", f.llama, "--train", f"1 {pairs(tmp)}", "--fisher", tmp / "nan.safetensors",
            "--out", tmp / "run"]


@case("--out", "a.jsonl is a file, not a folder")
def case_train_out_inside_a_file(tmp, f):
    return train(tmp, f, f"1 {pairs(tmp)}", "--out", tmp / "a.jsonl" / "run")


@case("gpt2.safetensors: computed on gpt2 for its c_attn layers", "no Linear/Conv1D layer of these names")
def case_train_fisher_of_another_architecture(tmp, f):
    from e2wm.train.fisher import FisherHeader, save_fisher

    gpt2_fisher = tmp / "gpt2.safetensors"
    save_fisher(gpt2_fisher, {"transformer.h.0.attn.c_attn": torch.ones(32, 96)},
                FisherHeader("gpt2", ["c_attn"], {}, 1, "x", 8, "float32"))
    return ["train", "--model", f.llama, "--train", f"1 {pairs(tmp)}", "--fisher", gpt2_fisher, "--out", tmp / "run"]


@case("--max-len must be at least 2, got 1")
def case_train_max_len_1(tmp, f):
    return train(tmp, f, f"1 {pairs(tmp)}", "--max-len", "1")


@case("none of its 2 examples keeps an answer token within --max-len 2")
def case_train_max_len_keeps_no_answer(tmp, f):
    return train(tmp, f, f"1 {pairs(tmp)}", "--max-len", "2", "--truncation", "right")


@case("--batch-size must be at least 1, got 0")
def case_train_zero_batch(tmp, f):
    return train(tmp, f, f"1 {pairs(tmp)}", "--batch-size", "0")


@case("--lr must be above 0, got 0.0")
def case_train_zero_learning_rate(tmp, f):
    return train(tmp, f, f"1 {pairs(tmp)}", "--lr", "0")


@case("--epochs must be at least 1, got -1")
def case_train_negative_epochs(tmp, f):
    return train(tmp, f, f"1 {pairs(tmp)}", "--epochs", "-1")


@case("2 examples make no full optimiser step of --batch-size 1 x --grad-accum 3")
def case_train_fewer_examples_than_a_step(tmp, f):
    return train(tmp, f, f"1 {pairs(tmp)}", "--batch-size", "1", "--grad-accum", "3")


@case("2 examples make no full optimiser step of --batch-size 8 x --grad-accum 1")
def case_train_a_batch_larger_than_the_data(tmp, f):  # was trained at a quarter of the loss (mixture divisor)
    return train(tmp, f, f"1 {pairs(tmp)}", "--batch-size", "8")


@case("--lora-r must be an integer, got 8.5")
def case_train_yaml_float_for_an_int(tmp, f):
    return ["train", "--config", yaml(tmp, f"model: {f.llama}\ntrain: 1 {pairs(tmp)}\nmethod: lora\nlora_r: 8.5\n"
                                           f"out: {tmp / 'run'}")]


@case("config.yaml: field 'learning_rate' is not an option of this command")
def case_train_yaml_unknown_key(tmp, f):
    return ["train", "--config", yaml(tmp, f"train: 1 {pairs(tmp)}\nlearning_rate: 0.1\nout: {tmp / 'run'}")]


@case("--out", "run.txt", "a file, not a folder")
def case_train_out_is_a_file(tmp, f):
    return ["train", "--model", f.llama, "--train", f"1 {pairs(tmp)}", "--method", "lora",
            "--out", write_lines(tmp / "run.txt", "x")]


@case("--resume", "has no checkpoint to resume from")
def case_train_resume_without_a_run(tmp, f):
    return train(tmp, f, f"1 {pairs(tmp)}", "--resume")


@case("--model llama-tiny", "not in the Hugging Face cache")
def case_train_unknown_model_name(tmp, f):
    return ["train", "--model", "llama-tiny", "--train", f"1 {pairs(tmp)}", "--method", "lora", "--out", tmp / "run"]


@case("--modules ',,' names no module")
def case_train_modules_without_a_name(tmp, f):  # trained the default modules without a word
    return train(tmp, f, f"1 {pairs(tmp)}", "--modules", ",,")


@case("--autocast bf16 with --dtype float16")
def case_train_bf16_autocast_over_float16_weights(tmp, f):
    return train(tmp, f, f"1 {pairs(tmp)}", "--autocast", "bf16", "--dtype", "float16")


@case("--train: e2wm: the E2WM benchmark has no such training file", "e2wm:count")
def case_train_the_whole_benchmark_as_a_file(tmp, f):  # the line named e2wm:e2wm
    return train(tmp, f, "1 e2wm")


@case("--train: ", "loop.jsonl: a symbolic link that leads nowhere")
def case_train_symlink_loop(tmp, f):  # said "no such file"
    (tmp / "loop.jsonl").symlink_to(tmp / "loop.jsonl")
    return train(tmp, f, f"1 {tmp / 'loop.jsonl'}")


# -- eval ---------------------------------------------------------------------------------------------------------
@case("count.jsonl:2: field 'answer' 'Cook' is not in answer_list")
def case_eval_gold_answer_not_an_option(tmp, f):
    return evaluate(tmp, f, qa(tmp, QA, QA | {"answer": "Cook"}))


@case("--data eai:goal_interpretation: not a task of the Embodied Agent Interface's; e2wm has eai:action_sequence")
def case_eval_unknown_eai_task(tmp, f):
    return evaluate(tmp, f, "eai:goal_interpretation")


@case("--data eai:action_sequence: given twice")
def case_eval_eai_twice(tmp, f):
    return ["eval", "--model", f.gpt2, "--data", "eai:action_sequence", "eai:action_sequence", "--out", tmp / "eval"]


@case("--eai-form", "invalid choice")
def case_eval_unknown_eai_form(tmp, f):
    return evaluate(tmp, f, "eai:action_sequence", "--eai-form", "chat")


@case("not a RobotHow directory")
def case_eval_robothow_dir_not_robothow(tmp, f):
    (tmp / "empty").mkdir()
    return evaluate(tmp, f, qa(tmp, QA), "--robothow-dir", tmp / "empty")


@case("count.jsonl:1: field 'answer' must be str, got int")
def case_eval_gold_answer_as_an_index(tmp, f):
    return evaluate(tmp, f, qa(tmp, QA | {"answer": 5}))


@case("count.jsonl:2: field 'answer_list' is empty")
def case_eval_empty_options(tmp, f):
    return evaluate(tmp, f, qa(tmp, QA, QA | {"answer_list": []}))


@case("count.jsonl:1: field 'answer_list' must hold strings only")
def case_eval_mistyped_options(tmp, f):
    return evaluate(tmp, f, qa(tmp, QA | {"answer_list": ["Watch TV", None]}))


@case("count.jsonl:2: bad JSON")
def case_eval_bad_json_in_the_middle(tmp, f):
    return evaluate(tmp, f, qa(tmp, QA, '{"input": "x", "answer_list": ["a"]', QA))


@case("count.jsonl:3: expected a JSON object, got list")
def case_eval_not_an_object(tmp, f):
    return evaluate(tmp, f, qa(tmp, QA, QA, "[1, 2]"))


@case("plan_gen.jsonl:2: field 'input' is missing")
def case_eval_missing_field(tmp, f):
    return evaluate(tmp, f, write_lines(tmp / "plan_gen.jsonl", GEN, {"ref": "x"}))


@case("count.jsonl", "empty file (no records)")
def case_eval_empty_file(tmp, f):
    return evaluate(tmp, f, write_lines(tmp / "count.jsonl", ""))


@case("count.jsonl:1: not UTF-8 text (byte 0xe9)")
def case_eval_bom_then_latin1(tmp, f):
    return evaluate(tmp, f, write_lines(tmp / "count.jsonl", b"\xef\xbb\xbf" + json.dumps(QA | {
        "input": "Caf\u00e9?"}, ensure_ascii=False).encode("latin-1")))


@case("count.jsonl:1: not UTF-8 text (byte 0xfe)")
def case_eval_not_utf8(tmp, f):
    return evaluate(tmp, f, write_lines(tmp / "count.jsonl", b"\xfe\xff" + json.dumps(QA).encode("utf-16-le")))


@case("data", "holds no evaluation files")
def case_eval_folder_without_files(tmp, f):
    return evaluate(tmp, f, folder_with_a_file(tmp, "data"))


@case("--adapter", "size mismatch for", "q_proj.lora_A", "the file's [4, 48], the model's [4, 32]")
def case_eval_adapter_of_another_size(tmp, f):
    return ["eval", "--model", f.llama, "--adapter", f.wide_adapter, "--data", qa(tmp), "--out", tmp / "eval"]


@case("--adapter", "c_attn", "not found in the base model")
def case_eval_adapter_of_another_architecture(tmp, f):
    return ["eval", "--model", f.llama, "--adapter", f.gpt2_adapter, "--data", qa(tmp), "--out", tmp / "eval"]


@case("--adapter", "adapter_model.safetensors is not a safetensors file")
def case_eval_adapter_not_safetensors(tmp, f):
    adapter = tmp / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_bytes((f.llama_adapter / "adapter_config.json").read_bytes())
    write_lines(adapter / "adapter_model.safetensors", "garbage")
    return ["eval", "--model", f.llama, "--adapter", adapter, "--data", qa(tmp), "--out", tmp / "eval"]


@case("--adapter", "adapter_config.json but no weights (adapter_model.safetensors or adapter_model.bin)")
def case_eval_adapter_without_weights(tmp, f):
    adapter = tmp / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_bytes((f.llama_adapter / "adapter_config.json").read_bytes())
    return ["eval", "--model", f.llama, "--adapter", adapter, "--data", qa(tmp), "--out", tmp / "eval"]


@case("--max-len must be at least 2, got 1")
def case_eval_max_len_1(tmp, f):
    return evaluate(tmp, f, qa(tmp), "--max-len", "1")


@case("count.jsonl:1: field 'answer_list'", "--max-len 3")
def case_eval_max_len_below_an_option(tmp, f):
    return evaluate(tmp, f, qa(tmp), "--max-len", "3")


@case("plan_gen.jsonl", "--max-new-tokens 16 leaves no prompt token within --max-len 16")
def case_eval_max_new_tokens_fill_the_context(tmp, f):
    return evaluate(tmp, f, write_lines(tmp / "plan_gen.jsonl", GEN), "--max-len", "16", "--max-new-tokens", "16")


@case("--max-len 100000 exceeds the model's context of 512 tokens")
def case_eval_max_len_beyond_the_model(tmp, f):
    return evaluate(tmp, f, qa(tmp), "--max-len", "100000")


@case("--out", "count.jsonl is a file, not a folder")
def case_eval_out_inside_a_file(tmp, f):
    return evaluate(tmp, f, qa(tmp), "--out", tmp / "count.jsonl" / "eval")


@case("loop.json: a symbolic link that leads nowhere")
def case_eval_data_symlink_loop(tmp, f):
    (tmp / "loop.json").symlink_to(tmp / "loop.json")
    return evaluate(tmp, f, tmp / "loop.json")


@case("--device meta: not a device that computes (cpu, cuda, mps, xpu)")
def case_eval_meta_device(tmp, f):
    return evaluate(tmp, f, qa(tmp), "--device", "meta")


@case("--device cpu:1: torch has one CPU device (cpu)")
def case_eval_second_cpu(tmp, f):
    return evaluate(tmp, f, qa(tmp), "--device", "cpu:1")


@case("c\\udcffunt.jsonl': not UTF-8 (byte 0xff)", "rename it")
def case_eval_folder_with_a_file_name_not_utf8(tmp, f):
    qa(tmp).rename(tmp / "c\udcffunt.jsonl")  # os.fsdecode(b"c\xffunt.jsonl"): the task name would be written
    return evaluate(tmp, f, tmp)


@case("ppl.jsonl:1: field 'text' is missing")
def case_eval_ppl_data_missing_field(tmp, f):
    return evaluate(tmp, f, qa(tmp), "--ppl-data", write_lines(tmp / "ppl.jsonl", {"txt": "x"}))


@case("ppl.txt:1: not UTF-8 text (byte 0xc3)")
def case_eval_ppl_data_not_utf8(tmp, f):
    return evaluate(tmp, f, qa(tmp), "--ppl-data", write_lines(tmp / "ppl.txt", b"caf\xc3("))


@case("--out", "eval.txt", "a file, not a folder")
def case_eval_out_is_a_file(tmp, f):
    return ["eval", "--model", f.gpt2, "--data", qa(tmp), "--out", write_lines(tmp / "eval.txt", "x")]


@case("--limit must be at least 1, got 0")
def case_eval_zero_limit(tmp, f):
    return evaluate(tmp, f, qa(tmp), "--limit", "0")


@case("--num-beams must be at least 1, got -3")
def case_eval_negative_beams(tmp, f):
    return evaluate(tmp, f, qa(tmp), "--num-beams", "-3")


@case("--batch-size must be an integer, got 2.0")
def case_eval_yaml_float_for_an_int(tmp, f):
    return ["eval", "--config", yaml(tmp, f"data: [{qa(tmp)}]\nbatch_size: 2.0\nout: {tmp / 'eval'}")]


@case("--model", "gpt-2", "not in the Hugging Face cache")
def case_eval_unknown_model_name(tmp, f):
    return ["eval", "--model", "gpt-2", "--data", qa(tmp), "--out", tmp / "eval"]


# -- a lone surrogate (a valid JSON escape of half a UTF-16 pair) in any file: refused at the reader ----------------
SURROGATE = "holds a lone surrogate \\ud83d (not text"


@case("count.jsonl:2: field 'input'", SURROGATE)
def case_eval_qa_lone_surrogate(tmp, f):  # was a TypeError in the tokenizer after the model loaded
    return evaluate(tmp, f, qa(tmp, QA, QA | {"input": "Bob walked \ud83d. How many times?"}))


@case("plan_gen.jsonl:1: field 'ref'", SURROGATE)
def case_eval_generation_lone_surrogate(tmp, f):  # config.json was left behind
    return evaluate(tmp, f, write_lines(tmp / "plan_gen.jsonl", GEN | {"ref": "Walk \ud83d."}, GEN))


@case("count.jsonl:1: field 'answer_list[1]'", SURROGATE)
def case_eval_lone_surrogate_in_an_option(tmp, f):
    return evaluate(tmp, f, qa(tmp, QA | {"answer_list": ["Watch TV", "\ud83d"]}))


@case("ppl.jsonl:1: field 'text'", SURROGATE)
def case_eval_ppl_data_lone_surrogate(tmp, f):
    return evaluate(tmp, f, qa(tmp), "--ppl-data", write_lines(tmp / "ppl.jsonl", {"text": "the cup \ud83d is here"}))


@case("a.jsonl:2: field 'input'", SURROGATE)
def case_train_lone_surrogate(tmp, f):
    data = pairs(tmp, PAIR, PAIR | {"input": "Task: Drink milk \ud83d."})
    return train(tmp, f, f"1 {data}")


@case("corpus.jsonl:1: field 'text'", SURROGATE)
def case_fisher_corpus_lone_surrogate(tmp, f):
    return fisher(tmp, f, write_lines(tmp / "corpus.jsonl", {"text": "the cup \ud83d"}, TEXT))


@case("explore.jsonl:2: field 'steps[3].text'", SURROGATE)
def case_build_lone_surrogate_in_a_nested_field(tmp, f):
    bad = random_episode(1)
    bad["steps"][3]["text"] = "Walk to \ud83d."  # a field build does not read: refused all the same
    return ["build", "--explore", episodes(tmp, random_episode(0), bad), "--out", tmp / "out"]


@case("plans.jsonl:1: field 'note\\ud83d' (a key)", SURROGATE)
def case_build_lone_surrogate_in_a_key(tmp, f):
    return ["build", "--plans", plans(tmp, programs()[0] | {"note\ud83d": 1}), "--out", tmp / "out"]


@case("config.yaml: field 'title'", SURROGATE)
def case_report_yaml_lone_surrogate(tmp, f):
    return ["report", "--config", yaml(tmp, f'title: "E2WM \\ud83d"\nout: {tmp / "r.md"}\ntrain_log: [{tmp}]')]


@case("run/metrics.json: field 'count.majority_answer'", SURROGATE)
def case_report_metrics_lone_surrogate(tmp, f):
    write_lines(tmp / "run" / "metrics.json", {"count": {"accuracy": 0.5, "n": 2, "majority_answer": "\ud83d"}})
    return ["report", tmp / "run", "--out", tmp / "report.md"]


# -- report, export merged, export lm-eval, plan-memory, demo ----------------------------------------------------------
@case("run", "metrics.json")
def case_report_run_without_metrics(tmp, f):
    return ["report", folder_with_a_file(tmp, "run"), "--out", tmp / "report.md"]


@case("run/metrics.json: task 'count': accuracy must be a finite number, got nan")
def case_report_metrics_with_a_nan(tmp, f):  # json reads NaN; the report printed nan +- nan
    write_lines(tmp / "run" / "metrics.json", '{"count": {"accuracy": NaN, "n": 2}}')
    return ["report", tmp / "run", "--out", tmp / "report.md"]


@case("run/metrics.json:1: bad JSON")
def case_report_metrics_not_utf8(tmp, f):
    write_lines(tmp / "run" / "metrics.json", b'{"count": {"accuracy": 0.5\xff')
    return ["report", tmp / "run", "--out", tmp / "report.md"]


@case("run/metrics.json:3: bad JSON")
def case_report_metrics_cut_short(tmp, f):
    write_lines(tmp / "run" / "metrics.json", '{"count":', '  {"accuracy": 0.5,')
    return ["report", tmp / "run", "--out", tmp / "report.md"]


@case("train/log.jsonl:2: field 'ce' is missing")
def case_report_train_log_of_another_kind(tmp, f):
    row = {"step": 1, "loss": 1.0, "ce": 1.0, "ewc": 0.0, "lr": 0.1}
    write_lines(tmp / "train" / "log.jsonl", row, {k: v for k, v in row.items() if k != "ce"} | {"step": 2})
    return ["report", "--train-log", tmp / "train", "--out", tmp / "report.md"]


@case("log.jsonl:2: field 'loss' must be int or float, got str")
def case_report_train_log_mistyped_loss(tmp, f):
    row = {"step": 1, "loss": 1.0, "ce": 1.0, "ewc": 0.0, "lr": 0.1}
    write_lines(tmp / "train" / "log.jsonl", row, row | {"step": 2, "loss": "1.0"})
    return ["report", "--train-log", tmp / "train", "--out", tmp / "report.md"]


@case("log.jsonl:1: field 'task_ce.count' must be a number, got NoneType")
def case_report_train_log_mistyped_task_ce(tmp, f):
    row = {"step": 1, "loss": 1.0, "ce": 1.0, "ewc": 0.0, "lr": 0.1, "task_ce": {"count": None}}
    write_lines(tmp / "train" / "log.jsonl", row)
    return ["report", "--train-log", tmp / "train", "--out", tmp / "report.md"]


@case("--out", "the report is markdown")
def case_report_out_is_a_folder(tmp, f):
    write_lines(tmp / "train" / "log.jsonl", {"step": 1, "loss": 1.0, "ce": 1.0, "ewc": 0.0, "lr": 0.1})
    return ["report", "--train-log", tmp / "train", "--out", folder_with_a_file(tmp, "reports")]


@case("log.jsonl")
def case_report_train_log_missing(tmp, f):
    return ["report", "--train-log", folder_with_a_file(tmp, "train"), "--out", tmp / "report.md"]


@case("--bootstrap-resamples must be at least 100, got 10")
def case_report_too_few_resamples(tmp, f):
    return ["report", tmp, "--bootstrap-resamples", "10", "--out", tmp / "report.md"]


@case("--adapter", "size mismatch for", "q_proj.lora_A", "the file's [4, 48], the model's [4, 32]")
def case_export_adapter_of_another_model(tmp, f):
    return ["export", "merged", "--model", f.llama, "--adapter", f.wide_adapter, "--out", tmp / "merged"]


@case("--out", "merged", "already exists")
def case_export_out_not_empty(tmp, f):
    return ["export", "merged", "--model", f.llama, "--adapter", f.llama_adapter, "--out",
            folder_with_a_file(tmp, "merged")]


@case("--adapter", "not a PEFT adapter directory")
def case_export_adapter_missing(tmp, f):
    return ["export", "merged", "--model", f.llama, "--adapter", tmp / "nope", "--out", tmp / "merged"]


@case("--push a/b/c: not a Hub repository id (Repo id must be in the form 'repo_name' or 'namespace/repo_name'")
def case_export_push_to_a_bad_repo_id(tmp, f):
    return ["export", "merged", "--model", f.llama, "--adapter", f.llama_adapter, "--out", tmp / "m", "--push", "a/b/c"]


@case("argument --dtype: invalid choice: 'float8'")
def case_export_unknown_dtype(tmp, f):
    return ["export", "merged", "--model", f.llama, "--adapter", f.llama_adapter, "--dtype", "float8", "--out",
            tmp / "merged"]


@case("--out", "count.jsonl is a file, not a folder")
def case_lm_eval_out_inside_a_file(tmp, f):
    return ["export", "lm-eval", "--data", qa(tmp), "--out", tmp / "count.jsonl" / "tasks"]


def export_lm_eval(tmp, data) -> list:
    """`e2wm export lm-eval` of data into tmp/tasks."""
    return ["export", "lm-eval", "--data", data, "--out", tmp / "tasks"]


@case("count.jsonl:2: bad JSON")
def case_lm_eval_broken_line(tmp, f):
    return export_lm_eval(tmp, write_lines(tmp / "count.jsonl", QA, "{bad"))


@case("nope.jsonl: no such file or directory")
def case_lm_eval_missing_file(tmp, f):
    return export_lm_eval(tmp, tmp / "nope.jsonl")


@case("empty: directory holds no evaluation files")
def case_lm_eval_empty_folder(tmp, f):
    (tmp / "empty").mkdir()
    return export_lm_eval(tmp, tmp / "empty")


@case("--out", "tasks: already exists")
def case_lm_eval_out_exists(tmp, f):
    folder_with_a_file(tmp, "tasks")
    return export_lm_eval(tmp, qa(tmp))


@case("plan_gen.jsonl:2: field 'input' is empty")
def case_lm_eval_generation_without_prompt(tmp, f):
    data = write_lines(tmp / "plan_gen.jsonl", GEN, GEN | {"input": " "})
    return export_lm_eval(tmp, data)


@case("qa.jsonl", "e2wm_qa is a group's name")
def case_lm_eval_file_named_like_a_group(tmp, f):
    return export_lm_eval(tmp, write_lines(tmp / "qa.jsonl", QA))


@case("count.jsonl:1: field 'answer' must be str, got int")
def case_lm_eval_answer_index(tmp, f):
    return export_lm_eval(tmp, qa(tmp, QA | {"answer": 0}))


@case("--out must not be empty")
def case_lm_eval_empty_out(tmp, f):
    return ["export", "lm-eval", "--data", qa(tmp), "--out", ""]  # not the current folder


@case("count.jsonl: given twice")
def case_lm_eval_same_file_twice(tmp, f):
    data = write_lines(tmp / "data" / "count.jsonl", QA, QA)
    return ["export", "lm-eval", "--data", data, data.parent, "--out", tmp / "tasks"]


@case("--out", "is inside --data")
def case_lm_eval_out_inside_the_data(tmp, f):
    data = write_lines(tmp / "data" / "count.jsonl", QA, QA)
    return ["export", "lm-eval", "--data", data.parent, "--out", data.parent / "tasks"]


@case("count.jsonl: given twice")
def case_eval_same_file_twice(tmp, f):
    data = qa(tmp)
    return ["eval", "--model", f.gpt2, "--data", data, data, "--out", tmp / "eval"]


@case("--batch-size must be at least 1, got 0")
def case_plan_memory_zero_batch(tmp, f):
    return ["plan-memory", "--model", f.llama, "--batch-size", "0"]


@case("--model", "qwen-7b", "not in the Hugging Face cache")
def case_plan_memory_unknown_model_name(tmp, f):
    return ["plan-memory", "--model", "qwen-7b"]


@case("--num-programs must be at least 1, got 0")
def case_demo_zero_programs(tmp, f):
    return ["demo", "--num-programs", "0", "--out", tmp / "demo"]


@case("--train-steps must be an integer, got 3.5")
def case_demo_yaml_float_for_an_int(tmp, f):
    return ["demo", "--config", yaml(tmp, f"train_steps: 3.5\nout: {tmp / 'demo'}")]


@case("field 'programs' is now num_programs")
def case_demo_yaml_renamed_key(tmp, f):
    return ["demo", "--config", yaml(tmp, f"programs: 3\nout: {tmp / 'demo'}")]


def copy_model(tmp: Path, f: Foreign, generation_config: str) -> Path:
    """The tiny GPT-2 with another generation_config.json (as Hub models ship their own)."""
    import shutil

    model = shutil.copytree(f.gpt2, tmp / "model")
    (model / "generation_config.json").write_text(generation_config)
    return model


def lora_config_with(tmp: Path, f: Foreign, **fields) -> Path:
    adapter = tmp / "adapter"
    adapter.mkdir()
    config = json.loads((f.llama_adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, **fields}))
    for file in f.llama_adapter.glob("*.safetensors"):
        (adapter / file.name).write_bytes(file.read_bytes())
    return adapter


@case("--out", "dl", "a symbolic link that leads nowhere")
def case_eval_out_a_dangling_symbolic_link(tmp, f):  # was FileExistsError (eval, train, build)
    (tmp / "dl").symlink_to(tmp / "nowhere")
    return ["eval", "--model", f.gpt2, "--data", qa(tmp), "--out", tmp / "dl"]


@case("--out", "dl.safetensors", "a symbolic link that leads nowhere")
def case_fisher_out_a_dangling_symbolic_link(tmp, f):  # the atomic write replaced the link itself
    (tmp / "dl.safetensors").symlink_to(tmp / "nowhere.safetensors")
    return ["fisher", "--model", f.llama, "--corpus", write_lines(tmp / "c.jsonl", TEXT), "--n", "1",
            "--out", tmp / "dl.safetensors"]


@case("--out", "dl", "a symbolic link that leads nowhere")
def case_export_out_a_dangling_symbolic_link(tmp, f):  # failed after the whole merge (NotADirectoryError)
    (tmp / "dl").symlink_to(tmp / "nowhere")
    return ["export", "merged", "--model", f.llama, "--adapter", f.llama_adapter, "--out", tmp / "dl"]


@case("config.yaml: bad YAML (a number too long to read)")
def case_eval_yaml_number_too_long(tmp, f):  # a ValueError traceback (JSON's readers already refused it)
    return ["eval", "--config", yaml(tmp, "limit: " + "9" * 6000), "--model", f.gpt2, "--data", qa(tmp),
            "--out", tmp / "eval"]


@case("adapter_config.json: field 'r' must be a positive number, got 'eight'")
def case_eval_adapter_config_field_of_another_type(tmp, f):  # a TypeError deep in PEFT's layers
    return ["eval", "--model", f.llama, "--adapter", lora_config_with(tmp, f, r="eight"), "--data", qa(tmp),
            "--out", tmp / "eval"]


@case("adapter_config.json: field 'lora_alpha' must be a positive number, got None")
def case_export_adapter_config_alpha_null(tmp, f):  # a TypeError in the merge
    return ["export", "merged", "--model", f.llama, "--adapter", lora_config_with(tmp, f, lora_alpha=None),
            "--out", tmp / "merged"]


@case("--adapter", "a PREFIX_TUNING adapter adds virtual tokens, not weights")
def case_export_prompt_learning_adapter(tmp, f):  # AttributeError: no merge_and_unload
    adapter = tmp / "prefix"
    write_lines(adapter / "adapter_config.json", {"peft_type": "PREFIX_TUNING", "task_type": "CAUSAL_LM",
                                                 "num_virtual_tokens": 4})
    from safetensors.torch import save_file

    save_file({"prompt_embeddings": torch.zeros(4, 32)}, str(adapter / "adapter_model.safetensors"))
    return ["export", "merged", "--model", f.llama, "--adapter", adapter, "--out", tmp / "merged"]


@case("generation_config.json: transformers cannot load it with the model")
def case_eval_generation_config_transformers_refuses(tmp, f):  # a ValueError traceback, also for QA-only evals
    return ["eval", "--model", copy_model(tmp, f, '{"max_new_tokens": -5}'), "--data", qa(tmp), "--out",
            tmp / "eval"]


@case("generation_config.json: not a generation config (a JSON object), got list")
def case_fisher_generation_config_not_an_object(tmp, f):  # a TypeError traceback
    return ["fisher", "--model", copy_model(tmp, f, "[1, 2]"), "--corpus", write_lines(tmp / "c.jsonl", TEXT),
            "--n", "1", "--out", tmp / "f.safetensors"]


@case("generation_config.json: field 'temperature' holds a lone surrogate")
def case_eval_generation_config_lone_surrogate(tmp, f):  # a UnicodeEncodeError writing config.json
    return ["eval", "--model", copy_model(tmp, f, '{"temperature": "\\ud83d"}'), "--data", qa(tmp), "--out",
            tmp / "eval"]


@pytest.mark.parametrize("name", list(CASES))
def test_refused_in_one_line(name, tmp_path, foreign, capsys, monkeypatch):
    fragments, build = CASES[name]
    monkeypatch.chdir(tmp_path)  # a stray relative path would land here and show in the snapshot
    argv = build(tmp_path, foreign)
    line = refused(argv, tmp_path, capsys)
    for fragment in fragments:
        assert fragment in line, line


PREFIX = {"collect plans": "plans", "collect explore": "explore", "fisher import": "fisher-import",  # a case's name
          "export merged": "export", "export lm-eval": "lm-eval", "data download": "data-download",  # starts so
          "data prose": "data-prose"}


def test_every_command_has_cases():
    from e2wm.cli import COMMANDS

    assert len(CASES) >= 40
    for command in COMMANDS:
        assert any(name.startswith(PREFIX.get(command, command) + "-") for name in CASES), command


def test_data_download_stores_no_file_of_a_corrupted_copy(tmp_path, capsys):
    """Refused in one line like the cases above; by design it keeps the files it could verify (none here) and
    may leave the folders it made for them, so the whole-tree snapshot does not apply."""
    write_lines(tmp_path / "copy" / "train" / "train_count.json", {"input": "x", "ref": "y"})
    with pytest.raises(SystemExit) as stop:
        main(["data", "download", "--from", str(tmp_path / "copy"), "--dest", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1
    assert "15 of the 15 E2WM files not stored" in err and "copy/train/train_count.json: 27 bytes where the " \
        "released train/train_count.json has 2601115" in err
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
