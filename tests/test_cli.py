"""The original command lines, and one clear line for every bad flag."""

from __future__ import annotations

import subprocess
import sys

import pytest
from absl import flags

from common import cli
from conftest import ROOT
from signalling import PATIENCE

QUANT = ROOT / "CIFAR10" / "CNN_1" / "Quant_CNN1_CIFAR10.py"
SPIKING = ROOT / "CIFAR10" / "CNN_1" / "Spiking_CNN1_CIFAR10.py"
SCRIPTS = sorted(ROOT.glob("MNIST/*_MNIST.py")) + sorted(ROOT.glob("FashionMNIST/*/*.py")) + \
    sorted(ROOT.glob("CIFAR10/*/*.py"))


def parse_ann(argv):
    fv = flags.FlagValues()
    cli.define_ann_flags(learning_rate=1e-3, epochs=100, flag_values=fv)
    fv(["prog", *argv])
    return fv


def test_the_original_training_line():
    fv = parse_ann(["--k", "0", "--resume", "False", "--learning_rate", "0.001", "--mode", "training"])
    assert (fv.k, fv.resume, fv.learning_rate, fv.mode) == (0, False, 0.001, "training")
    assert fv.batch_size == 200 and fv.epochs == 100


def test_the_original_resume_and_inference_lines():
    fv = parse_ann(["--k", "1", "--resume", "True", "--mode", "inference"])
    assert (fv.k, fv.resume, fv.mode) == (1, True, "inference")
    assert parse_ann(["--resume=False"]).resume is False


def test_the_original_spiking_line():
    fv = flags.FlagValues()
    cli.define_snn_flags(time_steps=100, flag_values=fv)
    fv(["prog", "--k", "0"])
    assert (fv.k, cli.time_steps(fv), fv.noise_ratio, fv.batch_size) == (0, 100, 0.0, 200)
    fv(["prog", "--k", "3"])
    assert cli.time_steps(fv) == 400  # levels grow as 2^k, and so does the time to signal them


def test_there_are_fifteen_scripts():
    assert len(SCRIPTS) == 15


def run(script, *args):
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=PATIENCE)


@pytest.mark.parametrize("script, args, expected", [
    (QUANT, ["--k", "9"], "flag --k=9: 9 is not an integer in the range [0, 8]"),
    (QUANT, ["--mode", "testing"], "flag --mode=testing: value should be one of <training|inference>"),
    (QUANT, ["--epochs", "0"], "flag --epochs=0"),
    (QUANT, ["--batch_size", "0"], "flag --batch_size=0"),
    (QUANT, ["--resume", "maybe"], "flag --resume=maybe: expected True or False"),
    (QUANT, ["--learning_rate", "-1"], "--learning_rate must be a positive number"),
    (QUANT, ["--learning_rate", "inf"], "--learning_rate must be a positive number"),
    (QUANT, ["--seed", "-1"], "flag --seed=-1"),
    (QUANT, ["--seed", str(2 ** 32)], "flag --seed=4294967296"),
    (QUANT, ["--data_dir", "/no/such/folder"], "--data_dir must be an existing folder"),
    (SPIKING, ["--time_steps", "0"], "flag --time_steps=0"),
    (SPIKING, ["--noise_ratio", "-0.5"], "flag --noise_ratio=-0.5"),
    (SPIKING, ["--noise_ratio", "nan"], "--noise_ratio must be a finite number"),
    (SPIKING, ["--time_steps", "10000000"], "flag --time_steps=10000000"),
    (SPIKING, ["--neuron_rule", "mine"], "value should be one of <lossless|no_negative|original>"),
    (SPIKING, ["--k", "-1"], "flag --k=-1"),
    (SPIKING, ["--simulator", "gpu"], "value should be one of <fast|reference>"),
])
def test_bad_flags_get_one_clear_line(script, args, expected):
    done = run(script, *args)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and expected in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_help_asked_for_is_printed_with_status_0():
    """-h in every script, absl's other help flags in one, and the figures' -h: help on stdout and status 0, so that
    ``script -h && ...`` goes on (absl's own status is 1)."""
    cases = [(script, "-h") for script in SCRIPTS] + [(SPIKING, f) for f in ("--help", "--helpshort", "--helpfull")]
    procs = [subprocess.Popen([sys.executable, str(script), flag], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for script, flag in cases]  # side by side
    plots = subprocess.Popen([sys.executable, "-m", "common.plots", "-h"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for (script, flag), proc in zip(cases, procs):
        out, err = proc.communicate(timeout=PATIENCE)
        assert proc.returncode == 0 and err == "", (script, flag, err[-2000:])
        assert "--k:" in out and "--checkpoint:" in out, (script, flag)
        assert ("--[no]pdb_post_mortem:" in out) == (flag == "--helpfull"), (script, flag)  # absl's own flags too
    out, err = plots.communicate(timeout=PATIENCE)
    assert plots.returncode == 0 and out.startswith("usage: python -m common.plots") and err == ""
