"""Command lines of the workspace scripts (absl flags) and their one-line errors."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from absl import app, flags

from common import neurons, signals
from common.env import CLUSTER_TIMEOUT_ENV, VERBOSE_ENV

if TYPE_CHECKING:  # annotations only: the scripts define their flags before TensorFlow starts
    import tensorflow as tf

    from common.networks import Network

FLAGS = flags.FLAGS


class _BoolValueParser(flags.ArgumentParser):
    """Booleans written as values, as the original's ``--resume False`` (``ast.literal_eval``)."""

    def parse(self, argument: object) -> bool:
        if isinstance(argument, bool):
            return argument
        text = str(argument).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValueError(f"expected True or False, got {argument!r}")

    def flag_type(self) -> str:
        return "bool"


def _define_common(flag_values: flags.FlagValues, k: int, batch_size: int) -> None:
    flags.DEFINE_integer("k", k, "Quantization level: activations on the grid 1/2^k.",
                         lower_bound=0, upper_bound=8, flag_values=flag_values)
    flags.DEFINE_integer("batch_size", batch_size, "Images per batch.", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_string("data_dir", None, "Data root holding mnist/, fashion_mnist/ or cifar10/ "
                        "(default: $NEGSPIKE_DATA, then <workspace>/data).", flag_values=flag_values)
    flags.DEFINE_string("checkpoint", None, "Checkpoint .npz (default: <workspace>/checkpoints/k<k>.npz).",
                        flag_values=flag_values)
    flags.DEFINE_integer("seed", None, "Random seed; makes a run repeatable.", lower_bound=0,
                         upper_bound=2 ** 32 - 1, flag_values=flag_values)
    flags.DEFINE_boolean("verbose", False, f"Show TensorFlow's start-up messages (also: {VERBOSE_ENV}=1).",
                         flag_values=flag_values)
    flags.DEFINE_string("tensorboard", None, "Also write TensorBoard summaries into this folder.",
                        flag_values=flag_values)
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                      "tf.distribute strategy: one device; every local GPU (or --cpu_replicas logical CPUs); or the "
                      "machines of TF_CONFIG. --batch_size stays the global batch.", flag_values=flag_values)
    flags.DEFINE_float("cluster_timeout", 300.0, "--strategy multi_worker: seconds to wait for every worker of "
                       "TF_CONFIG before giving up.", lower_bound=1.0, upper_bound=7 * 24 * 3600.0,
                       flag_values=flag_values)
    flags.DEFINE_integer("cpu_replicas", 1, "Split this CPU into N logical devices for --strategy mirrored (to run "
                         "the multi-device path without GPUs).", lower_bound=1, upper_bound=64, flag_values=flag_values)
    flags.register_validator("data_dir", lambda v: v is None or os.path.isdir(v),
                             "--data_dir must be an existing folder", flag_values=flag_values)


def define_ann_flags(learning_rate: float, epochs: int, k: int = 1, batch_size: int = 200,
                     quantized: bool = True, flag_values: flags.FlagValues = FLAGS) -> None:
    """Flags of ``Quant_*.py`` and ``FP32_*.py`` with the original's defaults."""
    before = set(flag_values)
    _define_common(flag_values, k, batch_size)
    flags.DEFINE(_BoolValueParser(), "resume", False, "Continue from --checkpoint (True or False).",
                 flag_values=flag_values)
    flags.DEFINE_enum("mode", "training", ["training", "inference"], "Train, or only evaluate.",
                      flag_values=flag_values)
    flag_values["checkpoint"].help = ("Checkpoint .npz (default: <workspace>/checkpoints/k<k>.npz; --mode inference "
                             "falls back to <workspace>/pretrained/k<k>.npz).")
    flags.DEFINE_float("learning_rate", learning_rate, "Adam learning rate.", flag_values=flag_values)
    flags.DEFINE_integer("epochs", epochs, "Epochs to train (a resumed, unfinished run goes on to its own "
                         "target instead).", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("train_samples", None, "Train on the first N training images only.",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "Arithmetic of the convolutions and "
                      "matrix products while training (variables, BatchNorm, quantizer and optimizer stay float32); "
                      "bfloat16 is fast only on CPUs with AMX or AVX512-BF16 and recent GPUs.", flag_values=flag_values)
    flags.DEFINE_enum("xla", "auto", ["auto", "on", "off"], "Compile the training step with XLA; 'auto': "
                      "on for fully connected networks, where it is 4 to 8 times faster on a CPU, off for "
                      "convolutional ones, where it is slower (benchmarks/train_speed.py); off with a --strategy "
                      "other than default.", flag_values=flag_values)
    flags.DEFINE_float("save_minutes", 10.0, "Also save a resumable checkpoint in the middle of an epoch once this "
                       "many minutes have passed since the last save, so that a hard stop loses little of a long "
                       "epoch (0: save after each epoch only).", lower_bound=0.0, flag_values=flag_values)
    flags.register_validator("learning_rate", lambda v: math.isfinite(v) and v > 0,
                             "--learning_rate must be a positive number",
                             flag_values=flag_values)
    if not quantized:
        flag_values["k"].help = "Ignored by the FP32 baseline (kept so that the original command lines work)."
    _key_flags_of_script(flag_values, set(flag_values) - before)


def define_snn_flags(time_steps: int, k: int = 1, batch_size: int = 200,
                     flag_values: flags.FlagValues = FLAGS) -> None:
    """Flags of ``Spiking_*.py``; ``time_steps`` is the default for k <= 1, doubled for each k above."""
    if "log_dir" in flag_values:  # absl.logging's flag (for its log files, which we never write) takes the name
        delattr(flag_values, "log_dir")
    before = set(flag_values)
    _define_common(flag_values, k, batch_size)
    flag_values["checkpoint"].help = ("Checkpoint .npz (default: <workspace>/checkpoints/k<k>.npz, "
                             "else <workspace>/pretrained/k<k>.npz).")
    flags.DEFINE_integer("time_steps", None, f"Simulation time steps (default: {time_steps} for k <= 1, "
                         "doubled for each k above, so that trained networks settle).", lower_bound=1,
                         upper_bound=10_000, flag_values=flag_values)
    flag_values["time_steps"].base_default = time_steps
    flags.DEFINE_float("noise_ratio", 0.0, "Input noise: the image is multiplied by "
                       "1 + (U(0,1) - 0.5) * noise_ratio.", lower_bound=0.0, upper_bound=1e6, flag_values=flag_values)
    flags.register_validator("noise_ratio", math.isfinite, "--noise_ratio must be a finite number",
                             flag_values=flag_values)
    flags.DEFINE_enum("neuron_rule", neurons.DEFAULT_RULE, list(neurons.RULES), neurons.flag_help(),
                      flag_values=flag_values)
    flags.DEFINE_boolean("early_exit", True, "Stop simulating an image once no neuron spikes (changes nothing "
                         "in the logs, only the time).", flag_values=flag_values)
    flags.DEFINE_boolean("replace_logs", False, "Replace an earlier run in --log_dir (default: move it aside to "
                         "<log_dir>.bak, .bak1, ...); a partial run never replaces a complete one.",
                         flag_values=flag_values)
    flags.DEFINE_integer("num_samples", None, "Simulate the first N test images (default: all).",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_string("log_dir", None, "Folder of the logs (default: <workspace>/figs/k<k>/).",
                        flag_values=flag_values)
    flags.DEFINE_enum("simulator", "fast", ["fast", "reference"],
                      "'fast' (TensorFlow) or 'reference' (plain NumPy, for checking).", flag_values=flag_values)
    _key_flags_of_script(flag_values, set(flag_values) - before)


def time_steps(flag_values: flags.FlagValues) -> int:
    """``--time_steps``, else the script's base doubled for each k above 1: a neuron at level L needs L
    steps to signal it, and levels grow as 2^k."""
    return flag_values.time_steps or flag_values["time_steps"].base_default * max(1, 2 ** (flag_values.k - 1))


def _key_flags_of_script(flag_values: flags.FlagValues, names: set[str]) -> None:
    """List the flags in the script's ``--helpshort``, although ``common.cli`` defines them."""
    for name in sorted(names):
        flag_values.register_key_flag_for_module(sys.argv[0], flag_values[name])


def _join_boolean_values(argv: list[str], flag_values: flags.FlagValues) -> list[str]:
    """``--early_exit False`` as ``--early_exit=False``: absl's booleans take no separate value."""
    joined, i = [], 0
    while i < len(argv):
        arg = argv[i]
        name = arg[2:] if arg.startswith("--") and "=" not in arg else None
        if (name in flag_values and isinstance(flag_values[name], flags.BooleanFlag) and i + 1 < len(argv)
                and argv[i + 1].lower() in ("true", "false")):
            joined.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        joined.append(arg)
        i += 1
    return joined


def parse_flags(argv: list[str], flag_values: flags.FlagValues = FLAGS) -> list[str]:
    """Parse ``argv``; a bad flag ends the program with one line naming it and exit status 2; ``-h``, ``--help``,
    ``--helpshort`` and ``--helpfull`` print the help and exit 0."""
    argv = ["--help" if arg == "-h" else arg for arg in argv]  # -h, as every other command line tool
    try:
        return flag_values(_join_boolean_values(argv, flag_values))
    except flags.Error as e:
        sys.stderr.write(f"error: {e}\n")
        sys.exit(2)
    except SystemExit:  # only absl's help flags exit while parsing, with 1; help asked for is not an error
        sys.exit(0)


def run(main: Callable[[list[str]], None]) -> None:
    """``absl.app.run`` with one-line flag errors and help that exits 0; stop signals end the program with one
    line (:mod:`common.signals`, which the script caught at its first line), and a closed standard output
    does not end it."""
    signals.start_program()  # for a script that did not at its first line
    app.run(main, flags_parser=parse_flags)


def fail(message: str, status: int = 1) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.exit(status)


def start_tensorflow() -> object:
    """Import TensorFlow quietly, set up for ``--strategy`` and ``--cpu_replicas``; returns the strategy."""
    if FLAGS.strategy == "multi_worker":
        _check_tf_config()
    os.environ[CLUSTER_TIMEOUT_ENV] = str(FLAGS.cluster_timeout)
    from common import startup

    try:
        startup.start(FLAGS.strategy, FLAGS.cpu_replicas)
    except Exception as e:
        from common import distribute

        if isinstance(e, distribute.DistributeError):  # the cluster did not come
            fail(str(e), 1)
        raise
    from common import distribute

    try:
        return distribute.make_strategy(FLAGS.strategy, FLAGS.cpu_replicas)
    except distribute.DistributeError as e:
        fail(str(e), 2)


def say_devices(strategy: tf.distribute.Strategy) -> None:
    """One line: the strategy, its replicas and this process's devices; a note when a GPU was asked for and
    TensorFlow sees none (a CUDA that fails to load leaves TensorFlow on the CPU without a word)."""
    import tensorflow as tf

    from common import distribute

    workers = distribute.worker_count(strategy)
    worker = f", worker {distribute.worker_index(strategy)} of {workers}" if workers > 1 else ""
    devices = ", ".join(d.split("device:")[-1].lstrip("/").upper() for d in distribute.local_devices(strategy))
    replicas = strategy.num_replicas_in_sync
    print(f"strategy {FLAGS.strategy}: {replicas} replica{'s' if replicas > 1 else ''}{worker} on {devices}",
          flush=True)
    if FLAGS.strategy != "default" and FLAGS.cpu_replicas == 1 and not tf.config.list_physical_devices("GPU"):
        print(f"note: --strategy {FLAGS.strategy} asks for GPUs but TensorFlow sees none, so this runs on the CPU; "
              "check the GPU set-up with: python -c \"import tensorflow as tf; "
              "print(tf.config.list_physical_devices('GPU'))\"", flush=True)


def _check_tf_config() -> None:
    """``--strategy multi_worker`` needs ``TF_CONFIG`` naming the cluster and this process's task."""
    text = os.environ.get("TF_CONFIG", "")
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", '
               '"index": 0}}\'')
    if not text:
        fail(f"--strategy multi_worker needs TF_CONFIG, e.g. {example} (see docs/scaling.md)", 2)
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        if not isinstance(cluster, dict) or not isinstance(task, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, RecursionError):
        fail(f"TF_CONFIG is not a cluster and a task of it, e.g. {example}", 2)
    kinds = sorted(set(cluster) - {"chief", "worker"})
    if kinds:
        fail(f"TF_CONFIG's cluster has task types {kinds}; --strategy multi_worker takes only 'chief' and 'worker' "
             f"(no parameter servers), e.g. {example}", 2)
    for kind, members in cluster.items():
        if not (isinstance(members, list) and members and all(isinstance(m, str) and ":" in m for m in members)):
            fail(f"TF_CONFIG's cluster['{kind}'] must be a list of \"host:port\" strings, got {members!r:.80}", 2)
    index = task.get("index")
    if task.get("type") not in cluster:
        fail(f"TF_CONFIG's task type {task.get('type')!r:.40} is not in its cluster {sorted(cluster)}", 2)
    if type(index) is not int or not 0 <= index < len(cluster[task["type"]]):
        fail(f"TF_CONFIG's task index {index!r:.40} must be an integer 0..{len(cluster[task['type']]) - 1}", 2)


def default_checkpoint(workspace: Path, k: int | None) -> Path:
    return workspace / "checkpoints" / ("fp32.npz" if k is None else f"k{k}.npz")


def checkpoint_to_read(workspace: Path, k: int | None) -> Path:
    """Without ``--checkpoint``: your own ``checkpoints/`` one if there is one (saying that it shadows the
    shipped one), else the shipped ``pretrained/`` one."""
    own = default_checkpoint(workspace, k)
    shipped = workspace / "pretrained" / own.name
    if own.is_file():
        if shipped.is_file():
            print(f"note: using your own checkpoint {own}, which shadows the shipped {shipped}; pass --checkpoint "
                  f"{shipped} to use the shipped one", flush=True)
        return own
    return shipped if shipped.is_file() else own


def _data_roots(data, workspace: Path) -> list[Path]:
    """``data.data_roots`` of ``--data_dir``; a bad ``NEGSPIKE_DATA`` ends the program with one line."""
    try:
        return data.data_roots(FLAGS.data_dir, workspace)
    except data.DataError as e:
        fail(str(e), 2)


def ann_main(network: Network, quantized: bool, workspace: str | Path) -> Callable[[list[str]], None]:
    """The ``main`` of a ``Quant_*.py`` (``quantized=True``) or ``FP32_*.py`` script."""
    workspace = Path(workspace).resolve()

    def main(argv: list[str]) -> None:
        if len(argv) > 1:
            fail(f"unexpected arguments {argv[1:]}; flags are written --name value", 2)
        strategy = start_tensorflow()
        from common import checkpoint, data, distribute, train

        k = FLAGS.k if quantized else None
        jit = FLAGS.xla == "on" or (FLAGS.xla == "auto" and network.fully_connected() and FLAGS.strategy == "default")
        if jit and FLAGS.strategy != "default":
            fail(f"--xla on compiles the one-device step; with --strategy {FLAGS.strategy} pass --xla off", 2)
        if FLAGS.checkpoint:
            ckpt = Path(FLAGS.checkpoint)
        else:  # training writes your own checkpoint; inference reads it, else the shipped one
            ckpt = default_checkpoint(workspace, k) if FLAGS.mode == "training" else checkpoint_to_read(workspace, k)
        cfg = train.TrainConfig.from_flags(
            FLAGS, network=network, k=k, roots=_data_roots(data, workspace), checkpoint=ckpt, jit_compile=jit,
            tensorboard=Path(FLAGS.tensorboard) if FLAGS.tensorboard else None, strategy=strategy)
        training = f" resume={cfg.resume} learning_rate={cfg.learning_rate}" if cfg.mode == "training" else ""
        print(f"{network.name} {checkpoint.k_label(k)} mode={cfg.mode}{training} checkpoint={cfg.checkpoint}",
              flush=True)
        say_devices(strategy)
        try:  # inference writes nothing: a signal ends it at once
            with signals.working() if cfg.mode == "training" else contextlib.nullcontext():
                train.run(cfg)
        except signals.Interrupted as e:
            signals.end(e.signum, str(e))
        except (data.DataError, checkpoint.CheckpointError, train.TrainingError, distribute.DistributeError) as e:
            fail(str(e))

    return main


def snn_main(network: Network, workspace: str | Path) -> Callable[[list[str]], None]:
    """The ``main`` of a ``Spiking_*.py`` script."""
    workspace = Path(workspace).resolve()

    def main(argv: list[str]) -> None:
        if len(argv) > 1:
            fail(f"unexpected arguments {argv[1:]}; flags are written --name value", 2)
        strategy = start_tensorflow()
        from common import checkpoint, data, logs, spiking

        ckpt = Path(FLAGS.checkpoint) if FLAGS.checkpoint else checkpoint_to_read(workspace, FLAGS.k)
        cfg = spiking.SpikingConfig.from_flags(
            FLAGS, network=network, checkpoint=ckpt, roots=_data_roots(data, workspace),
            log_dir=Path(FLAGS.log_dir) if FLAGS.log_dir else workspace / "figs" / f"k{FLAGS.k}",
            time_steps=time_steps(FLAGS), tensorboard=Path(FLAGS.tensorboard) if FLAGS.tensorboard else None,
            strategy=strategy)
        say_devices(strategy)
        try:
            with signals.working():
                spiking.run(cfg)
        except signals.Interrupted as e:
            signals.end(e.signum, str(e))
        except (data.DataError, checkpoint.CheckpointError, logs.LogDirError, ValueError) as e:
            fail(str(e))

    return main
