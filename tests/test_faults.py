"""Faults and bad input, driven through the public entry points: never silently wrong, never a
traceback for a user's mistake, nothing lost.

Each case is run the way a user meets it: the command line (``recbole_llmaug.cli.main``) or the
Python API (``run_recbole_llmaug``, ``run_augmentor``, ``write_run_record``), on damaged copies of
the tiny fixture dataset written here. Ctrl-C is simulated by raising KeyboardInterrupt from a
training epoch or from the embedding step. The LLM/embedding endpoint's own faults are covered in
tests/test_faults_llm.py; here the embedding endpoint is the fake of tests/fake_openai.py, used only
to make the augmentor's error handling (interrupts, summaries, temporary files) fast to drive.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import recbole.trainer.trainer as recbole_trainer
import torch

from recbole_llmaug.augment import run_augmentor
from recbole_llmaug.cli import main
from recbole_llmaug.errors import UserError
from recbole_llmaug.quick_start import evaluate_saved_model, run_recbole_llmaug
from recbole_llmaug.report import write_run_record

from conftest import write_tiny_dataset
from fake_openai import FakeOpenAIServer

INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float"


# ------------------------------------------------------------------ helpers

def run_cli(args, capsys):
    """``main(args)`` -> (exit code, stdout, stderr). A KeyboardInterrupt escaping ``main`` would end
    the whole pytest session; it is turned into a failure here."""
    try:
        code = main([str(arg) for arg in args])
    except KeyboardInterrupt as interrupt:  # pragma: no cover - only when the CLI's handling is broken
        pytest.fail(f"KeyboardInterrupt escaped the command line: {interrupt!r}")
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(code, out, err, *fragments):
    """Exit 2, and stderr is exactly one paragraph ('error: ...' on one line) holding every fragment."""
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def overrides(settings):
    return [f"--{key}={value}" for key, value in settings.items()]


def dataset_files(root):
    return sorted(path.name for path in (root / "tiny").iterdir())


def damage(root, kind):
    """Damage the tiny dataset under ``root`` in one of the ways users met; returns (file, fragments the
    message must hold)."""
    folder = root / "tiny"
    inter, item = folder / "tiny.inter", folder / "tiny.item"
    lines = inter.read_text(encoding="utf-8").splitlines()
    if kind == "header_only_inter":
        inter.write_text(INTER_HEADER + "\n", encoding="utf-8")
        return ["tiny.inter", "no data rows"]
    if kind == "type_typo":
        inter.write_text("\n".join([INTER_HEADER.replace("item_id:token", "item_id:tokn")] + lines[1:]) + "\n")
        return ["tiny.inter", "line 1", "'item_id'", "'tokn'", "item_id:token"]
    if kind == "trailing_tab":
        lines[7] += "\t"  # line 8 of the file
        inter.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return ["tiny.inter", "line 8", "trailing tab", "4 fields", "has 3"]
    if kind == "bad_float":
        lines[4] = lines[4].rsplit("\t", 1)[0] + "\t10O0"  # a letter O typed for a zero, line 5
        inter.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return ["tiny.inter", "line 5", "'timestamp'", "'10O0'", "not a number"]
    if kind == "tab_in_first_item_row":
        rows = item.read_text(encoding="utf-8").splitlines()
        rows[1] = rows[1].replace("Product number 1", "Product\tnumber 1")
        item.write_text("\n".join(rows) + "\n", encoding="utf-8")
        return ["tiny.item", "line 2", "6 fields", "has 5"]
    if kind == "header_only_item":
        item.write_text(item.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
        return ["tiny.item", "no data rows"]
    raise ValueError(kind)


def text_vector(text):
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [round(0.1 + byte / 255.0, 6) for byte in digest[:4]]


def embeddings_reply(body):
    data = [{"object": "embedding", "index": index, "embedding": text_vector(text)}
            for index, text in enumerate(body["input"])]
    return {"object": "list", "data": data, "model": body["model"],
            "usage": {"prompt_tokens": 2 * len(data), "total_tokens": 2 * len(data)}}


@pytest.fixture
def embedding_server(monkeypatch):
    """The fake OpenAI endpoint answering every /embeddings request correctly (tests/fake_openai.py)."""
    server = FakeOpenAIServer()
    server.default = (200, embeddings_reply, {}, 0.0)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-faults")
    yield server
    server.close()


def augment_args(data_path, tmp_path, server, name="llmesr"):
    return [f"--augment={name}", "--dataset=tiny", f"--data_path={data_path}",
            f"--llmaug_cache_dir={tmp_path / 'cache'}", "--embedding_backend=openai",
            f"--llm_base_url={server.base_url}", "--llm_max_retries=0", "--state=ERROR"]


def augment_settings(data_path, tmp_path, server):
    return {"dataset": "tiny", "data_path": str(data_path), "llmaug_cache_dir": str(tmp_path / "cache"),
            "embedding_backend": "openai", "llm_base_url": server.base_url, "llm_max_retries": 0}


# ------------------------------------------------------------------ damaged input files

TRAINING_DAMAGE = ["header_only_inter", "type_typo", "trailing_tab", "bad_float"]


@pytest.mark.parametrize("kind", TRAINING_DAMAGE)
def test_damaged_inter_file_is_named_by_training_augmentation_and_tuning(kind, tiny_dataset, fast_settings, tmp_path,
                                                                        capsys, monkeypatch):
    """Before the check: header-only -> RecBole's 'Some feat is empty' traceback; a type typo -> the
    augmentor exits 0 and training crashes; a trailing tab -> columns shifted silently; a bad float ->
    a pandas traceback. Now every entry point stops first, naming file, line and field."""
    fragments = damage(tiny_dataset, kind)
    before = dataset_files(tiny_dataset)
    monkeypatch.chdir(tmp_path)
    training = ["--model=SASRec", "--dataset=tiny", f"--data_path={tiny_dataset}"] + overrides(fast_settings)
    assert_user_error(*run_cli(training, capsys), *fragments)
    assert not (tmp_path / "results").exists()  # no record of a run that never was

    augmenting = ["--augment=llmesr", "--dataset=tiny", f"--data_path={tiny_dataset}",
                  f"--llmaug_cache_dir={tmp_path / 'cache'}"]
    assert_user_error(*run_cli(augmenting, capsys), *fragments)
    assert dataset_files(tiny_dataset) == before  # no augmented file, no manifest

    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {choice: [0.001, 0.01]}\n")
    tuning = training + [f"--tune={space}", f"--tune-output={tmp_path / 'search'}"]
    assert_user_error(*run_cli(tuning, capsys), *fragments)
    assert not (tmp_path / "search").exists()

    with pytest.raises(UserError) as caught:  # the Python API says the same
        run_recbole_llmaug("SASRec", "tiny", config_dict=dict(fast_settings, data_path=str(tiny_dataset)))
    assert all(fragment in str(caught.value) for fragment in fragments)


@pytest.mark.parametrize("kind", ["tab_in_first_item_row", "header_only_item"])
def test_damaged_item_file_is_named_before_any_augmentation(kind, tiny_dataset, tmp_path, capsys):
    """Before: a tab inside the first .item row was reported as a duplicate item; a header-only .item as
    'none of the items appear'. Both are read as what they are, for the CLI and for run_augmentor."""
    fragments = damage(tiny_dataset, kind)
    before = dataset_files(tiny_dataset)
    args = ["--augment=item_emb", "--dataset=tiny", f"--data_path={tiny_dataset}",
            f"--llmaug_cache_dir={tmp_path / 'cache'}"]
    message = assert_user_error(*run_cli(args, capsys), *fragments)
    assert "more than once" not in message
    with pytest.raises(UserError) as caught:
        run_augmentor("llmesr", {"dataset": "tiny", "data_path": str(tiny_dataset),
                                 "llmaug_cache_dir": str(tmp_path / "cache")})
    assert all(fragment in str(caught.value) for fragment in fragments)
    assert dataset_files(tiny_dataset) == before


def test_each_file_is_checked_once_per_run(tiny_dataset, embedding_server, tmp_path, monkeypatch):
    """Training's check and the augmentor's share one read per file (same size and mtime)."""
    import recbole_llmaug.augment.atomic as atomic
    from recbole_llmaug.config import make_config

    checked = []
    original = atomic._header_types
    monkeypatch.setattr(atomic, "_header_types", lambda path, *rest: checked.append(Path(path).name) or original(path, *rest))
    settings = augment_settings(tiny_dataset, tmp_path, embedding_server)
    make_config("SASRec", "tiny", config_dict=dict(settings, state="ERROR"))
    run_augmentor("item_emb", settings)
    run_augmentor("item_emb", settings)
    assert sorted(checked) == ["tiny.inter", "tiny.item"]
    inter = tiny_dataset / "tiny" / "tiny.inter"
    inter.write_text(inter.read_text() + "u1\ti3\t99999\n")  # a changed file is checked again
    run_augmentor("item_emb", settings)
    assert sorted(checked) == ["tiny.inter", "tiny.inter", "tiny.item"]


# ------------------------------------------------------------------ bad options and config files

@pytest.mark.parametrize("option, fragments", [
    ("--epochs=abc", ["'epochs'", "'abc'", "integer"]),
    ("--learning_rate=-1", ["'learning_rate'", "-1", "> 0"]),
    ("--sim_user_topn=abc", ["'sim_user_topn'", "'abc'", "integer"]),
    ("--sim_user_topn=-3", ["'sim_user_topn'", "-3", ">= 1"]),
    ("--user_text_max_items=abc", ["'user_text_max_items'", "'abc'", "integer"]),
    ("--backbone=Foo", ["'backbone'", "'Foo'", "SASRec"]),
])
def test_bad_option_is_reported_before_any_augmentation(option, fragments, tiny_dataset, fast_settings, tmp_path,
                                                        capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = dataset_files(tiny_dataset)
    args = ["--model=LLMESR", "--dataset=tiny", f"--data_path={tiny_dataset}",
            f"--llmaug_cache_dir={tmp_path / 'cache'}"] + overrides(fast_settings) + [option]
    message = assert_user_error(*run_cli(args, capsys), *fragments)
    assert option in message  # where the value came from
    assert dataset_files(tiny_dataset) == before  # nothing augmented
    assert not (tmp_path / "cache").exists() and not (tmp_path / "results").exists()


def test_config_files_may_contain_spaces_and_missing_ones_are_named(tiny_dataset, tmp_path, capsys):
    """Before: --config_files was always split on whitespace, so 'my settings.yaml' became two files."""
    spaced = tmp_path / "my settings.yaml"
    spaced.write_text("sim_user_topn: -3\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text("user_text_max_items: 5\n")
    base = ["--augment=llmesr", "--dataset=tiny", f"--data_path={tiny_dataset}"]
    # one path with a space: read as one file (its bad value is reported with its name)
    assert_user_error(*run_cli(base + [f"--config_files={spaced}"], capsys), "'sim_user_topn'", str(spaced))
    # the documented one-quoted-string list still splits
    assert_user_error(*run_cli(base + ["--config_files", f"{plain} {tmp_path / 'bad.yaml'}"], capsys),
                      str(tmp_path / "bad.yaml"), "not exist")
    (tmp_path / "bad.yaml").write_text("epochs: abc\n")
    assert_user_error(*run_cli(base + ["--config_files", f"{plain} {tmp_path / 'bad.yaml'}"], capsys),
                      "'epochs'", "bad.yaml")
    # every missing file at once
    message = assert_user_error(*run_cli(base + ["--config_files", str(tmp_path / "nope.yaml"),
                                                 str(tmp_path / "gone.yaml")], capsys), "nope.yaml", "gone.yaml")
    assert "do not exist" in message


def test_unreadable_yaml_is_a_user_error(tiny_dataset, fast_settings, tmp_path, capsys):
    binary = tmp_path / "space.yaml"
    binary.write_bytes(b"learning_rate: \xff\xfe\x00{choice: [1]}\n")
    args = ["--model=SASRec", "--dataset=tiny", f"--data_path={tiny_dataset}", f"--tune={binary}",
            f"--tune-output={tmp_path / 'search'}"]
    assert_user_error(*run_cli(args, capsys), "space.yaml", "cannot be read")
    args = ["--model=SASRec", "--dataset=tiny", f"--data_path={tiny_dataset}", f"--config_files={binary}"]
    assert_user_error(*run_cli(args, capsys), "space.yaml", "cannot be read")


def test_unwritable_results_folder_is_reported_before_training(tiny_dataset, fast_settings, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    settings = dict(fast_settings, results_dir=blocker / "results")
    args = ["--model=SASRec", "--dataset=tiny", f"--data_path={tiny_dataset}"] + overrides(settings)
    assert_user_error(*run_cli(args, capsys), "'results_dir'", "a_file", "not a folder")
    assert not (tmp_path / "saved").exists()  # no training happened


def test_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        evaluate_saved_model(str(tmp_path / "SASRec-nothing.pth"))


# ------------------------------------------------------------------ Ctrl-C during training

def interrupt_at_epoch(monkeypatch, epoch):
    """RecBole's training epoch raises KeyboardInterrupt (Ctrl-C) when it reaches ``epoch``, after
    changing the weights as the optimizer steps of a partial epoch would: the model in memory is then
    not the best checkpoint."""
    original = recbole_trainer.Trainer._train_epoch

    def train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        if epoch_idx == epoch:
            with torch.no_grad():
                for parameter in self.model.parameters():
                    parameter.add_(torch.randn_like(parameter))
            raise KeyboardInterrupt
        return original(self, train_data, epoch_idx, *args, **kwargs)

    monkeypatch.setattr(recbole_trainer.Trainer, "_train_epoch", train_epoch)


def read_record(results_dir):
    [record_file] = Path(results_dir).glob("SASRec-tiny-*.json")
    return json.loads(record_file.read_text())


def test_ctrl_c_before_the_first_checkpoint_tests_the_model_in_memory_and_records(
        tiny_dataset, fast_settings, tmp_path, capsys, monkeypatch):
    """Before: RecBole loaded a checkpoint that did not exist yet (FileNotFoundError), and no record."""
    interrupt_at_epoch(monkeypatch, 0)
    monkeypatch.chdir(tmp_path)
    args = ["--model=SASRec", "--dataset=tiny", f"--data_path={tiny_dataset}"] + overrides(
        dict(fast_settings, epochs=3, log_dir=tmp_path / "logs"))
    code, out, err = run_cli(args, capsys)
    assert code == 130 and "Traceback" not in out + err
    record = read_record(fast_settings["results_dir"])
    assert record["interrupted"] is True and record["checkpoint"] is None
    assert "in memory" in record["tested"] and record["timing"]["epochs_trained"] == 0
    assert set(record["test_result"]) >= {"hit@10", "tail_user/hit@10"}
    assert "Interrupted" in err and "in memory" in err and record["config"]["results_dir"] in err


def test_ctrl_c_after_a_checkpoint_tests_that_checkpoint_and_records(tiny_dataset, fast_settings, monkeypatch,
                                                                     tmp_path):
    interrupt_at_epoch(monkeypatch, 1)
    monkeypatch.chdir(tmp_path)
    record = run_recbole_llmaug("SASRec", "tiny", config_dict=dict(
        fast_settings, epochs=3, data_path=str(tiny_dataset), log_dir=str(tmp_path / "logs")))
    assert record["interrupted"] is True and record["timing"]["epochs_trained"] == 1
    assert record["checkpoint"] and Path(record["checkpoint"]).is_file()
    assert "best checkpoint so far" in record["tested"] and record["checkpoint"] in record["tested"]
    assert record["test_result"]["hit@10"] >= 0 and "tail_user/hit@10" in record["test_result"]
    assert read_record(fast_settings["results_dir"])["interrupted"] is True
    # the interrupted run's test equals a later test of its checkpoint: it was the checkpoint that was tested
    again = evaluate_saved_model(record["checkpoint"])["full"]["result"]
    assert again == pytest.approx(record["test_result"])


def test_ctrl_c_while_the_checkpoint_is_saved_leaves_no_half_file(tiny_dataset, fast_settings, tmp_path, monkeypatch):
    """Before: RecBole's torch.save wrote the checkpoint in place; a Ctrl-C in the middle left half a
    file, which the interrupted run's test then failed to load."""
    def interrupted_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted_save)
    monkeypatch.chdir(tmp_path)
    record = run_recbole_llmaug("SASRec", "tiny", config_dict=dict(
        fast_settings, data_path=str(tiny_dataset), log_dir=str(tmp_path / "logs")))
    assert record["interrupted"] is True and record["checkpoint"] is None and "in memory" in record["tested"]
    assert list(Path(fast_settings["checkpoint_dir"]).iterdir()) == []  # no half file, no temporary file


def test_a_second_ctrl_c_during_the_test_still_writes_the_record(tiny_dataset, fast_settings, tmp_path, capsys,
                                                                 monkeypatch):
    interrupt_at_epoch(monkeypatch, 0)
    monkeypatch.setattr(recbole_trainer.Trainer, "evaluate", lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt))
    monkeypatch.chdir(tmp_path)
    args = ["--model=SASRec", "--dataset=tiny", f"--data_path={tiny_dataset}"] + overrides(
        dict(fast_settings, log_dir=tmp_path / "logs"))
    code, out, err = run_cli(args, capsys)
    assert code == 130 and "Traceback" not in out + err and err.strip().count("\n") == 0
    record = read_record(fast_settings["results_dir"])
    assert record["interrupted"] is True and record["test_result"] == {} and "interrupted too" in record["tested"]


def test_recbole_logs_go_under_log_dir(tiny_dataset, fast_settings, tmp_path, capsys, monkeypatch):
    """Before: ./log and ./log_tensorboard in the current directory whatever the output folders were."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    args = ["--model=SASRec", "--dataset=tiny", f"--data_path={tiny_dataset}"] + overrides(
        dict(fast_settings, log_dir=tmp_path / "logs"))
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert list(work.iterdir()) == []
    assert list((tmp_path / "logs" / "log" / "SASRec").glob("SASRec-tiny-*.log"))
    assert list((tmp_path / "logs" / "log_tensorboard").glob("*/events.out.tfevents.*"))


# ------------------------------------------------------------------ the augmentor: Ctrl-C, summary, temporary files

def test_ctrl_c_during_augmentation_is_one_line_saying_what_was_kept(tiny_dataset, embedding_server, tmp_path, capsys,
                                                                   monkeypatch):
    import recbole_llmaug.llm.embeddings as embeddings

    original = embeddings.embed_texts

    def embed_texts(texts, embedding, *args, desc="", **kwargs):
        if "user" in desc:  # item_emb is done by then; Ctrl-C while the user texts are embedded
            raise KeyboardInterrupt
        return original(texts, embedding, *args, desc=desc, **kwargs)

    monkeypatch.setattr(embeddings, "embed_texts", embed_texts)
    code, out, err = run_cli(augment_args(tiny_dataset, tmp_path, embedding_server), capsys)
    assert code == 130 and "Traceback" not in out + err
    [line] = err.strip().splitlines()[-1:]
    assert err.strip().splitlines()[-1] == line and line.startswith("Interrupted.")
    assert "while building user_emb" in line and "Kept: item_emb (tiny.itememb)" in line
    assert str(tmp_path / "cache") in line and "Rerun the same command" in line
    assert (tiny_dataset / "tiny" / "tiny.itememb").is_file() and not (tiny_dataset / "tiny" / "tiny.useremb").exists()

    monkeypatch.setattr(embeddings, "embed_texts", original)  # the rerun reuses item_emb
    code, out, err = run_cli(augment_args(tiny_dataset, tmp_path, embedding_server), capsys)
    assert code == 0 and "item_emb: reused" in out and "user_emb: built" in out


def test_successful_augment_prints_what_it_built_and_reused(tiny_dataset, embedding_server, tmp_path, capsys):
    code, out, err = run_cli(augment_args(tiny_dataset, tmp_path, embedding_server), capsys)
    assert code == 0, err
    assert f"Augmentor 'llmesr' on dataset 'tiny' (files in {tiny_dataset / 'tiny'})" in out
    assert "item_emb: built tiny.itememb, 20 rows, 20 distinct texts: 20 computed now in" in out
    assert "user_emb: built tiny.useremb, 30 rows" in out and "sim_users: built tiny.simuser, 30 rows" in out
    assert "model calls, 0 cache hits" in out
    calls = len(embedding_server.requests)
    assert calls > 0 and f"in {calls} model calls" not in out  # two outputs share the calls: each says its own

    code, out, _ = run_cli(augment_args(tiny_dataset, tmp_path, embedding_server), capsys)
    assert code == 0 and out.count(": reused ") == 3 and len(embedding_server.requests) == calls


def killed_writer_leaves_a_temp_file(target):
    """A real SIGKILL in the middle of atomic_writer: returns the temporary file it left behind."""
    script = (
        "import os, signal, sys\n"
        "from recbole_llmaug.augment.atomic import atomic_writer\n"
        "with atomic_writer(sys.argv[1]) as handle:\n"
        "    handle.write('half a file'); handle.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    result = subprocess.run([sys.executable, "-c", script, str(target)], env=env, capture_output=True)
    assert result.returncode == -9, result.stderr
    [left] = target.parent.glob(f".{target.name}.*.tmp")
    return left


def test_temp_files_of_killed_writers_are_cleaned_on_the_next_write(tiny_dataset, embedding_server, tmp_path):
    target = tiny_dataset / "tiny" / "tiny.itememb"
    killed = killed_writer_leaves_a_temp_file(target)
    from recbole_llmaug.augment.atomic import _HOST

    live = target.with_name(f".{target.name}.{_HOST}-{os.getpid()}.abcd1234.tmp")  # a write in progress here
    other_host_recent = target.with_name(f".{target.name}.0badf00d-12345.efgh5678.tmp")
    other_host_old = target.with_name(f".{target.name}.0badf00d-12346.ijkl9012.tmp")
    old_style = target.with_name(f".{target.name}.mnop3456.tmp")  # named before pids were recorded
    for path in (live, other_host_recent, other_host_old, old_style):
        path.write_text("partial")
    hour_ago = time.time() - 3600
    for path in (other_host_old, old_style, live):
        os.utime(path, (hour_ago, hour_ago))

    run_augmentor("item_emb", augment_settings(tiny_dataset, tmp_path, embedding_server))
    assert target.is_file()
    assert not killed.exists() and not other_host_old.exists() and not old_style.exists()
    assert live.exists() and other_host_recent.exists()  # a live writer here, or a recent one elsewhere
    assert sorted(target.parent.glob(f".{target.name}.*.tmp")) == sorted([live, other_host_recent])


# ------------------------------------------------------------------ run records

class Unprintable:
    def __str__(self):
        raise RuntimeError("cannot be written")


def test_run_records_are_written_atomically_and_never_over_another(tmp_path):
    results = tmp_path / "results"
    with pytest.raises(RuntimeError):
        write_run_record({"model": "SASRec", "late": Unprintable()}, results, "SASRec", "tiny")
    assert list(results.iterdir()) == []  # no half-written JSON, no temporary file

    first = write_run_record({"run": 1}, results, "SASRec", "tiny")
    second = write_run_record({"run": 2}, results, "SASRec", "tiny")
    assert first != second
    assert [json.loads(path.read_text())["run"] for path in (first, second)] == [1, 2]
    assert sorted(path.name for path in results.iterdir()) == sorted([first.name, second.name])
