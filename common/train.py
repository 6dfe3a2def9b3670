"""The one training and evaluation loop of every ANN script."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from common import checkpoint, data, distribute, provenance
from common.fsutil import write_json
from common.progress import Progress
from common.signals import Interrupted, SignalGuard
from common.model import build_ann
from common.networks import Network
import tensorlayer as tl


CHANCE_HINT_STEPS = 100


class TrainingError(Exception):
    """Training cannot go on (for example the loss became NaN)."""


@dataclasses.dataclass
class TrainConfig:
    network: Network
    k: int | None  # None: the FP32 baseline
    checkpoint: Path
    roots: list[Path]
    mode: str = "training"
    resume: bool = False
    learning_rate: float = 1e-4
    epochs: int = 1
    batch_size: int = 200
    train_samples: int | None = None
    seed: int | None = None
    precision: str = "float32"  # or "bfloat16": convolutions and matrix products (common.precision)
    jit_compile: bool = False  # XLA for the training step (its numerics need not match anything bit for bit)
    tensorboard: Path | None = None  # also write per-epoch scalars here
    strategy: tf.distribute.Strategy | None = None  # None: the default (one device)


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


class _Stop(Exception):  # noqa: N818 - control flow: a signal arrived during an evaluation
    pass


def evaluate(model: tl.models.Model, inputs: np.ndarray, labels: np.ndarray, batch_size: int,
             eval_step: Callable | None = None, stop: Callable[[], bool] = lambda: False) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` in inference mode; ``stop()`` is asked between batches."""
    eval_step = eval_step or make_eval_step(model)
    total_loss, total_correct = 0.0, 0
    for x, y in data.eval_batches(inputs, labels, batch_size):
        if stop():
            raise _Stop
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


def history_path(ckpt: Path) -> Path:
    return ckpt.with_name(ckpt.stem + ".history.json")


def as_history(obj: object) -> dict:
    """A training history ``{"runs": [...], "epochs": [...]}``; a bare list (format 1) is its epochs."""
    try:
        return checkpoint.history_from(obj, "it")
    except checkpoint.CheckpointError as e:
        raise ValueError(str(e).removeprefix("it: ")) from None


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
            return _run_training(cfg, strategy, started)
    model = build_ann(cfg.network, cfg.k)
    test = data.load_split(dataset, "test", cfg.roots)
    if len(test) == 0:
        raise data.DataError(f"{dataset}: the test set is empty; check the data files")
    eval_step = make_eval_step(model)
    checkpoint.assign(model, checkpoint.load(cfg.checkpoint, cfg.network, cfg.k))
    test_acc = exact_test_accuracy(cfg, model, data.eval_inputs(dataset, test), test.y, eval_step)
    print(f"test accuracy: {test_acc:.4f}", flush=True)
    return test_acc


def _run_training(cfg: TrainConfig, strategy: tf.distribute.Strategy, started: float) -> float:
    dataset = cfg.network.dataset
    with strategy.scope():  # variables mirrored on every replica
        model = build_ann(cfg.network, cfg.k, cfg.precision)
        opt = tf.keras.optimizers.Adam(cfg.learning_rate)
    test = data.load_split(dataset, "test", cfg.roots)
    if len(test) == 0:
        raise data.DataError(f"{dataset}: the test set is empty; check the data files")
    test_inputs = data.eval_inputs(dataset, test)
    eval_step = make_eval_step(model)

    ckpt = None
    if cfg.resume:
        ckpt = checkpoint.load(cfg.checkpoint, cfg.network, cfg.k)
        checkpoint.assign(model, ckpt)

    def test_accuracy(stop: Callable[[], bool]) -> float:
        return exact_test_accuracy(cfg, model, test_inputs, test.y, eval_step, stop)

    return _train(cfg, strategy, model, opt, eval_step, ckpt, test_accuracy, test.files, started)


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
            raise _Stop
        x, y = inputs[start:start + cfg.batch_size], labels[start:start + cfg.batch_size]
        predictions = exact_ann(x * scale)[-1].argmax(axis=1)
        float32_predictions = model(x, is_train=False)[-1].numpy().argmax(axis=1)
        correct += int((predictions == y).sum())
        differ += int((predictions != float32_predictions).sum())
    if differ:
        print(f"note: the float32 forward predicts {differ} test images differently (rounding near-ties); "
              f"the exact ANN's accuracy is reported", flush=True)
    return correct / len(labels)


def _train(cfg: TrainConfig, strategy: tf.distribute.Strategy, model, opt, eval_step,
           ckpt: checkpoint.Checkpoint | None, test_accuracy: Callable[[Callable[[], bool]], float],
           test_files: tuple[Path, ...], started: float) -> float:
    """Train to the target epoch, saving the checkpoint (with its history) after every epoch;
    returns the final test accuracy (NaN on the workers that are not the chief)."""
    dataset = cfg.network.dataset
    train = data.load_split(dataset, "train", cfg.roots).head(cfg.train_samples)
    if len(train) == 0:
        raise data.DataError(f"{dataset}: the training set is empty (the last {data.VALIDATION_SIZE:,} training "
                             f"images are held out for validation); check the data files")
    chief, workers = distribute.is_chief(strategy), distribute.worker_count(strategy)
    per_replica = distribute.replica_batch(strategy, cfg.batch_size)
    if strategy.num_replicas_in_sync > 1 and len(train) < cfg.batch_size:
        raise distribute.DistributeError(f"{len(train)} training images do not fill one --batch_size "
                                         f"{cfg.batch_size} batch to split over replicas; lower --batch_size")
    held_out_name = data.dataset_of(dataset).held_out
    held_out = data.load_split(dataset, held_out_name, cfg.roots)
    held_inputs = data.eval_inputs(dataset, held_out)
    history: dict = {"runs": [], "epochs": []}
    start_epoch, skip, target = 0, 0, cfg.epochs
    if ckpt is not None:
        with strategy.scope():
            restore_optimizer(opt, model, ckpt.optimizer, cfg.checkpoint)
        start_epoch, skip = ckpt.epoch, ckpt.batch
        # A run that stopped early goes on to its own target; a finished one trains --epochs more.
        finished = skip == 0 and start_epoch >= ckpt.target_epoch
        target = start_epoch + cfg.epochs if finished else ckpt.target_epoch
        history = _previous_history(cfg.checkpoint, ckpt)
        if skip > max(1, len(train) // cfg.batch_size):
            raise checkpoint.CheckpointError(
                f"checkpoint {cfg.checkpoint} stopped after batch {skip} of an epoch, but an epoch here has "
                f"{max(1, len(train) // cfg.batch_size)} batches; resume with the run's own --batch_size and "
                f"--train_samples")
        if target > checkpoint.MAX_EPOCH:
            raise TrainingError(f"training to epoch {target} goes beyond the {checkpoint.MAX_EPOCH:,} epochs a "
                                f"checkpoint holds; pass a smaller --epochs")
        print(f"resuming {cfg.checkpoint} at epoch {start_epoch + 1}"
              + (f", batch {skip + 1}" if skip else "") + f"; training to epoch {target}", flush=True)
    elif target > checkpoint.MAX_EPOCH:
        raise TrainingError(f"--epochs {target} is more than the {checkpoint.MAX_EPOCH:,} epochs a checkpoint holds; "
                            f"pass a smaller --epochs")
    elif cfg.checkpoint.exists() and chief:
        backup = checkpoint.back_up(cfg.checkpoint)
        print(f"--resume False: moved the existing {cfg.checkpoint} to {backup}", flush=True)
    files = sorted({*train.files, *held_out.files, *test_files})
    run_index = len(history["runs"])
    history["runs"].append(provenance.run_record(
        ckpt and cfg.checkpoint, files, started, cfg.roots) | {"settings": _settings(cfg)})

    train_step = make_train_step(model, opt, strategy, cfg.jit_compile)

    def epoch_batches(epoch: int, skip: int) -> tf.data.Dataset:
        def pipeline(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            # this worker's slice of every global batch, then one batch per local replica in replica order
            ds = data.train_batches(dataset, train, cfg.batch_size, cfg.seed or 0, epoch, skip,
                                    shard=(ctx.input_pipeline_id, ctx.num_input_pipelines))
            return ds.rebatch(per_replica) if per_replica * ctx.num_input_pipelines < cfg.batch_size else ds
        return strategy.distribute_datasets_from_function(pipeline)

    def signalled(signum: int | None) -> int | None:
        """The signal every worker acts on: a signal on any worker stops all of them after the same batch."""
        if workers == 1:
            return signum
        votes = distribute.sum_over_workers(strategy, np.array([1.0 if signum else 0.0]))[0]
        return (signum or signal.SIGTERM) if votes else None

    def save(epoch: int, batch: int) -> None:
        if not chief:
            return
        history["runs"][run_index]["wall_seconds"] = round(time.time() - started, 2)
        checkpoint.save(cfg.checkpoint, cfg.network, cfg.k, checkpoint.model_weights(model), epoch, batch,
                        optimizer_state(opt), target_epoch=target, history=history)
        try:
            write_json(history_path(cfg.checkpoint), history)  # a readable copy; the checkpoint holds the original
        except OSError as e:
            raise checkpoint.CheckpointError(f"cannot write {history_path(cfg.checkpoint)} ({e.strerror}); the "
                                             f"checkpoint, which holds the history too, was saved") from None

    n_batches = max(1, len(train) // cfg.batch_size)
    batch_images = min(cfg.batch_size, len(train))
    test_acc = float("nan")
    writer = tf.summary.create_file_writer(str(cfg.tensorboard)) if cfg.tensorboard and chief else None
    with SignalGuard() as guard:
        # the other workers must not stop alone in the middle of an evaluation: they agree after it
        eval_stop = guard.stop if workers == 1 else lambda: False
        for epoch in range(start_epoch, target):
            start = time.time()
            print(f"Epoch {epoch + 1}/{target}", flush=True)
            progress = Progress(n_batches, f"epoch {epoch + 1}")
            seen, loss_sum, hits = 0, 0.0, 0
            for b, (x, y) in enumerate(epoch_batches(epoch, skip), start=skip):
                loss, batch_hits = train_step(x, y)
                loss = float(loss)
                if not np.isfinite(loss):
                    raise TrainingError(f"the training loss became {loss} at epoch {epoch + 1}, batch {b + 1}; "
                                        f"the last good checkpoint {cfg.checkpoint} is kept; "
                                        f"try a lower --learning_rate")
                seen += batch_images
                loss_sum += loss * batch_images
                hits += int(batch_hits)
                progress.update(b + 1, batch_images, [("loss", loss_sum / seen), ("acc", hits / seen)])
                signum = signalled(guard.signum)
                if signum is not None:
                    save(epoch, b + 1)
                    raise Interrupted(_interrupted(signum, guard.signum, chief, cfg.checkpoint,
                                                   f"at epoch {epoch + 1}, batch {b + 1}"), signum)
            skip = 0

            try:
                val_loss, val_acc = evaluate(model, held_inputs, held_out.y, cfg.batch_size, eval_step, eval_stop)
                final_test = test_accuracy(eval_stop) if epoch + 1 == target and chief else None
            except _Stop:
                signum = guard.signum
            else:
                signum = signalled(guard.signum) if workers > 1 else None
            if signum is not None:  # all batches are done: resuming goes straight to the evaluation
                save(epoch, n_batches)
                raise Interrupted(_interrupted(signum, guard.signum, chief, cfg.checkpoint,
                                               f"after the last batch of epoch {epoch + 1}", " while evaluating"),
                                  signum)
            record = {"epoch": epoch + 1, "run": run_index, "learning_rate": cfg.learning_rate,
                      "train_images": len(train),
                      "train_loss": loss_sum / seen if seen else None,  # None: resumed after the last batch
                      "train_acc": hits / seen if seen else None,
                      f"{held_out_name}_loss": val_loss, f"{held_out_name}_acc": val_acc,
                      "seconds": round(time.time() - start, 2)}
            if final_test is not None:  # the last record keeps the final test accuracy
                test_acc = record["test_acc"] = final_test
            history["epochs"].append(record)
            if writer is not None:
                try:
                    with writer.as_default():
                        for name in ("train_loss", "train_acc", f"{held_out_name}_loss", f"{held_out_name}_acc"):
                            tf.summary.scalar(name.replace("_", "/", 1), record[name], step=epoch + 1)
                    writer.flush()
                except (OSError, tf.errors.OpError) as e:  # the checkpoint matters more: training goes on
                    print(f"note: cannot write the TensorBoard summaries into {cfg.tensorboard} "
                          f"({getattr(e, 'strerror', None) or e.message}); training goes on without them", flush=True)
                    writer = None
            print(f"   train loss: {record['train_loss'] or float('nan'):.4f}  "
                  f"train acc: {record['train_acc'] or float('nan'):.4f}  "
                  f"{held_out_name} loss: {val_loss:.4f}  {held_out_name} acc: {val_acc:.4f}  "
                  f"time: {record['seconds']:.1f}s", flush=True)
            save(epoch + 1, 0)
    if not chief:
        print("training done; the chief wrote the checkpoint", flush=True)
        return float("nan")
    if np.isnan(test_acc):
        test_acc = test_accuracy(lambda: False)
    steps = int(opt.iterations.numpy())
    if steps < CHANCE_HINT_STEPS and test_acc < 2.0 / cfg.network.classes:
        print(f"note: accuracy is near chance after only {steps} training steps: BatchNorm's running statistics "
              f"(momentum 0.9) and the weights need a few hundred steps; train for more epochs or images",
              flush=True)
    print(f"test accuracy: {test_acc:.4f}", flush=True)
    return test_acc


def _settings(cfg: TrainConfig) -> dict:
    return {"network": cfg.network.name, "k": cfg.k, "learning_rate": cfg.learning_rate, "epochs": cfg.epochs,
            "batch_size": cfg.batch_size, "train_samples": cfg.train_samples, "seed": cfg.seed,
            "precision": cfg.precision, "jit_compile": cfg.jit_compile,
            "strategy": _strategy_name(cfg.strategy),
            "replicas": cfg.strategy.num_replicas_in_sync if cfg.strategy else 1}


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


def _previous_history(path: Path, ckpt: checkpoint.Checkpoint) -> dict:
    """The history to continue: the checkpoint's own, else the file beside an older checkpoint."""
    if ckpt.history is not None:
        return as_history(ckpt.history)
    side = history_path(path)
    if not side.is_file():
        return {"runs": [], "epochs": []}
    try:
        return as_history(json.loads(side.read_text()))
    except (ValueError, OSError, RecursionError) as e:
        raise checkpoint.CheckpointError(f"{side} is not a readable training history ({e}); move it aside "
                                         f"to resume without it") from None
