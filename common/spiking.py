"""A spiking run: convert a checkpoint, simulate the test set, compare with the exact ANN, log."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from common import checkpoint, convert, data, distribute, logs, neurons, provenance, reference
from common.config import RECORDED, Config
from common.model import build_ann
from common.networks import Network
from common.progress import Progress
from common.results import SimulationResult
from common.signals import Interrupted, SignalGuard, Stopped
from common.snn import FastSimulator

MAX_TIME_STEPS = 10_000  # far beyond settling; keeps the per-step records of a batch small
ADVICE_SECONDS = 30.0  # the unsettled-images note is worked out for at most this long (compiling included)
# Energy per operation at 45 nm, 32-bit float (Horowitz, ISSCC 2014), as the conversion literature counts it.
PJ_PER_ACCUMULATE, PJ_PER_MAC = 0.9, 4.6


@dataclasses.dataclass
class SpikingConfig(Config):
    """One spiking run of a ``Spiking_*.py`` script.

    Args:
        network, k: the network and its quantization level, as the checkpoint holds them.
        checkpoint: the quantized ANN's ``.npz`` (or ``.safetensors``) to convert.
        roots: the data roots searched for the test set.
        log_dir: where the four logs and ``summary.json`` go (an earlier run there is moved aside).
        simulator: ``fast`` (TensorFlow) or ``reference`` (plain NumPy); a rule the fast one cannot run
            runs on the reference.
        neuron_rule: a name in :data:`common.neurons.RULES`.
        num_samples: simulate the first N test images (``None``: all).
        time_steps, batch_size: steps per image; images per batch.
        noise_ratio, seed: the original's input noise ``1 + (U(0,1) - 0.5) * noise_ratio`` and its seed.
        early_exit: let an image leave its batch once no neuron spikes (changes no log).
        replace_logs: replace an earlier run in ``log_dir`` instead of moving it aside.
        tensorboard: also write per-step scalars into this folder.
        strategy: the ``tf.distribute`` strategy; ``None``: one device.

    The fields marked recorded open ``summary.json``, in this order (:meth:`get_config`).
    """

    network: Network = dataclasses.field(metadata=RECORDED)
    k: int = dataclasses.field(metadata=RECORDED)
    checkpoint: Path = dataclasses.field(metadata=RECORDED)
    roots: list[Path]
    log_dir: Path
    simulator: str = dataclasses.field(default="fast", metadata=RECORDED)
    neuron_rule: str = dataclasses.field(default=neurons.DEFAULT_RULE, metadata=RECORDED)
    num_samples: int | None = dataclasses.field(default=None, metadata=RECORDED)
    time_steps: int = dataclasses.field(default=20, metadata=RECORDED)
    batch_size: int = dataclasses.field(default=200, metadata=RECORDED)
    noise_ratio: float = dataclasses.field(default=0.0, metadata=RECORDED)
    seed: int | None = dataclasses.field(default=None, metadata=RECORDED)
    early_exit: bool = True
    replace_logs: bool = False
    tensorboard: Path | None = None
    strategy: tf.distribute.Strategy | None = None

    def get_config(self) -> dict:
        """The run's settings as ``summary.json`` opens: the network by name, the checkpoint's path as recorded
        (:func:`common.provenance.recorded_path`)."""
        return super().get_config() | {"network": self.network.name,
                                       "checkpoint": provenance.recorded_path(self.checkpoint)}


def noisy(x: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """The original's input noise: ``x * (1 + (U(0, 1) - 0.5) * ratio)``."""
    if ratio == 0:
        return x
    return (x * (1 + (rng.random(x.shape, np.float32) - 0.5) * ratio)).astype(np.float32)


@dataclasses.dataclass
class BatchTally:
    """What one batch adds to a run's logs and summary: plain integers, so that workers can exchange them."""

    lines: dict[str, list[int]]  # the batch's line of each log, per step
    counts: np.ndarray  # samples, ann_correct, agree, mismatched, spikes, net, synops, float32 neurons, predictions
    settle: np.ndarray  # (B,) per sample
    layers: np.ndarray  # (4, L) per hidden layer: |spikes|, net spikes, SOPs caused, sum of settled samples' last step

    COUNTS = ("samples", "ann_correct", "agree", "mismatched", "spikes", "net", "synops", "float32_neurons",
              "float32_predictions")

    @staticmethod
    def width(batch_size: int, time_steps: int, n_layers: int) -> int:
        """Length of a packed row."""
        return 1 + len(BatchTally.COUNTS) + len(logs.LOG_FILES) * time_steps + batch_size + 4 * n_layers

    def pack(self, batch_size: int) -> np.ndarray:
        """One float64 row (exact for these integers), the settle steps padded to ``batch_size``."""
        settle = np.full(batch_size, -2, np.int64)
        settle[:len(self.settle)] = self.settle
        return np.concatenate([[1], self.counts, *(self.lines[n] for n in logs.LOG_FILES), settle,
                               self.layers.ravel()]).astype(np.float64)

    @staticmethod
    def unpack(row: np.ndarray, time_steps: int, n_layers: int) -> BatchTally | None:
        """The tally of :meth:`pack`; None for a row no worker filled (a batch not simulated)."""
        if row[0] != 1:
            return None
        values = np.rint(row).astype(np.int64)
        n = len(BatchTally.COUNTS)
        counts, rest = values[1:1 + n], values[1 + n:]
        lines = {name: rest[i * time_steps:(i + 1) * time_steps].tolist() for i, name in enumerate(logs.LOG_FILES)}
        settle, layers = rest[len(logs.LOG_FILES) * time_steps:-4 * n_layers], rest[-4 * n_layers:]
        return BatchTally(lines, counts, settle[:counts[0]], layers.reshape(4, n_layers))


class _Totals:
    """What the summary adds up over batches, in batch order."""

    def __init__(self, time_steps: int):
        self.lines: dict[str, list[int]] = {name: [] for name in logs.LOG_FILES}
        self.snn_correct = np.zeros(time_steps, np.int64)
        self.counts = np.zeros(len(BatchTally.COUNTS), np.int64)
        self.settle: list[np.ndarray] = []
        self.layers: np.ndarray | None = None

    def add(self, tally: BatchTally) -> None:
        for name in logs.LOG_FILES:
            self.lines[name] += tally.lines[name]
        self.snn_correct += np.asarray(tally.lines["accuracy.txt"], np.int64)
        self.counts += tally.counts
        self.settle.append(tally.settle)
        self.layers = tally.layers if self.layers is None else self.layers + tally.layers

    def count(self, name: str) -> int:
        return int(self.counts[BatchTally.COUNTS.index(name)])


class _Replica:
    """One device's share of a spiking run: its own simulators, placed on that device."""

    def __init__(self, cfg: SpikingConfig, spiking_net: convert.SpikingNetwork, weights: checkpoint.Checkpoint,
                 device: str):
        self.cfg, self.spiking_net, self.device = cfg, spiking_net, device
        with tf.device(device):
            # a rule the fast simulator cannot run is simulated on the reference; the fast one still gives the ANN
            rule = cfg.neuron_rule if neurons.rule(cfg.neuron_rule).fast else neurons.DEFAULT_RULE
            self.fast = FastSimulator(spiking_net, early_exit=cfg.early_exit, rule=rule)
            model = build_ann(cfg.network, cfg.k)
            checkpoint.assign(model, weights)
        self.float32_forward = tf.function(lambda x: model(x, is_train=False), reduce_retracing=True)

    def tally(self, x: np.ndarray, x_spikes: np.ndarray, y: np.ndarray, simulator: str, stop) -> BatchTally:
        cfg, scale = self.cfg, float(2 ** self.cfg.k)
        with tf.device(self.device):
            ann = self.fast.exact_ann(x * scale)  # exact levels and output, independent of batch shape, device and CPU
            if simulator == "fast":
                result = self.fast.simulate(x_spikes, cfg.time_steps, stop=stop)
            else:
                if stop():
                    raise Stopped
                result = reference.simulate(self.spiking_net, x_spikes, cfg.time_steps, cfg.neuron_rule)
            float32 = [o.numpy() for o in self.float32_forward(x)]
        return _tally(result, ann, y, float32, scale)


def run(cfg: SpikingConfig) -> dict:
    """Simulate, write the logs and ``summary.json`` into ``cfg.log_dir``; returns the summary.

    With a ``cfg.strategy`` of several replicas, batch ``b`` is simulated by replica ``b mod R``
    (every local device in a thread of its own; workers exchange their tallies) and the logs are
    merged in batch order. The simulation is exact whatever the batch shape or device, so the
    logs are those of one device, line for line.
    """
    started = time.time()
    if not 1 <= cfg.time_steps <= MAX_TIME_STEPS:
        raise ValueError(f"--time_steps {cfg.time_steps} is out of range 1..{MAX_TIME_STEPS}")
    strategy = cfg.strategy or tf.distribute.get_strategy()
    if not distribute.is_chief(strategy):
        return _run(cfg, strategy, started)
    log_dir = logs.check_writable(cfg.log_dir)  # the rules of a log folder: see common.logs
    if cfg.tensorboard is not None:
        logs.check_folder(cfg.tensorboard, "--tensorboard")
    with logs.writer_lock(log_dir):
        return _run(dataclasses.replace(cfg, log_dir=log_dir), strategy, started)


def _run(cfg: SpikingConfig, strategy: tf.distribute.Strategy, started: float) -> dict:
    """The stages of a run: prepare, simulate (until done or a signal), total in batch order, summarize;
    the chief then writes and reports."""
    prepared = _prepare(cfg, strategy)
    with SignalGuard() as guard:
        tallies = _simulate(cfg, strategy, prepared, guard)
    totals = _totals_in_order(tallies, len(prepared.batches), cfg.time_steps)
    if totals.count("samples") == 0:  # no finished batch: no figures to report, nothing to write
        signum = guard.signum or signal.SIGTERM
        raise Interrupted(f"interrupted by {signal.Signals(signum).name} before the first batch finished: "
                          f"nothing written; {cfg.log_dir} is unchanged", signum)
    summary = _run_summary(cfg, prepared, totals, started)
    if not distribute.is_chief(strategy):
        print("done: the chief wrote the logs", flush=True)
        return summary
    _write(cfg, summary, totals)
    if summary["partial"]:
        signum = guard.signum or signal.SIGTERM
        raise Interrupted(f"interrupted by {signal.Signals(signum).name}: wrote the logs of the "
                          f"{totals.count('samples')} images simulated so far to {cfg.log_dir} (marked partial)",
                          signum)
    _report(cfg, summary, prepared.replicas[0].fast, _unsettled(prepared, totals))
    return summary


Batch = tuple[np.ndarray, np.ndarray, np.ndarray]  # inputs, noisy inputs times 2^k, labels


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """What a run simulates: one replica per local device, the test images in batches, and which simulator."""

    replicas: list[_Replica]
    batches: list[Batch]
    test: data.Split  # the images simulated (the first --num_samples)
    test_images: int  # of the whole test set
    simulator: str


def _prepare(cfg: SpikingConfig, strategy: tf.distribute.Strategy) -> _Prepared:
    """Load and convert the checkpoint, build a replica per local device, read the test images into batches."""
    net, k = cfg.network, cfg.k
    weights = checkpoint.load(cfg.checkpoint, net, k)
    simulator = cfg.simulator if neurons.rule(cfg.neuron_rule).fast else "reference"
    devices = distribute.local_devices(strategy)
    where = f", {strategy.num_replicas_in_sync} replicas" if strategy.num_replicas_in_sync > 1 else ""
    print(f"{net.name} k={k}: checkpoint {cfg.checkpoint}, {cfg.time_steps} time steps, {simulator} simulator, "
          f"{cfg.neuron_rule} neuron rule{where}", flush=True)
    if tf.config.list_logical_devices("GPU"):
        tf.config.experimental.enable_tensor_float_32_execution(False)  # TF32 rounds outside the error bound
        print("note: TensorFlow sees a GPU; the exactness guarantee covers CPU kernels (cuDNN may choose Winograd or "
              "FFT convolutions); for it, run with CUDA_VISIBLE_DEVICES= (see docs/scaling.md)", flush=True)
    spiking_net = convert.convert(net, k, weights)
    replicas = [_Replica(cfg, spiking_net, weights, device) for device in devices]
    whole_test = data.load_split(net.dataset, "test", cfg.roots)
    test = whole_test.head(cfg.num_samples)
    if len(test) == 0:
        raise data.DataError(f"{net.dataset}: the test set is empty; check the data files")
    return _Prepared(replicas, _batches(cfg, test), test, len(whole_test), simulator)


def _batches(cfg: SpikingConfig, test: data.Split) -> list[Batch]:
    """The test images in batches, each with its noisy input times ``2^k``."""
    inputs = data.eval_inputs(cfg.network.dataset, test)
    rng = np.random.default_rng(cfg.seed)
    batches = []  # every worker draws the whole noise stream in batch order, so each batch gets its own draws
    for b in range(-(-len(test) // cfg.batch_size)):
        rows = slice(b * cfg.batch_size, (b + 1) * cfg.batch_size)
        batches.append((inputs[rows], noisy(inputs[rows], cfg.noise_ratio, rng) * float(2 ** cfg.k), test.y[rows]))
    return batches


def _simulate(cfg: SpikingConfig, strategy: tf.distribute.Strategy, prepared: _Prepared,
              guard: SignalGuard) -> dict[int, BatchTally]:
    """Every batch's tally, by batch number: batch ``b`` on replica ``b mod R``, each local replica in a thread of
    its own, then every worker's tallies on every worker. A signal stops the replicas at their next batch."""
    n_batches, replicas = len(prepared.batches), prepared.replicas
    first_slot = distribute.worker_index(strategy) * len(replicas)
    tallies: dict[int, BatchTally] = {}
    progress = Progress(n_batches, "spiking")

    def share(replica: int) -> None:
        for b in range(first_slot + replica, n_batches, strategy.num_replicas_in_sync):
            try:
                tallies[b] = replicas[replica].tally(*prepared.batches[b], prepared.simulator, guard.stop)
            except Stopped:
                return
            progress.update(len(tallies), len(prepared.batches[b][2]))
            if guard.stop():
                return

    if len(replicas) == 1:
        share(0)
    else:
        with concurrent.futures.ThreadPoolExecutor(len(replicas)) as pool:
            for future in [pool.submit(share, r) for r in range(len(replicas))]:
                future.result()
    return _gather(strategy, tallies, n_batches, cfg)


def _totals_in_order(tallies: dict[int, BatchTally], n_batches: int, time_steps: int) -> _Totals:
    """The tallies added in batch order, up to the first batch not simulated (a signal stopped it)."""
    totals = _Totals(time_steps)
    for b in range(n_batches):
        if b not in tallies:
            break
        totals.add(tallies[b])
    return totals


def _run_summary(cfg: SpikingConfig, prepared: _Prepared, totals: _Totals, started: float) -> dict:
    """``summary.json``: the figures of :func:`_summary`, whether the run is partial, and its run record."""
    summary = _summary(cfg, totals, prepared.simulator)
    summary["partial"] = totals.count("samples") < len(prepared.test)
    summary["test_images"] = prepared.test_images
    summary["differs_from_defaults"] = logs.differences(summary)
    summary["run"] = provenance.run_record(cfg.checkpoint, prepared.test.files, started, cfg.roots)
    return summary


def _write(cfg: SpikingConfig, summary: dict, totals: _Totals) -> None:
    """The four logs and ``summary.json`` as one set (an earlier run moved aside), and TensorBoard's summaries."""
    try:
        moved = logs.write_logs(cfg.log_dir, totals.lines, summary, cfg.replace_logs)
    except OSError as e:
        raise logs.LogDirError(f"cannot write the logs into {cfg.log_dir} ({e.strerror}); the previous logs "
                               f"there, if any, are untouched; free some space or pass another --log_dir") from None
    if moved is not None:
        print(f"note: the earlier run in {cfg.log_dir} was moved to {moved} (--replace_logs True replaces it)",
              flush=True)
    if cfg.tensorboard is not None:
        try:
            logs.write_tensorboard(cfg.tensorboard, summary, totals.lines)
        except (OSError, tf.errors.OpError) as e:
            raise logs.LogDirError(f"wrote the logs to {cfg.log_dir}, but cannot write the TensorBoard summaries "
                                   f"into {cfg.tensorboard} ({getattr(e, 'strerror', None) or e.message}); free "
                                   f"some space or pass another --tensorboard") from None


def _unsettled(prepared: _Prepared, totals: _Totals) -> np.ndarray:
    """The inputs (times ``2^k``) of the images still spiking at the last step."""
    settle = np.concatenate(totals.settle)
    return np.concatenate([spikes for _, spikes, _ in prepared.batches])[:len(settle)][settle < 0]


def _gather(strategy: tf.distribute.Strategy, tallies: dict[int, BatchTally], n_batches: int,
            cfg: SpikingConfig) -> dict[int, BatchTally]:
    """Every worker's tallies on every worker (one collective sum of a table with a row per batch)."""
    if distribute.worker_count(strategy) == 1:
        return tallies
    n_layers = len(cfg.network.hidden)
    table = np.zeros((n_batches, BatchTally.width(cfg.batch_size, cfg.time_steps, n_layers)))
    for b, tally in tallies.items():
        table[b] = tally.pack(cfg.batch_size)
    table = distribute.sum_over_workers(strategy, table)
    rows = {b: BatchTally.unpack(table[b], cfg.time_steps, n_layers) for b in range(n_batches)}
    return {b: tally for b, tally in rows.items() if tally is not None}


def _tally(result: SimulationResult, ann: list[np.ndarray], y: np.ndarray, float32: list[np.ndarray],
           scale: float) -> BatchTally:
    correct = result.predictions == y[None, :]
    lines = logs.batch_lines(correct, result.spikes.sum(1), result.net.sum(1), result.synops)
    if not np.isfinite(result.output).all() or not np.isfinite(ann[-1]).all():
        raise checkpoint.CheckpointError("the network's output is not finite (NaN or infinity): the weights "
                                         "cannot be a trained network; retrain or pass another --checkpoint")
    ann_pred = ann[-1].argmax(axis=1)
    settled = result.settle >= 0
    counts = [
        len(y),
        int((ann_pred == y).sum()),
        int((result.predictions[-1] == ann_pred).sum()),
        sum(int((c[settled] != a[settled]).sum()) for c, a in zip(result.counts, ann[:-1])),
        int(result.spikes.sum()), int(result.net.sum()), int(result.synops.sum()),
        # the float32 training-time forward rounds differently from the exact one at near-ties: counted, not hidden
        sum(int((a * scale != level).sum()) for a, level in zip(float32[:-1], ann[:-1])),
        int((float32[-1].argmax(axis=1) != ann_pred).sum()),
    ]
    spiking = result.spikes > 0  # (T, L, B)
    last_spike = np.where(spiking.any(0), len(spiking) - spiking[::-1].argmax(0), 0)  # (L, B), 1-based; 0: none
    layers = np.stack([result.spikes.sum((0, 2)), result.net.sum((0, 2)), result.layer_synops.sum((0, 2)),
                       last_spike[:, settled].sum(1)])
    return BatchTally(lines, np.array(counts, np.int64), result.settle.astype(np.int64), layers.astype(np.int64))


def _summary(cfg: SpikingConfig, totals: _Totals, simulator: str) -> dict:
    counts = dict(zip(BatchTally.COUNTS, totals.counts.tolist()))
    net, n = cfg.network, max(counts["samples"], 1)
    snn_accuracy = (totals.snn_correct / n).tolist()
    return cfg.get_config() | {
        "simulator": simulator, "num_samples": counts["samples"],  # what ran: the rule's simulator, the images done
        "ann_accuracy": counts["ann_correct"] / n, "snn_accuracy": snn_accuracy,
        "lossless_step": logs.lossless_step(totals.snn_correct.tolist(), counts["ann_correct"]),
        "agreement": counts["agree"] / n, "mismatched_neurons": counts["mismatched"],
        "float32_near_ties": {"neurons": counts["float32_neurons"], "predictions": counts["float32_predictions"]},
        "hidden_neurons_per_image": net.hidden_neurons(),
        "spikes_per_image": counts["spikes"] / n,
        "positive_spikes_per_image": (counts["spikes"] + counts["net"]) / 2 / n,
        "negative_spikes_per_image": (counts["spikes"] - counts["net"]) / 2 / n,
        "sops_per_image": counts["synops"] / n,
        "ann_macs_per_image": net.macs_per_image(),
        "settle_steps": logs.settle_summary(np.concatenate(totals.settle) if totals.settle else np.zeros(0, int)),
        "layers": _layer_figures(net, totals, cfg.time_steps),
        "energy_estimate": _energy_estimate(net, counts["synops"] / n),
    }


def _layer_figures(net: Network, totals: _Totals, time_steps: int) -> list[dict]:
    """Per hidden layer, per image: neurons, spikes, SOPs its spikes cause downstream, mean settle step."""
    if totals.layers is None:
        return []
    n = max(totals.count("samples"), 1)
    settled = sum(int((s >= 0).sum()) for s in totals.settle)
    figures = []
    for i, (h, w, c) in enumerate(net.shapes()[1:]):
        spikes, net_spikes, sops, settle_sum = (int(v) for v in totals.layers[:, i])
        figures.append({
            "layer": i + 1, "shape": [h, w, c], "neurons": h * w * c,
            "positive_spikes_per_image": (spikes + net_spikes) / 2 / n,
            "negative_spikes_per_image": (spikes - net_spikes) / 2 / n,
            "spikes_per_neuron_per_step": spikes / n / (h * w * c) / time_steps,
            "sops_per_image": sops / n,  # into the next hidden layer, or the output layer for the last
            "mean_settle_step": settle_sum / settled if settled else None,  # its last spike, over settled images
        })
    return figures


def _energy_estimate(net: Network, sops_per_image: float) -> dict:
    """An estimate, not a measurement: operations times the energy of one at 45 nm (Horowitz, ISSCC 2014).

    The SNN's first layer receives the image itself (real values, once), so it costs the ANN's
    multiply-accumulates, as the field counts it; every later synapse an accumulate per spike (SOPs).
    """
    shapes = net.shapes()
    (h, w, c), first = shapes[1], net.hidden[0]
    first_macs = h * w * c * first.kernel * first.kernel * shapes[0][2]
    ann_macs = net.macs_per_image()
    snn_pj = first_macs * PJ_PER_MAC + sops_per_image * PJ_PER_ACCUMULATE
    ann_pj = ann_macs * PJ_PER_MAC
    return {
        "note": "an estimate: operations times 45 nm energies (Horowitz, ISSCC 2014), not a measurement",
        "pj_per_accumulate": PJ_PER_ACCUMULATE, "pj_per_mac": PJ_PER_MAC,
        "ann_macs_per_image": ann_macs, "snn_first_layer_macs_per_image": first_macs,
        "snn_sops_per_image": sops_per_image,
        "ann_uj_per_image": ann_pj / 1e6, "snn_uj_per_image": snn_pj / 1e6,
        "snn_vs_ann": snn_pj / ann_pj,
    }


def _report(cfg: SpikingConfig, summary: dict, fast: FastSimulator, unsettled: np.ndarray) -> None:
    snn = summary["snn_accuracy"][-1]
    differs = summary["differs_from_defaults"]
    if len(unsettled) == summary["num_samples"]:  # the lossless step and the neuron check would be vacuous
        exact = f"no image settled in {cfg.time_steps} steps, so nothing is compared yet"
    else:
        of = f" (of the {summary['num_samples'] - len(unsettled)} settled images)" if len(unsettled) else ""
        exact = (f"lossless step {summary['lossless_step']}  mismatched neurons "
                 f"{summary['mismatched_neurons']}{of}")
    print(f"ANN accuracy {summary['ann_accuracy']:.4f}  SNN accuracy {snn:.4f}  "
          f"agreement {summary['agreement']:.4f}  {exact}  "
          f"({summary['run']['wall_seconds']:.1f}s, logs in {cfg.log_dir})"
          + (f"  [differs from the defaults: {'; '.join(differs)}]" if differs else ""), flush=True)
    if len(unsettled):
        with SignalGuard() as guard:
            enough, tried = _sufficient_steps(cfg, fast, unsettled, guard.stop)
        still = f"note: {len(unsettled)} images were still spiking after {cfg.time_steps} steps, so their counts " \
                f"are not final; "
        if enough is not None:
            print(still + f"simulated again, they settle within {enough} steps: pass --time_steps {enough}",
                  flush=True)
        else:
            why = f"at {guard.name}" if guard.stop() else f"after {ADVICE_SECONDS:g} s" if tried < MAX_TIME_STEPS else \
                f"at the limit of {MAX_TIME_STEPS:,} steps"
            print(still + f"they need more than {tried} --time_steps (the check of how many stopped {why})",
                  flush=True)
        if guard.stop():
            raise Interrupted(f"interrupted by {guard.name} while checking the unsettled images; the logs in "
                              f"{cfg.log_dir} are complete", guard.signum)


def _sufficient_steps(cfg: SpikingConfig, fast: FastSimulator, unsettled: np.ndarray,
                      stop: Callable[[], bool], seconds: float = ADVICE_SECONDS) -> tuple[int | None, int]:
    """Steps after which the ``unsettled`` inputs (times ``2^k``) are quiet, found by simulating them again
    with doubling lengths up to ``MAX_TIME_STEPS``; ``(None, T)`` when they still spiked after ``T`` steps
    as the time budget ran out, ``stop()`` said so, or ``MAX_TIME_STEPS`` was reached."""
    deadline = time.monotonic() + seconds
    give_up = lambda: stop() or time.monotonic() > deadline  # noqa: E731
    tried = cfg.time_steps  # the run itself found them spiking after this many steps
    while tried < MAX_TIME_STEPS:
        steps = min(2 * tried, MAX_TIME_STEPS)
        last = 0
        try:
            for b in range(0, len(unsettled), cfg.batch_size):
                settle = fast.simulate(unsettled[b:b + cfg.batch_size], steps, stop=give_up).settle
                if (settle < 0).any():
                    break
                last = max(last, int(settle.max()) + 1)  # a run of settle + 1 steps sees the quiet step
            else:
                # the run saw them spiking at its last step, so fewer than time_steps + 1 cannot be enough
                return max(last, cfg.time_steps + 1), tried
        except Stopped:
            return None, tried
        tried = steps
    return None, tried
