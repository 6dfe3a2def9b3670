"""Our spiking simulator against SpikingJelly and the original code's, side by side in one run.

    python benchmarks/snn_vs_others.py                                # ours and SpikingJelly
    python benchmarks/snn_vs_others.py --original_repo /work/orig     # and the original code's simulator

All three run the shipped MNIST LeNet k=1 (``MNIST/pretrained/k1.npz``) converted once by
:func:`common.convert.convert`, on the first ``--images`` MNIST test images, with the image times
``2^k`` presented at t=0 and zeros after:

1. **Ours**: :class:`common.snn.FastSimulator`, with early exit (a sample stops once no layer spikes)
   and with every step simulated. Exact: its predictions are the quantized ANN's.
2. **SpikingJelly 2.0** (PyTorch, CPU): the multi-step network of ``examples/spikingjelly/`` with SpikingJelly's
   ``neuron.IFNode`` (threshold 1, reset by subtraction) on the same weights, built from the converted network's
   file (``python -m common.convert export``). Its neurons have no negative spikes, so its accuracy is
   lower: an IF neuron cannot take back a spike that later inhibitory input would have cancelled. It runs in a
   process of its own (``benchmarks/spikingjelly_peer.py``): TensorFlow and PyTorch crash when loaded into one
   process, and each framework is then timed without the other's threads beside it; the two exchange files of
   plain arrays.
3. **The original code's NumPy simulator** (``MNIST/spiking_ulils.py`` of
   github.com/edwardzcl/Spiking_Networks_with_Negative_Spike_Dynamics), imported from
   ``--original_repo`` at run time and built as its ``MNIST/Spiking_LeNet_MNIST.py`` builds ``MyNet``.
   It has no early exit; it is timed on ``--original_images`` images and its time scaled to ``--images``.

Times are wall clock and CPU time (``time.process_time()``: every thread of the process), the median
of ``--repeats`` after a warm-up (the original: one run). On a shared machine another process may stop
this one (SIGSTOP) for a while: a repeat that spans a stop is left out of the wall median, and a row with
no other repeat says that its wall time is invalid (CPU time is unaffected). The last line holds the ratios::

    ours_vs_spikingjelly_early_exit=<ours / SJ, CPU> ours_vs_spikingjelly_every_step=<CPU>
    ours_vs_spikingjelly_early_exit_wall=<wall> original_vs_ours_cpu=<x faster> original_vs_ours_cpu_every_step=<>

(ours / SpikingJelly: lower is better; original / ours: higher is better).

SpikingJelly and PyTorch are optional (without them that column is skipped with a note)::

    pip install -e '.[bench]' torch==2.13.0   # a CPU build of torch is enough: name it, see README's Install
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import signals  # noqa: E402

if __name__ == "__main__":
    signals.start_program()  # first: a stop during the imports below ends the program with its line

from common import startup

startup.start()  # quietly, before anything imports TensorFlow
import numpy as np
import tensorflow as tf
from absl import flags

from common import checkpoint, cli, convert, data
from common.networks import MNIST_LENET
from common.snn import FastSimulator
from common.spiking_network import SpikingNetwork
from benchmarks.timing import Resumes, cpu_model, median_times, stopped_note

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL_MODULE = Path("MNIST") / "spiking_ulils.py"  # the original's simulator, inside its repository
FLAGS = flags.FLAGS


def define_flags(fv: flags.FlagValues = FLAGS) -> None:
    """The command line (defined when run as a script, so that the tests can import the building blocks)."""
    flags.DEFINE_string("checkpoint", str(ROOT / "MNIST" / "pretrained" / "k1.npz"), "MNIST LeNet checkpoint.",
                        flag_values=fv)
    flags.DEFINE_integer("k", 1, "Quantization level.", lower_bound=0, upper_bound=8, flag_values=fv)
    flags.DEFINE_integer("images", 1000, "MNIST test images to simulate.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("time_steps", 20, "Time steps.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("batch_size", 200, "Batch size.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("repeats", 3, "Timed repeats (the median is reported).", lower_bound=1, flag_values=fv)
    flags.DEFINE_string("original_repo", "", "A checkout of the original code's repository, whose "
                        f"{ORIGINAL_MODULE} is timed; empty: skip it.", flag_values=fv)
    flags.DEFINE_integer("original_images", 200, "Images for the (slow) original simulator; its time is scaled "
                         "to --images.", lower_bound=1, flag_values=fv)


def in_batches(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int) -> np.ndarray:
    """``fn`` on consecutive batches of ``x``, the results concatenated."""
    return np.concatenate([fn(x[i:i + batch]) for i in range(0, len(x), batch)])


def blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    pools = dict.fromkeys(f"{pool['internal_api']} {pool['num_threads']}" for pool in threadpool_info())
    return ", ".join(pools) or "none"


# ---------------------------------------------------------------------------- ours


def ours_predictions(simulator: FastSimulator, x: np.ndarray, time_steps: int) -> np.ndarray:
    """Predictions after the last step for inputs ``x`` (already times ``2^k``)."""
    return simulator.simulate(x, time_steps).predictions[-1]


# ---------------------------------------------------------------------------- SpikingJelly


def spikingjelly_missing() -> str | None:
    """Why SpikingJelly cannot run here, or None if it can (looked up without importing PyTorch)."""
    for package in ("torch", "spikingjelly"):
        if importlib.util.find_spec(package) is None:
            return f"{package} is not installed (pip install -e '.[bench]')"
    return None


PEER = ROOT / "benchmarks" / "spikingjelly_peer.py"


def spikingjelly_in_its_own_process(sn: SpikingNetwork, x: np.ndarray, time_steps: int, batch: int,
                                    repeats: int) -> tuple[float, float, np.ndarray, int, int]:
    """SpikingJelly's IF network on the weights of ``sn``, run and timed by ``benchmarks/spikingjelly_peer.py`` in
    a process of its own: ``(wall, cpu, predictions, stopped repeats, PyTorch threads)`` for NHWC images ``x``
    (not yet times ``2^k``). The network goes as the exported file, the images and results as ``.npy``/``.npz``."""
    with tempfile.TemporaryDirectory(prefix="negspike-peer-") as folder:
        folder = Path(folder)
        convert.export_snn(sn, folder / "snn.safetensors")
        np.save(folder / "images.npy", np.ascontiguousarray(x, np.float32))
        done = signals.run_relaying_stop_signals(  # a stop stops the peer first; its errors show on our stderr
            [sys.executable, str(PEER), str(folder / "snn.safetensors"), str(folder / "images.npy"),
             str(folder / "out.npz"), "--time_steps", str(time_steps), "--batch_size", str(batch),
             "--repeats", str(repeats)], stdout=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"{PEER.name} exited with {done.returncode} (its error is above)")
        with np.load(folder / "out.npz", allow_pickle=False) as out:
            return (float(out["wall"]), float(out["cpu"]), out["predictions"], int(out["stopped"]),
                    int(out["threads"]))


# ---------------------------------------------------------------------------- the original code


def load_original(repo: str | Path) -> ModuleType:
    """The original repository's ``MNIST/spiking_ulils.py``, imported from its file (never copied here)."""
    path = Path(repo).expanduser() / ORIGINAL_MODULE
    if not path.is_file():
        raise FileNotFoundError(f"--original_repo {repo}: no {ORIGINAL_MODULE} there; pass a checkout of "
                                f"github.com/edwardzcl/Spiking_Networks_with_Negative_Spike_Dynamics")
    spec = importlib.util.spec_from_file_location("original_spiking_ulils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class OriginalNetwork:
    """The original's spiking network on the weights of ``sn``, built as its ``MyNet`` is.

    Each hidden layer is one of its ``Conv2d`` (channels first, symmetric padding) with the kernel
    transposed to ``(out, in, kh, kw)`` and the per-channel ``diff`` (the threshold) and ``bound``
    (the shadow potential's start and floor) that ``MyNet.convert_assign_params`` derives from the
    BatchNorm statistics; the output layer is its ``Linear`` over the last layer's spike counts.
    Every call of its layers prints; the prints are sent to ``os.devnull``.
    """

    def __init__(self, module: ModuleType, sn: SpikingNetwork):
        self.layers = []
        k = sn.k
        size = sn.network.input_shape[0]
        for spiking in sn.layers:
            conv = spiking.conv
            before, after = conv.pads(size)
            if before != after:
                raise ValueError(f"{conv}: the original's convolutions pad symmetrically, TensorFlow pads "
                                 f"{before} and {after}")
            kh, kw, c_in, c_out = spiking.kernel.shape
            layer = module.Conv2d(in_channels=c_in, n_filter=c_out, filter_size=(kh, kw), padding=before,
                                  stride=conv.stride, use_ternary=False)
            beta, gamma, mean, var = spiking.batchnorm  # float32, as the original read them from its .npz
            layer.W[...] = spiking.kernel.transpose(3, 2, 0, 1)
            # MyNet.convert_assign_params, with its NumPy types: params[tag + 1..3] are gamma, mean, var
            layer.diff[:] = 1 / 2 ** k * 2 ** k * np.sqrt(var + 1e-5) / gamma
            layer.bound[:] = ((1 / 2 ** (k + 1) - beta) * (2 ** k * np.sqrt(var + 1e-5)) / gamma
                              + 2 ** k * mean - layer.diff[:])
            self.layers.append(layer)
            size = conv.output_size(size)
        self.flatten = module.Flatten()
        self.readout = module.Linear(dim_in=sn.output_weights.shape[0], dim_out=sn.network.classes,
                                     use_ternary=False)
        self.readout.weight[...] = sn.output_weights

    def step(self, x: np.ndarray, t: int) -> np.ndarray:
        """One time step for this step's NCHW input ``x``, as ``MyNet.forward``: the output potentials.

        Also MyNet's per-step totals (its ``test`` writes them to files), as part of its cost."""
        spike_num = spike_collect = sop_num = 0
        for i, layer in enumerate(self.layers):
            x, collect, spikes, sops = layer(x, t)
            spike_num, spike_collect = spike_num + spikes, spike_collect + np.sum(collect)
            sop_num += sops if i else 0  # MyNet counts no synaptic operations of the analog input
        sop_num += spikes * self.readout.weight.shape[1]
        return self.readout(self.flatten(collect, t), t)

    def predictions(self, x: np.ndarray, time_steps: int) -> np.ndarray:
        """Predictions after ``time_steps`` steps for NHWC inputs ``x`` (already times ``2^k``), every
        step simulated as the original's ``test`` does."""
        image = x.transpose(0, 3, 1, 2)
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            for t in range(time_steps):
                output = self.step(image if t == 0 else np.zeros_like(image), t)
        return np.argmax(output, axis=1)


# ---------------------------------------------------------------------------- the run


def main(argv: list[str]) -> None:
    k, steps, batch, repeats = FLAGS.k, FLAGS.time_steps, FLAGS.batch_size, FLAGS.repeats
    try:
        weights = checkpoint.load(FLAGS.checkpoint, MNIST_LENET, k)
        test = data.load_split("mnist", "test", data.data_roots(None, Path(FLAGS.checkpoint).parents[1]))
    except (checkpoint.CheckpointError, data.DataError) as e:
        cli.fail(str(e))
    x, labels = test.x[:FLAGS.images], test.y[:FLAGS.images]
    n = len(x)
    xs = x * np.float32(2 ** k)
    sn = convert.convert(MNIST_LENET, k, weights)
    original_network = None
    if FLAGS.original_repo:
        try:  # before the long timings: a wrong folder fails at once
            original_network = OriginalNetwork(load_original(FLAGS.original_repo), sn)
        except (FileNotFoundError, ValueError) as e:
            cli.fail(str(e))
    sj_missing = spikingjelly_missing()
    intra = tf.config.threading.get_intra_op_parallelism_threads()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs, {len(os.sched_getaffinity(0))} usable")
    print(f"threads: TensorFlow intra-op {intra or 'default (all)'}, PyTorch "
          f"{'-' if sj_missing else os.cpu_count() or 1} (in its own process), NumPy BLAS {blas_threads()}")
    print(f"MNIST LeNet k={k}, {FLAGS.checkpoint}: {n} test images, T={steps}, batch {batch}, "
          f"median of {repeats} after a warm-up")

    rows = []  # (name, wall, cpu, accuracy, note)
    Resumes.install()
    early, every_step = FastSimulator(sn), FastSimulator(sn, early_exit=False)
    ours = {}  # name -> (wall, cpu, predictions)
    for name, simulator in (("ours, early exit", early), ("ours, every step", every_step)):
        wall, cpu, predicted, stopped = median_times(
            lambda s=simulator: in_batches(lambda b, s=s: ours_predictions(s, b, steps), xs, batch), repeats)
        ours[name] = wall, cpu, predicted
        rows.append((name, wall, cpu, (predicted == labels).mean(), "exact" + stopped_note(stopped, repeats)))
    ours_predicted = ours["ours, early exit"][2]

    sj = None
    if sj_missing:
        print(f"SpikingJelly: skipped, {sj_missing}")
    else:
        wall, cpu, predicted, stopped, _ = spikingjelly_in_its_own_process(sn, x, steps, batch, repeats)
        sj = wall, cpu
        rows.append(("SpikingJelly 2.0, every step", wall, cpu, (predicted == labels).mean(),
                     "no negative spikes; initial potential bias + 0.5 + 1e-5; own process"
                     + stopped_note(stopped, repeats)))

    original = None
    if original_network is None:
        print("original simulator: skipped; pass --original_repo <checkout of "
              "github.com/edwardzcl/Spiking_Networks_with_Negative_Spike_Dynamics> to time it")
    else:
        m = min(FLAGS.original_images, n)
        wall, cpu, predicted, stopped = median_times(
            lambda: in_batches(lambda b: original_network.predictions(b, steps), xs[:m], batch), 1, warm_up=False)
        original = wall * n / m, cpu * n / m
        agree, ours_there = int((predicted == ours_predicted[:m]).sum()), (ours_predicted[:m] == labels[:m]).mean()
        rows.append(("original NumPy, every step", *original, (predicted == labels[:m]).mean(),
                     f"timed on {m} images, scaled; accuracy on them (ours: {ours_there:.2%}); final predictions "
                     f"agree with ours on {agree} of {m}" + stopped_note(stopped, 1)))

    print(f"  {'simulator':30s} {'wall s':>8s} {'CPU s':>8s} {'CPU/wall':>8s} {'accuracy':>8s}")
    for name, wall, cpu, accuracy, note in rows:
        print(f"  {name:30s} {wall:8.3f} {cpu:8.3f} {cpu / wall:8.2f} {accuracy:8.2%}  {note}")
    ratios = []
    if sj:
        ratios += [f"ours_vs_spikingjelly_early_exit={ours['ours, early exit'][1] / sj[1]:.2f}",
                   f"ours_vs_spikingjelly_every_step={ours['ours, every step'][1] / sj[1]:.2f}",
                   f"ours_vs_spikingjelly_early_exit_wall={ours['ours, early exit'][0] / sj[0]:.2f}"]
    if original:
        ratios += [f"original_vs_ours_cpu={original[1] / ours['ours, early exit'][1]:.1f}",
                   f"original_vs_ours_cpu_every_step={original[1] / ours['ours, every step'][1]:.1f}"]
    print(" ".join(ratios) if ratios else "no ratios: neither SpikingJelly nor the original simulator ran")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
