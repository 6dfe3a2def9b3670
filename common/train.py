"""The one training and evaluation loop of every ANN script."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from common import checkpoint, data, distribute, provenance
from common import history as training_history
from common.config import RECORDED, Config
from common.history import as_history, path_of as history_path  # noqa: F401 - as_history: also train.as_history
from common.progress import Progress
from common.signals import Interrupted, SignalGuard, Stopped
from common.model import build_ann
from common.networks import Network
import tensorlayer as tl


CHANCE_HINT_STEPS = 100


class TrainingError(Exception):
    """Training cannot go on (for example the loss became NaN)."""


@dataclasses.dataclass
class TrainConfig(Config):
    """One training (or evaluation) run of an ANN script.

    Args:
        network: the network to build (:mod:`common.networks`).
        k: the quantization level (activations in ``2^k`` steps); ``None`` for the FP32 baseline.
        checkpoint: the ``.npz`` training writes (and a resumed run or ``mode='inference'`` reads).
        roots: the data roots searched for the dataset's files.
        mode: ``training``, or ``inference`` (evaluate the checkpoint only).
        resume: go on from the checkpoint (else an existing one is moved aside).
        learning_rate, epochs, batch_size: Adam's rate; the epochs to train; the global batch.
        train_samples: train on the first N training images (``None``: all).
        seed: makes weights, shuffling and augmentation repeatable (``None``: not).
        precision: ``float32``, or ``bfloat16`` for convolutions and matrix products (:mod:`common.precision`).
        jit_compile: XLA for the training step (its numerics need not match anything bit for bit).
        tensorboard: also write per-epoch scalars into this folder.
        save_minutes: also save mid-epoch this long after the last save (0: after each epoch only).
        strategy: the ``tf.distribute`` strategy; ``None``: the default (one device).

    The fields marked recorded are the ``settings`` of the run in the training history (:meth:`get_config`).
    """

    network: Network = dataclasses.field(metadata=RECORDED)
    k: int | None = dataclasses.field(metadata=RECORDED)
    checkpoint: Path
    roots: list[Path]
    mode: str = "training"
    resume: bool = False
    learning_rate: float = dataclasses.field(default=1e-4, metadata=RECORDED)
    epochs: int = dataclasses.field(default=1, metadata=RECORDED)
    batch_size: int = dataclasses.field(default=200, metadata=RECORDED)
    train_samples: int | None = dataclasses.field(default=None, metadata=RECORDED)
    seed: int | None = dataclasses.field(default=None, metadata=RECORDED)
    precision: str = dataclasses.field(default="float32", metadata=RECORDED)
    jit_compile: bool = dataclasses.field(default=False, metadata=RECORDED)
    tensorboard: Path | None = None
    save_minutes: float = 10.0
    strategy: tf.distribute.Strategy | None = dataclasses.field(default=None, metadata=RECORDED)

    def get_config(self) -> dict:
        """The run's settings as the history records them: the network by name, the strategy by name and
        its replicas."""
        return super().get_config() | {"network": self.network.name, "strategy": _strategy_name(self.strategy),
                                       "replicas": self.strategy.num_replicas_in_sync if self.strategy else 1}


def set_seed(seed: int | None) -> None:
    """Make weights, shuffling and augmentation repeatable; TF's op determinism too."""
    if seed is None:
        return
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))


def correct(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.int64))


def make_train_step(model: tl.models.Model, opt: tf.keras.optimizers.Optimizer, strategy: tf.distribute.Strategy,
                    jit_compile: bool = False) -> Callable:
    """One optimizer step on a global batch split over ``strategy``'s replicas; returns its mean loss and
    correct predictions. Gradients are summed over replicas, BatchNorm statistics synchronized."""
    def replica_step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, is_train=True)[-1]
            # divided by the global batch, so that the sum over replicas is the batch mean
            loss = tf.nn.compute_average_loss(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        grads = tape.gradient(loss, model.trainable_weights)
        opt.apply_gradients(zip(grads, model.trainable_weights))
        return loss, correct(y, logits)

    @tf.function(reduce_retracing=True, jit_compile=jit_compile)
    def train_step(x, y):
        loss, hits = strategy.run(replica_step, args=(x, y))
        total = tf.distribute.ReduceOp.SUM
        return strategy.reduce(total, loss, axis=None), strategy.reduce(total, hits, axis=None)
    return train_step


def make_eval_step(model: tl.models.Model) -> Callable:
    @tf.function(reduce_retracing=True)
    def eval_step(x, y):
        logits = model(x, is_train=False)[-1]
        return cross_entropy(y, logits) * tf.cast(tf.shape(y)[0], tf.float32), correct(y, logits)
    return eval_step


def evaluate(model: tl.models.Model, inputs: np.ndarray, labels: np.ndarray, batch_size: int,
             eval_step: Callable | None = None, stop: Callable[[], bool] = lambda: False) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` in inference mode; ``stop()`` is asked between batches."""
    eval_step = eval_step or make_eval_step(model)
    total_loss, total_correct = 0.0, 0
    for x, y in data.eval_batches(inputs, labels, batch_size):
        if stop():
            raise Stopped
        loss, hits = eval_step(x, y)
        total_loss += float(loss)
        total_correct += int(hits)
    return total_loss / len(labels), total_correct / len(labels)


def optimizer_state(opt: tf.keras.optimizers.Optimizer) -> list[np.ndarray]:
    """Adam's iteration count and moments; not its learning rate, which a resumed run may change."""
    return [v.numpy() for v in opt.variables if not v.path.endswith("learning_rate")]


def restore_optimizer(opt: tf.keras.optimizers.Optimizer, model: tl.models.Model, state: list[np.ndarray],
                      path: Path) -> None:
    opt.build(model.trainable_weights)
    variables = [v for v in opt.variables if not v.path.endswith("learning_rate")]
    if not state:
        return
    if len(state) != len(variables) or any(v.shape != s.shape for v, s in zip(variables, state)):
        raise checkpoint.CheckpointError(f"checkpoint {path}: optimizer state does not fit this network")
    for v, s in zip(variables, state):
        try:
            v.assign(s)
        except (TypeError, ValueError, tf.errors.OpError):
            raise checkpoint.CheckpointError(f"checkpoint {path}: optimizer state of type {s.dtype} does not fit "
                                             f"this network's {v.dtype.name}; the file is damaged") from None


def run(cfg: TrainConfig) -> float:
    """Train (``mode='training'``) or just evaluate (``'inference'``); returns the test accuracy."""
    started = time.time()
    set_seed(cfg.seed)
    dataset = cfg.network.dataset
    splits = ("test",) if cfg.mode == "inference" else ("train", "test")
    data.locate(dataset, data.files_of(dataset, splits), cfg.roots)  # one message naming every missing file
    if cfg.mode == "training":
        if cfg.tensorboard is not None:
            from common import logs

            try:
                logs.check_folder(cfg.tensorboard, "--tensorboard")
            except logs.LogDirError as e:
                raise TrainingError(str(e)) from None
        strategy = cfg.strategy or tf.distribute.get_strategy()
        # only the chief writes; the other workers of a cluster read the checkpoint when resuming
        lock = checkpoint.writer_lock(cfg.checkpoint) if distribute.is_chief(strategy) else contextlib.nullcontext()
        with lock:
            return _Training(cfg, strategy, started).run()
    model = build_ann(cfg.network, cfg.k)
    test = _test_set(cfg)
    eval_step = make_eval_step(model)
    checkpoint.assign(model, checkpoint.load(cfg.checkpoint, cfg.network, cfg.k))
    test_acc = exact_test_accuracy(cfg, model, data.eval_inputs(dataset, test), test.y, eval_step)
    print(f"test accuracy: {test_acc:.4f}", flush=True)
    return test_acc


def _test_set(cfg: TrainConfig) -> data.Split:
    test = data.load_split(cfg.network.dataset, "test", cfg.roots)
    if len(test) == 0:
        raise data.DataError(f"{cfg.network.dataset}: the test set is empty; check the data files")
    return test


def exact_test_accuracy(cfg: TrainConfig, model: tl.models.Model, inputs: np.ndarray, labels: np.ndarray,
                        eval_step: Callable, stop: Callable[[], bool] = lambda: False) -> float:
    """Test accuracy of the quantized ANN computed exactly (:class:`common.exact_ann.ExactANN`): the same
    number on any CPU and the one the spiking runs compare against. The float32 forward can differ at
    rounding near-ties; how often is printed. The FP32 baseline is evaluated in float32."""
    if cfg.k is None:
        return evaluate(model, inputs, labels, cfg.batch_size, eval_step, stop)[1]
    from common import convert
    from common.exact_ann import ExactANN

    exact_ann = ExactANN(convert.convert(cfg.network, cfg.k, checkpoint.model_weights(model)))
    scale = float(2 ** cfg.k)
    correct = differ = 0
    for start in range(0, len(labels), cfg.batch_size):
        if stop():
            raise Stopped
        x, y = inputs[start:start + cfg.batch_size], labels[start:start + cfg.batch_size]
        predictions = exact_ann(x * scale)[-1].argmax(axis=1)
        float32_predictions = model(x, is_train=False)[-1].numpy().argmax(axis=1)
        correct += int((predictions == y).sum())
        differ += int((predictions != float32_predictions).sum())
    if differ:
        print(f"note: the float32 forward predicts {differ} test images differently (rounding near-ties); "
              f"the exact ANN's accuracy is reported", flush=True)
    return correct / len(labels)


@dataclasses.dataclass
class ResumeState:
    """Where a training run starts and how far it goes, read from the checkpoint it resumes.

    A fresh run starts at epoch 0, batch 0 and trains ``--epochs``. A resumed run starts where its
    checkpoint stopped: a run that stopped early goes on to its own target epoch, a finished one
    trains ``--epochs`` more. Either way the run continues the checkpoint's history.
    """

    epoch: int  # epochs finished
    batch: int  # batches finished of the next epoch (an interrupted epoch)
    target: int  # the epoch to train to
    history: dict  # the training history to continue (common.history)

    @classmethod
    def read(cls, cfg: TrainConfig, ckpt: checkpoint.Checkpoint | None, batches_per_epoch: int) -> ResumeState:
        """The state of a run of ``cfg`` resuming ``ckpt`` (``None``: a fresh run). Refuses a target beyond
        what a checkpoint holds and a batch beyond this run's epoch (another --batch_size or --train_samples)."""
        if ckpt is None:
            if cfg.epochs > checkpoint.MAX_EPOCH:
                raise TrainingError(f"--epochs {cfg.epochs} is more than the {checkpoint.MAX_EPOCH:,} epochs a "
                                    f"checkpoint holds; pass a smaller --epochs")
            return cls(0, 0, cfg.epochs, training_history.empty())
        finished = ckpt.batch == 0 and ckpt.epoch >= ckpt.target_epoch
        target = ckpt.epoch + cfg.epochs if finished else ckpt.target_epoch
        try:
            history = training_history.continued(cfg.checkpoint, ckpt.history)
        except training_history.HistoryError as e:
            raise checkpoint.CheckpointError(str(e)) from None
        if ckpt.batch > batches_per_epoch:
            raise checkpoint.CheckpointError(
                f"checkpoint {cfg.checkpoint} stopped after batch {ckpt.batch} of an epoch, but an epoch here has "
                f"{batches_per_epoch} batches; resume with the run's own --batch_size and --train_samples")
        if target > checkpoint.MAX_EPOCH:
            raise TrainingError(f"training to epoch {target} goes beyond the {checkpoint.MAX_EPOCH:,} epochs a "
                                f"checkpoint holds; pass a smaller --epochs")
        return cls(ckpt.epoch, ckpt.batch, target, history)


@dataclasses.dataclass
class EpochTotals:
    """The running loss and accuracy of the batches one run trained of an epoch."""

    images: int = 0
    loss_sum: float = 0.0
    hits: int = 0

    def add(self, images: int, loss: float, hits: int) -> None:
        self.images += images
        self.loss_sum += loss * images
        self.hits += hits

    @property
    def loss(self) -> float | None:  # None: no batch trained (resumed after the epoch's last batch)
        return self.loss_sum / self.images if self.images else None

    @property
    def accuracy(self) -> float | None:
        return self.hits / self.images if self.images else None


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The splits a training run reads, and how its epochs batch them over the replicas."""

    train: data.Split  # the first --train_samples training images
    held_out_name: str  # ``validation``, or ``test`` for a dataset that holds none out
    held_out: data.Split
    held_out_inputs: np.ndarray
    test: data.Split
    test_inputs: np.ndarray
    per_replica: int  # images per replica of a global batch
    batches_per_epoch: int
    batch_images: int  # images of a full batch (fewer than --batch_size when the set is smaller)


@dataclasses.dataclass(frozen=True)
class TrainingState:
    """What :meth:`_Training.prepare` builds, once, before the first epoch: the model, its optimizer and steps,
    the data, where the run starts (:class:`ResumeState`, whose history the epochs extend) and this run's index
    in that history."""

    model: tl.models.Model
    opt: tf.keras.optimizers.Optimizer
    train_step: Callable
    eval_step: Callable
    data: TrainingData
    start: ResumeState
    run_index: int


class Callback:
    """Work at the end of every epoch, as Keras' callbacks: ``on_epoch_end(epoch, record)`` gets the epoch's
    number (from 0) and its history record (:func:`common.history.epoch_record`)."""

    def on_epoch_end(self, epoch: int, record: dict) -> None:
        pass


class HistoryRecorder(Callback):
    """Appends each epoch's record to the training history the checkpoint carries."""

    def __init__(self, history: dict):
        self.history = history

    def on_epoch_end(self, epoch: int, record: dict) -> None:
        self.history["epochs"].append(record)


class TensorBoardScalars(Callback):
    """With ``--tensorboard``, the epoch's losses and accuracies as TensorBoard scalars (on the chief); dropped
    with a note if they cannot be written: the checkpoint matters more."""

    def __init__(self, folder: Path | None, held_out: str):
        self.folder, self.held_out = folder, held_out
        self.writer = tf.summary.create_file_writer(str(folder)) if folder else None

    def on_epoch_end(self, epoch: int, record: dict) -> None:
        if self.writer is None:
            return
        try:
            with self.writer.as_default():
                for name in ("train_loss", "train_acc", f"{self.held_out}_loss", f"{self.held_out}_acc"):
                    tf.summary.scalar(name.replace("_", "/", 1), record[name], step=record["epoch"])
            self.writer.flush()
        except (OSError, tf.errors.OpError) as e:
            print(f"note: cannot write the TensorBoard summaries into {self.folder} "
                  f"({getattr(e, 'strerror', None) or e.message}); training goes on without them", flush=True)
            self.writer = None


class EpochLine(Callback):
    """The epoch's figures in one line on standard output."""

    def __init__(self, held_out: str):
        self.held_out = held_out

    def on_epoch_end(self, epoch: int, record: dict) -> None:
        held_out = self.held_out
        print(f"   train loss: {record['train_loss'] or float('nan'):.4f}  "
              f"train acc: {record['train_acc'] or float('nan'):.4f}  "
              f"{held_out} loss: {record[f'{held_out}_loss']:.4f}  {held_out} acc: {record[f'{held_out}_acc']:.4f}  "
              f"time: {record['seconds']:.1f}s", flush=True)


class CheckpointSaver(Callback):
    """Saves the checkpoint after every epoch, and mid-epoch when :meth:`due` (``--save_minutes``) or a signal
    asks: the weights, Adam's state, where the run stands and the history, with this run's record updated
    (its wall time), then the history's readable copy beside it. Only the chief writes."""

    def __init__(self, cfg: TrainConfig, state: TrainingState, chief: bool, started: float, last_save: float):
        self.cfg, self.state, self.chief, self.started = cfg, state, chief, started
        self.last_save = last_save  # time.monotonic() of the last save, or of the run's start

    def on_epoch_end(self, epoch: int, record: dict) -> None:
        self.save(epoch + 1, 0)

    def due(self) -> bool:
        minutes = self.cfg.save_minutes
        return minutes > 0 and time.monotonic() - self.last_save >= 60 * minutes

    def save(self, epoch: int, batch: int) -> None:
        self.last_save = time.monotonic()
        if not self.chief:
            return
        cfg, state, history = self.cfg, self.state, self.state.start.history
        training_history.set_wall_seconds(history, state.run_index, time.time() - self.started)
        checkpoint.save(cfg.checkpoint, cfg.network, cfg.k, checkpoint.model_weights(state.model), epoch, batch,
                        optimizer_state(state.opt), target_epoch=state.start.target, history=history)
        try:
            training_history.write_beside(cfg.checkpoint, history)  # the checkpoint holds the original
        except OSError as e:
            raise checkpoint.CheckpointError(f"cannot write {history_path(cfg.checkpoint)} ({e.strerror}); the "
                                             f"checkpoint, which holds the history too, was saved") from None


class _Training:
    """One training run of :func:`run`, in the shape of Keras' ``fit``.

    :meth:`prepare` builds the :class:`TrainingState` (model, data, where the run starts); then, for every
    epoch to the target, :meth:`train_one_epoch` and :meth:`evaluate_epoch`, and the epoch's record goes to
    the callbacks (history, TensorBoard, the epoch's line, the checkpoint); :meth:`finish` reports the final
    test accuracy. A signal (SIGINT, SIGTERM, SIGHUP) sets :attr:`stop_training`: the checkpoint is saved
    where the run is and :class:`Interrupted` raised. In a cluster only the chief writes, and a signal on any
    worker stops all of them after the same batch.
    """

    def __init__(self, cfg: TrainConfig, strategy: tf.distribute.Strategy, started: float):
        self.cfg, self.strategy, self.started = cfg, strategy, started
        self.chief, self.workers = distribute.is_chief(strategy), distribute.worker_count(strategy)
        self.stop_training: int | None = None  # the signal every worker stops on, once one came
        self.clock_started = time.monotonic()  # --save_minutes counts from here until the first save

    def run(self) -> float:
        """Train to the target epoch, saving after every epoch; the final test accuracy (NaN on workers
        that are not the chief)."""
        state = self.prepare()
        saver = CheckpointSaver(self.cfg, state, self.chief, self.started, self.clock_started)
        callbacks = [HistoryRecorder(state.start.history),
                     TensorBoardScalars(self.cfg.tensorboard if self.chief else None, state.data.held_out_name),
                     EpochLine(state.data.held_out_name), saver]
        final_test = float("nan")
        with SignalGuard() as guard:
            for epoch in range(state.start.epoch, state.start.target):
                started = time.time()
                skip = state.start.batch if epoch == state.start.epoch else 0
                totals = self.train_one_epoch(state, saver, epoch, skip, guard)
                loss, accuracy, test_acc = self.evaluate_epoch(state, saver, epoch, guard)
                record = training_history.epoch_record(
                    epoch=epoch + 1, run=state.run_index, learning_rate=self.cfg.learning_rate,
                    train_images=len(state.data.train), train_loss=totals.loss, train_acc=totals.accuracy,
                    held_out=state.data.held_out_name, held_out_loss=loss, held_out_acc=accuracy,
                    seconds=time.time() - started, test_acc=test_acc)  # the last record keeps the test accuracy
                final_test = final_test if test_acc is None else test_acc
                for callback in callbacks:
                    callback.on_epoch_end(epoch, record)
        return self.finish(state, final_test)

    # ------------------------------------------------------------------------ before the first epoch

    def prepare(self) -> TrainingState:
        """Everything before the first epoch, in this order: the model and the test set, the checkpoint a
        resumed run continues, the training data, the :class:`ResumeState`, and this run's record."""
        cfg = self.cfg
        with self.strategy.scope():
            model = build_ann(cfg.network, cfg.k, cfg.precision)
            opt = tf.keras.optimizers.Adam(cfg.learning_rate)
        test = _test_set(cfg)
        test_inputs = data.eval_inputs(cfg.network.dataset, test)
        eval_step = make_eval_step(model)
        ckpt = checkpoint.load(cfg.checkpoint, cfg.network, cfg.k) if cfg.resume else None
        if ckpt is not None:
            checkpoint.assign(model, ckpt)
        splits = self.training_data(test, test_inputs)
        start = self.resume(ckpt, model, opt, splits.batches_per_epoch)
        files = sorted({*splits.train.files, *splits.held_out.files, *splits.test.files})
        record = provenance.run_record(cfg.checkpoint if ckpt is not None else None, files, self.started, cfg.roots)
        run_index = training_history.start_run(start.history, record | {"settings": cfg.get_config()})
        train_step = make_train_step(model, opt, self.strategy, cfg.jit_compile)
        return TrainingState(model, opt, train_step, eval_step, splits, start, run_index)

    def resume(self, ckpt: checkpoint.Checkpoint | None, model: tl.models.Model,
               opt: tf.keras.optimizers.Optimizer, batches_per_epoch: int) -> ResumeState:
        """Where the run starts (:class:`ResumeState`): a resumed run restores Adam's state and says where it
        goes on; a fresh run moves an existing checkpoint aside (``k1.npz.bak``, ...)."""
        cfg = self.cfg
        if ckpt is not None:
            with self.strategy.scope():
                restore_optimizer(opt, model, ckpt.optimizer, cfg.checkpoint)
        start = ResumeState.read(cfg, ckpt, batches_per_epoch)
        if ckpt is not None:
            print(f"resuming {cfg.checkpoint} at epoch {start.epoch + 1}"
                  + (f", batch {start.batch + 1}" if start.batch else "")
                  + f"; training to epoch {start.target}", flush=True)
        elif cfg.checkpoint.exists() and self.chief:
            backup = checkpoint.back_up(cfg.checkpoint)
            print(f"--resume False: moved the existing {cfg.checkpoint} to {backup}", flush=True)
        return start

    def training_data(self, test: data.Split, test_inputs: np.ndarray) -> TrainingData:
        """The training images (the first ``--train_samples``) and the held-out split, checked against
        the batch size and the replicas."""
        cfg, strategy, dataset = self.cfg, self.strategy, self.cfg.network.dataset
        train = data.load_split(dataset, "train", cfg.roots).head(cfg.train_samples)
        if len(train) == 0:
            raise data.DataError(f"{dataset}: the training set is empty (the last {data.VALIDATION_SIZE:,} "
                                 f"training images are held out for validation); check the data files")
        per_replica = distribute.replica_batch(strategy, cfg.batch_size)
        if strategy.num_replicas_in_sync > 1 and len(train) < cfg.batch_size:
            raise distribute.DistributeError(f"{len(train)} training images do not fill one --batch_size "
                                             f"{cfg.batch_size} batch to split over replicas; lower --batch_size")
        held_out_name = data.dataset_of(dataset).held_out
        held_out = data.load_split(dataset, held_out_name, cfg.roots)
        return TrainingData(train, held_out_name, held_out, data.eval_inputs(dataset, held_out), test, test_inputs,
                            per_replica, max(1, len(train) // cfg.batch_size), min(cfg.batch_size, len(train)))

    # ------------------------------------------------------------------------ one epoch

    def train_one_epoch(self, state: TrainingState, saver: CheckpointSaver, epoch: int, skip: int,
                        guard: SignalGuard) -> EpochTotals:
        """Train epoch ``epoch`` (from 0) from batch ``skip`` on. A loss that is not finite stops the run
        with the last good checkpoint kept; a signal saves the checkpoint after the batch in progress."""
        print(f"Epoch {epoch + 1}/{state.start.target}", flush=True)
        batches, images = state.data.batches_per_epoch, state.data.batch_images
        progress = Progress(batches, f"epoch {epoch + 1}")
        totals = EpochTotals()
        for b, (x, y) in enumerate(self.epoch_batches(state.data, epoch, skip), start=skip):
            loss, hits = state.train_step(x, y)
            loss = float(loss)
            if not np.isfinite(loss):
                raise TrainingError(f"the training loss became {loss} at epoch {epoch + 1}, batch {b + 1}; "
                                    f"the last good checkpoint {self.cfg.checkpoint} is kept; "
                                    f"try a lower --learning_rate")
            totals.add(images, loss, int(hits))
            progress.update(b + 1, images, [("loss", totals.loss), ("acc", totals.accuracy)])
            self.stop_training = self.signalled(guard.signum)
            if self.stop_training is not None:
                saver.save(epoch, b + 1)
                raise Interrupted(_interrupted(self.stop_training, guard.signum, self.chief, self.cfg.checkpoint,
                                               f"at epoch {epoch + 1}, batch {b + 1}"), self.stop_training)
            if saver.due() and b + 1 < batches:
                saver.save(epoch, b + 1)  # a hard stop (SIGKILL, power) loses at most --save_minutes of a long epoch
        return totals

    def epoch_batches(self, splits: TrainingData, epoch: int, skip: int) -> tf.data.Dataset:
        """Epoch ``epoch``'s global batches from batch ``skip`` on, split over the replicas."""
        cfg = self.cfg

        def pipeline(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            # this worker's slice of every global batch, then one batch per local replica in replica order
            ds = data.train_batches(cfg.network.dataset, splits.train, cfg.batch_size, cfg.seed or 0, epoch, skip,
                                    shard=(ctx.input_pipeline_id, ctx.num_input_pipelines))
            split = splits.per_replica * ctx.num_input_pipelines < cfg.batch_size
            return ds.rebatch(splits.per_replica) if split else ds
        return self.strategy.distribute_datasets_from_function(pipeline)

    def evaluate_epoch(self, state: TrainingState, saver: CheckpointSaver, epoch: int,
                       guard: SignalGuard) -> tuple[float, float, float | None]:
        """Loss and accuracy on the held-out split, and after the last epoch the final test accuracy (on
        the chief; else ``None``). A signal saves the checkpoint with every batch done: resuming goes
        straight to this evaluation."""
        # the other workers must not stop alone in the middle of an evaluation: they agree after it
        stop = guard.stop if self.workers == 1 else lambda: False
        splits = state.data
        try:
            loss, accuracy = evaluate(state.model, splits.held_out_inputs, splits.held_out.y, self.cfg.batch_size,
                                      state.eval_step, stop)
            last = epoch + 1 == state.start.target
            final_test = self.test_accuracy(state, stop) if last and self.chief else None
        except Stopped:
            self.stop_training = guard.signum
        else:
            self.stop_training = self.signalled(guard.signum) if self.workers > 1 else None
        if self.stop_training is not None:
            saver.save(epoch, splits.batches_per_epoch)
            raise Interrupted(_interrupted(self.stop_training, guard.signum, self.chief, self.cfg.checkpoint,
                                           f"after the last batch of epoch {epoch + 1}", " while evaluating"),
                              self.stop_training)
        return loss, accuracy, final_test

    def test_accuracy(self, state: TrainingState, stop: Callable[[], bool]) -> float:
        return exact_test_accuracy(self.cfg, state.model, state.data.test_inputs, state.data.test.y,
                                   state.eval_step, stop)

    def signalled(self, signum: int | None) -> int | None:
        """The signal every worker acts on: a signal on any worker stops all of them after the same batch."""
        if self.workers == 1:
            return signum
        votes = distribute.sum_over_workers(self.strategy, np.array([1.0 if signum else 0.0]))[0]
        return (signum or signal.SIGTERM) if votes else None

    # ------------------------------------------------------------------------ after the last epoch

    def finish(self, state: TrainingState, final_test: float) -> float:
        """Print and return the final test accuracy, with a note when it is near chance after few steps."""
        if not self.chief:
            print("training done; the chief wrote the checkpoint", flush=True)
            return float("nan")
        test_acc = final_test if not np.isnan(final_test) else self.test_accuracy(state, lambda: False)
        steps = int(state.opt.iterations.numpy())
        if steps < CHANCE_HINT_STEPS and test_acc < 2.0 / self.cfg.network.classes:
            print(f"note: accuracy is near chance after only {steps} training steps: BatchNorm's running "
                  f"statistics (momentum 0.9) and the weights need a few hundred steps; train for more epochs or "
                  f"images", flush=True)
        print(f"test accuracy: {test_acc:.4f}", flush=True)
        return test_acc


def _strategy_name(strategy: tf.distribute.Strategy | None) -> str:
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    return "mirrored" if isinstance(strategy, tf.distribute.MirroredStrategy) else "default"


def _interrupted(signum: int, own: int | None, chief: bool, path: Path, where: str, during: str = "") -> str:
    """What an interrupted worker says: which signal, and where the checkpoint to resume from is."""
    cause = signal.Signals(signum).name if own else f"{signal.Signals(signum).name} on another worker"
    if chief:
        return f"interrupted by {cause}{during}: saved {path} {where}; continue with --resume True"
    return f"interrupted by {cause}{during}: the chief saved its checkpoint {where}; continue with --resume True"
