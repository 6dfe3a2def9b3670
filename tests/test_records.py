"""Every run is a record: log folders are never overwritten unseen, partial runs never replace complete
ones, shipped folders are never written, and figures say what was run."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common import logs, plots, spiking
from common.networks import MNIST_LENET
from conftest import ROOT
from signalling import PATIENCE

SHIPPED = ROOT / "MNIST" / "pretrained" / "k1.npz"
SPIKING = ROOT / "MNIST" / "Spiking_LeNet_MNIST.py"
MNIST_DATA = ROOT / "MNIST" / "data"


def lines_of(value: int, steps: int = 3) -> dict[str, list[int]]:
    return {name: [value] * steps for name in logs.LOG_FILES}


def summary_of(run: int, partial: bool = False, **extra) -> dict:
    return {"network": "mnist_lenet", "k": 1, "time_steps": 3, "num_samples": 1, "snn_accuracy": [0, 0, 1],
            "run": run, "partial": partial, **extra}


def write_run(folder: Path, run: int, partial: bool = False, replace: bool = False) -> Path | None:
    return logs.write_logs(folder, lines_of(run), summary_of(run, partial), replace)


def visible(folder: Path) -> list[str]:
    """What a folder holds besides the lock files of the runs that wrote it."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------------------- the rules of a log folder

def test_an_earlier_run_is_moved_aside_and_numbered(tmp_path):
    folder = tmp_path / "k1"
    assert write_run(folder, 1) is None
    first = contents(folder)
    assert write_run(folder, 2) == tmp_path / "k1.bak"
    assert write_run(folder, 3) == tmp_path / "k1.bak1"
    assert contents(tmp_path / "k1.bak") == first
    assert logs.read_summary(tmp_path / "k1.bak1")["run"] == 2 and logs.read_summary(folder)["run"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".k1.new-")]


def test_replace_replaces_but_a_partial_run_never_replaces_a_complete_one(tmp_path):
    folder = tmp_path / "k1"
    write_run(folder, 1)
    assert write_run(folder, 2, replace=True) is None
    assert logs.read_summary(folder)["run"] == 2 and not (tmp_path / "k1.bak").exists()
    assert write_run(folder, 3, partial=True, replace=True) == tmp_path / "k1.bak"
    assert logs.read_summary(tmp_path / "k1.bak")["run"] == 2  # the complete run is kept
    assert write_run(folder, 4, partial=True, replace=True) is None  # a partial run may replace a partial one
    assert logs.read_summary(folder)["run"] == 4


def test_a_failure_during_the_move_leaves_the_earlier_run_whole_in_place(tmp_path, monkeypatch):
    folder = tmp_path / "k1"
    write_run(folder, 1)
    before = contents(folder)
    real = os.replace

    def fail_on_the_new_set(src, dst):
        if Path(src).name.startswith(".k1.new-"):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", fail_on_the_new_set)
    for replace in (False, True):
        with pytest.raises(OSError):
            write_run(folder, 2, replace=replace)
        assert contents(folder) == before
        assert visible(tmp_path) == ["k1"]


def test_a_failure_while_writing_the_set_leaves_the_earlier_run_whole(tmp_path, monkeypatch):
    folder = tmp_path / "k1"
    write_run(folder, 1)
    before = contents(folder)

    def full_disk(path, obj):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(logs, "write_json", full_disk)
    with pytest.raises(OSError):
        write_run(folder, 2)
    assert contents(folder) == before and visible(tmp_path) == ["k1"]


@pytest.mark.parametrize("files", [
    {"accuracy.txt": "my own numbers\n"},
    {"summary.json": '{"mine": true}'},
    {"notes.md": "x"},
    {"summary.json": json.dumps(summary_of(1)), "thesis.tex": "x"},
])
def test_a_folder_holding_anything_but_a_run_of_ours_is_refused(tmp_path, files):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(logs.LogDirError, match="not a run of this package"):
        logs.check_writable(tmp_path)
    assert contents(tmp_path) == files


def test_an_empty_folder_and_a_run_of_ours_are_accepted(tmp_path):
    assert logs.check_writable(tmp_path / "new") == (tmp_path / "new").resolve()
    write_run(tmp_path / "k1", 1, partial=True)
    logs.check_writable(tmp_path / "k1")


def test_shipped_folders_are_never_written_even_through_a_link(tmp_path, monkeypatch):
    monkeypatch.delenv(logs.WRITE_SHIPPED_ENV, raising=False)
    shipped = ROOT / "MNIST" / "pretrained" / "logs" / "k1"
    for log_dir in (shipped, shipped.parent / "k7", tmp_path / "link"):
        if log_dir.name == "link":
            log_dir.symlink_to(shipped)
        with pytest.raises(logs.LogDirError, match="shipped folder"):
            logs.check_writable(log_dir)
    (tmp_path / "up").symlink_to(ROOT / "MNIST")
    with pytest.raises(logs.LogDirError, match="shipped folder"):
        logs.check_writable(tmp_path / "up" / "pretrained" / "logs" / "k1")
    monkeypatch.setenv(logs.WRITE_SHIPPED_ENV, "1")  # tools/make_results.sh
    logs.check_writable(shipped)


def test_the_script_refuses_the_shipped_folder_and_changes_nothing(tmp_path):
    shipped = ROOT / "MNIST" / "pretrained" / "logs" / "k1"
    before = contents(shipped)
    env = {k: v for k, v in os.environ.items() if k != logs.WRITE_SHIPPED_ENV}
    done = subprocess.run([sys.executable, str(SPIKING), "--num_samples", "5", "--log_dir", str(shipped)],
                          capture_output=True, text=True, timeout=PATIENCE, env=env)
    assert done.returncode == 1 and done.stderr.startswith("error: ") and "shipped folder" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert contents(shipped) == before


def test_one_writer_per_folder(tmp_path):
    with logs.writer_lock(tmp_path / "k1"):
        with pytest.raises(logs.LogDirError, match="another spiking run is writing"):
            with logs.writer_lock(tmp_path / "k1"):
                pass
    with logs.writer_lock(tmp_path / "k1"):  # released
        pass


def test_a_folder_that_cannot_hold_a_lock_says_why_for_logs_and_checkpoints(tmp_path):
    from common import checkpoint

    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(logs.LogDirError, match=r"^cannot write into .*a_file \(.+\); pass another --log_dir$"):
        with logs.writer_lock(tmp_path / "a_file" / "k1"):
            pass
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"^cannot write a checkpoint into .*a_file \(.+\); pass another --checkpoint$"):
        with checkpoint.writer_lock(tmp_path / "a_file" / "k1.npz"):
            pass


def test_one_lock_serves_every_writer(tmp_path):
    from common.fsutil import exclusive_lock

    lock = tmp_path / "sub" / ".x.lock"
    with exclusive_lock(lock, "busy {reason}", "cannot ({reason})", RuntimeError):
        with pytest.raises(RuntimeError, match=r"^busy \{reason\}$"):  # only the cannot-message says why
            with exclusive_lock(lock, "busy {reason}", "cannot ({reason})", RuntimeError):
                pass
    with exclusive_lock(lock, "busy", "cannot"):  # released with the block
        pass


def test_a_second_spiking_run_on_a_held_folder_is_refused(tmp_path):
    cfg = spiking.SpikingConfig(network=MNIST_LENET, k=1, checkpoint=SHIPPED, roots=[MNIST_DATA],
                                log_dir=tmp_path / "k1", time_steps=4, num_samples=2)
    with logs.writer_lock((tmp_path / "k1").resolve()):
        with pytest.raises(logs.LogDirError, match="another spiking run is writing"):
            spiking.run(cfg)
    assert not (tmp_path / "k1").exists()


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_a_broken_link_as_log_dir_fails_before_the_work(tmp_path, kind):
    link = tmp_path / "logs"
    if kind == "dangling":
        link.symlink_to(tmp_path / "nowhere")
    else:
        link.symlink_to(tmp_path / "logs")
    with pytest.raises(logs.LogDirError, match="missing target" if kind == "dangling" else "loops"):
        logs.check_writable(link)


def test_a_relative_log_dir_after_the_working_directory_was_deleted(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", f"import os, sys; sys.path.insert(0, {str(ROOT)!r}); os.chdir({str(gone)!r}); "
         f"os.rmdir({str(gone)!r}); from common import logs\n"
         "try:\n    logs.check_writable('figs/k1')\nexcept logs.LogDirError as e:\n    print(e)"],
        capture_output=True, text=True, timeout=PATIENCE)
    assert "working directory no longer exists" in done.stdout, done.stderr


# ---------------------------------------------------------------------------- spiking runs as records

def run_spiking(log_dir: Path, **overrides) -> dict:
    settings = dict(network=MNIST_LENET, k=1, checkpoint=SHIPPED, roots=[MNIST_DATA], log_dir=log_dir,
                    time_steps=4, batch_size=2, num_samples=4)
    settings.update(overrides)
    return spiking.run(spiking.SpikingConfig(**settings))


@pytest.mark.slow  # interrupted spiking runs
def test_ctrl_c_before_the_first_batch_keeps_the_complete_run(tmp_path, signal_on_call):
    from common import snn

    folder = tmp_path / "k1"
    run_spiking(folder)
    before = contents(folder)
    signal_on_call(snn.FastSimulator, "simulate", call=1)
    with pytest.raises(spiking.Interrupted, match="before the first batch finished: nothing written"):
        run_spiking(folder)
    assert contents(folder) == before and visible(tmp_path) == ["k1"]


@pytest.mark.slow  # several spiking runs
def test_a_partial_run_moves_the_complete_one_aside_even_with_replace(tmp_path, signal_on_call):
    from common import snn

    folder = tmp_path / "k1"
    run_spiking(folder)
    complete = contents(folder)
    signal_on_call(snn.FastSimulator, "simulate", call=2)
    with pytest.raises(spiking.Interrupted, match="marked partial"):
        run_spiking(folder, replace_logs=True)
    assert contents(tmp_path / "k1.bak") == complete
    assert logs.read_summary(folder)["partial"] is True


@pytest.mark.slow  # two spiking runs
def test_the_result_line_the_summary_and_the_ablation_table_give_one_mismatched_count(tmp_path, capsys):
    """One count per run, one definition: hidden neuron values off the exact ANN's level after the last step,
    summed over the settled images. (The MNIST no_negative figures 20,930,454 and 20,930,438 came from two
    runs, before and after the BatchNorm fold became CPU-independent.)"""
    sys.path.insert(0, str(ROOT / "tools"))
    import rule_ablation

    summary = run_spiking(tmp_path / "k1", neuron_rule="no_negative", time_steps=20)
    mismatched = summary["mismatched_neurons"]
    assert mismatched > 0 and logs.read_summary(tmp_path / "k1")["mismatched_neurons"] == mismatched
    assert f"mismatched neurons {mismatched}  (" in capsys.readouterr().out
    assert f"| {mismatched:,} of " in rule_ablation.table([summary])


@pytest.mark.slow  # several spiking runs
def test_a_run_says_what_differs_from_the_defaults(tmp_path, capsys):
    summary = run_spiking(tmp_path / "k1", neuron_rule="original", noise_ratio=0.5, seed=3)
    differs = summary["differs_from_defaults"]
    assert differs == ["4 of 10,000 test images", "original neuron rule", "reference simulator",
                       "noise 0.5 (seed 3)"]
    out = capsys.readouterr().out
    assert "[differs from the defaults: 4 of 10,000 test images; original neuron rule; reference simulator; " \
           "noise 0.5 (seed 3)]" in out
    assert logs.read_summary(tmp_path / "k1")["differs_from_defaults"] == differs
    own = dict(summary, checkpoint="MNIST/checkpoints/k1.npz", num_samples=10_000, neuron_rule="lossless",
               simulator="fast", noise_ratio=0.0)
    assert logs.differences(own) == ["checkpoint checkpoints/k1.npz"]


@pytest.mark.slow  # several spiking runs and figures
def test_plots_draw_every_kept_run_and_label_what_differs(tmp_path):
    figs = tmp_path / "figs"
    run_spiking(figs / "k1", num_samples=6, time_steps=2)
    run_spiking(figs / "k1", neuron_rule="original")
    runs = plots.load_runs(figs)
    assert list(runs) == ["k1", "k1.bak"]
    assert runs["k1.bak"]["label"].startswith("ours, k=1 [k1.bak] (k1.npz, 150 epochs; 6 of 10,000 test images")
    assert "4 of 10,000 test images; original neuron rule; reference simulator" in runs["k1"]["label"]
    paths = plots.plot_workspace(tmp_path)
    assert all(p.is_file() for p in paths)


def write_summary(folder: Path, summary: object, steps: int = 3) -> None:
    folder.mkdir(parents=True)
    for name in logs.LOG_FILES:
        (folder / name).write_text("1\n" * steps)
    (folder / logs.SUMMARY).write_text(summary if isinstance(summary, str) else json.dumps(summary))


def good_summary(**changes) -> dict:
    summary = {"network": "mnist_lenet", "k": 1, "checkpoint": "x/pretrained/k1.npz", "time_steps": 3,
               "num_samples": 1, "snn_accuracy": [1, 1, 1], "ann_accuracy": 1.0, "hidden_neurons_per_image": 10,
               "positive_spikes_per_image": 1.0, "negative_spikes_per_image": 0.0, "sops_per_image": 10.0}
    summary.update(changes)
    return summary


@pytest.mark.parametrize("bad", [
    "{not json", "[1, 2]", good_summary(time_steps=10 ** 9), good_summary(time_steps="3"),
    good_summary(k=None), good_summary(ann_accuracy="high"), "[" * 100_000 + "]" * 100_000,
])
def test_plots_skip_a_malformed_run_with_a_warning_and_draw_the_rest(tmp_path, bad, capsys):
    write_summary(tmp_path / "figs" / "k0", bad)
    write_summary(tmp_path / "figs" / "k1", good_summary())
    paths = plots.plot_workspace(tmp_path)
    assert all(p.is_file() for p in paths)
    err = capsys.readouterr().err
    assert err.startswith(f"warning: skipping {tmp_path / 'figs' / 'k0'}: ") and err.count("\n") == 1


def test_plots_skip_logs_that_do_not_match_their_summary(tmp_path, capsys):
    write_summary(tmp_path / "figs" / "k0", good_summary(), steps=4)
    write_summary(tmp_path / "figs" / "k1", good_summary())
    assert list(plots.load_runs(tmp_path / "figs")) == ["k1"]
    assert "its logs are not whole" in capsys.readouterr().err


def test_results_table_marks_partial_runs_and_skips_malformed_ones(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "tools"))
    import results_table

    ws = tmp_path / "MNIST" / "pretrained" / "logs"
    summary = json.loads((ROOT / "MNIST" / "pretrained" / "logs" / "k1" / "summary.json").read_text())
    write_summary(ws / "k1", dict(summary, partial=True))
    write_summary(ws / "k0", {"ann_accuracy": "x"})
    monkeypatch.setattr(results_table, "ROOT", tmp_path)
    table = results_table.table()
    row = [line for line in table.splitlines() if line.startswith("| LeNet, MNIST | 1 ")][0]
    assert row.endswith("10,000 (partial) |")
    assert "not run" in [line for line in table.splitlines() if line.startswith("| LeNet, MNIST | 0 ")][0]
    assert "warning: skipping" in capsys.readouterr().err


def test_results_table_write_without_markers_is_an_error(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tools"))
    import results_table

    (tmp_path / "README.md").write_text("# no table here\n")
    monkeypatch.setattr(results_table, "ROOT", tmp_path)
    monkeypatch.setattr(sys, "argv", ["results_table.py", "--write"])
    with pytest.raises(SystemExit, match="no <!-- results:start --> ... <!-- results:end --> markers"):
        results_table.main()
    assert (tmp_path / "README.md").read_text() == "# no table here\n"


def test_records_name_data_by_their_root_and_the_interpreter_by_its_version(tmp_path, monkeypatch):
    from common import provenance

    data_file = tmp_path / "root" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data_file.parent.mkdir(parents=True)
    data_file.write_bytes(b"labels")
    monkeypatch.setattr(sys, "argv", ["MNIST/Spiking_LeNet_MNIST.py", "--k", "1"])
    record = provenance.run_record(None, [data_file], None, [tmp_path / "elsewhere", tmp_path / "root"])
    assert list(record["data_sha256"]) == ["mnist/t10k-labels-idx1-ubyte.gz"]
    assert record["command"] == f"python{sys.version_info.major}.{sys.version_info.minor} " \
                                "MNIST/Spiking_LeNet_MNIST.py --k 1"
    assert str(tmp_path) not in json.dumps(provenance.run_record(None, [data_file]))  # outside every root


def test_records_name_paths_inside_the_repository_relative_to_it(monkeypatch):
    from common import provenance

    monkeypatch.setattr(sys, "argv", [str(SPIKING), "--checkpoint", str(SHIPPED), f"--log_dir={ROOT / 'x' / 'k1'}",
                                      "--data_dir", "/elsewhere/data", "--k", "1"])
    command = provenance.run_record()["command"]
    assert command == f"python{sys.version_info.major}.{sys.version_info.minor} MNIST/Spiking_LeNet_MNIST.py " \
                      "--checkpoint MNIST/pretrained/k1.npz --log_dir=x/k1 --data_dir /elsewhere/data --k 1"
    assert provenance.from_record("MNIST/pretrained/k1.npz").is_file()


def test_records_name_paths_in_the_home_folder_from_the_tilde(monkeypatch, tmp_path):
    from common import provenance

    monkeypatch.setenv("HOME", str(tmp_path))  # a long run's state outside the work tree (~/.cache/negspike/)
    state = tmp_path / ".cache" / "negspike" / "cifar10_cnn1" / "k1.npz"
    assert provenance.recorded_path(state) == "~/.cache/negspike/cifar10_cnn1/k1.npz"
    assert provenance.from_record("~/.cache/negspike/cifar10_cnn1/k1.npz") == state
    assert provenance.recorded_path(SHIPPED) == "MNIST/pretrained/k1.npz"  # the repository first, wherever it is


@pytest.mark.slow  # a spiking run
def test_a_spiking_run_records_the_shipped_checkpoint_relative_to_the_repository(tmp_path):
    summary = run_spiking(tmp_path / "k1", num_samples=2, time_steps=2)
    assert summary["checkpoint"] == "MNIST/pretrained/k1.npz"  # SHIPPED is absolute
    assert str(ROOT) not in (tmp_path / "k1" / "summary.json").read_text()


MACHINE_PATHS = ("/work/", "/root", "/tmp", "/home/", "/Users/", "bin/python")


def shipped_records() -> list[tuple[Path, str, object]]:
    """``(file, member, parsed JSON)`` of every shipped record: the JSON files under ``*/pretrained/`` and
    the history inside every shipped checkpoint (not the training state of a run under way, ``train/``)."""
    records = []
    for path in sorted(ROOT.glob("**/pretrained/**/*")):
        if "train" in path.relative_to(ROOT).parts or not path.is_file():
            continue
        if path.suffix == ".json":
            records.append((path, "", json.loads(path.read_text())))
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                if "meta/history" in f.files:
                    records.append((path, "meta/history", json.loads(str(f["meta/history"]))))
    return records


def strings_in(obj: object) -> list[str]:
    if isinstance(obj, dict):
        return [*obj.keys(), *(s for value in obj.values() for s in strings_in(value))]
    if isinstance(obj, list):
        return [s for value in obj for s in strings_in(value)]
    return [obj] if isinstance(obj, str) else []


@pytest.mark.slow  # reads every shipped checkpoint's history, beside the other checks of shipped files
def test_shipped_records_carry_no_machine_paths():
    records = shipped_records()
    assert len(records) > 20 and any(member for _, member, _ in records)
    for path, member, record in records:
        for text in strings_in(record):
            words = shlex.split(text) if text.startswith("python") else [text]
            absolute = [w for w in words if w.partition("=")[2 if w.startswith("-") else 0].startswith("/")]
            where = f"{path.relative_to(ROOT)} {member}".strip()
            assert not absolute and not any(p in text for p in MACHINE_PATHS), f"{where}: {text[:200]}"
        for run in record.get("runs", []) + ([record["run"]] if "run" in record else []):
            assert re.fullmatch(r"python3\.\d+ .*", run["command"]), f"{path}: {run['command'][:80]}"


