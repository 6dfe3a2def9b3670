"""Compatibility of TensorLayer 2.2.5 with current TensorFlow and NumPy.

TensorLayer 2.2.5 (2020) predates TF 2.16 and NumPy 2. Of what this package uses,
three things break; each is handled here rather than by forking TensorLayer:

1. ``import tensorlayer`` imports OpenCV and matplotlib without declaring them:
   ``requirements.txt`` lists both, and matplotlib is pinned to the Agg backend
   before TensorLayer loads so that nothing needs a display.
2. ``tl.layers.BatchNorm`` rebinds ``self.moving_mean`` to a tensor while training,
   which fails inside ``tf.function``: :class:`BatchNorm` below updates the moving
   statistics in place with ``Variable.assign``.
3. ``Model.save_weights`` to ``.npz`` builds a ragged object array, which NumPy 2
   refuses: checkpoints are written by :mod:`common.checkpoint` as named arrays.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

from common.cli import CPU_REPLICAS_ENV, STRATEGY_ENV, VERBOSE_ENV  # noqa: E402 - absl only, no TensorFlow

VERBOSE = "--verbose" in sys.argv or os.environ.get(VERBOSE_ENV, "") not in ("", "0")
if not VERBOSE:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Swallow what C++ libraries write to file descriptor 2 (TensorFlow's start-up lines, which
    absl prints whatever TF_CPP_MIN_LOG_LEVEL says); replayed if the block fails."""
    if VERBOSE:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except KeyboardInterrupt:  # Ctrl-C during start-up: the caller's one line, not TensorFlow's
            raise
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


with quiet_native_stderr():
    import matplotlib

    matplotlib.use("Agg")
    import tensorflow as tf

    tf.config.list_physical_devices()  # device discovery logs here (a missing CUDA driver), not later
    # Logical CPU devices and a worker's collective ops can be set up only before TensorFlow starts, which
    # importing TensorLayer does: the scripts pass --cpu_replicas and --strategy in the environment.
    from common import distribute

    distribute.start(os.environ.get(STRATEGY_ENV) or "default", int(os.environ.get(CPU_REPLICAS_ENV) or 1))
    import tensorlayer as tl

tf.get_logger().setLevel("ERROR")
tl.logging.set_verbosity(tl.logging.WARN)

BN_EPSILON = 1e-5  # TensorLayer's default, used by training and by the converter


def batchnorm_scale_shift(gamma: tf.Tensor, beta: tf.Tensor, mean: tf.Tensor, var: tf.Tensor,
                          epsilon: float = BN_EPSILON) -> tuple[tf.Tensor, tf.Tensor]:
    """Return ``(scale, shift)`` with ``bn(z) = z * scale + shift``.

    The same operations, in the same order, as ``tensorlayer.layers.normalization.
    batch_normalization``; the converter calls this too, so the SNN sees the ANN's bits.
    """
    scale = tf.math.rsqrt(var + epsilon) * gamma
    return scale, beta - mean * scale


def synced_moments(x: tf.Tensor, axes: list[int]) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean and variance over the global batch, whatever the number of replicas it is split over.

    Synchronized BatchNorm: per-replica sums are added across replicas (two passes, as
    ``tf.nn.moments`` computes them), so a network trains the same on one device or many.
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return tf.nn.moments(x, axes, keepdims=False)
    n = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), x.dtype)
    total, count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [tf.reduce_sum(x, axes), n])
    mean = total / count
    squares = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(tf.square(x - tf.stop_gradient(mean)), axes))
    return mean, squares / count


class BatchNorm(tl.layers.BatchNorm):
    """``tl.layers.BatchNorm`` whose training step also works inside ``tf.function``.

    Training normalizes with the batch statistics (of the global batch when it is split over
    replicas: :func:`synced_moments`) and moves the running statistics toward them with
    ``decay``, as TensorLayer does, but in place. Inference uses
    :func:`batchnorm_scale_shift` on the running statistics.
    """

    def _get_weights(self, var_name, shape, init=None, trainable=True):  # BatchNorm.build passes every init
        if trainable:
            return super()._get_weights(var_name, shape, init, trainable)

        def first_replica_writes(next_creator, **kwargs):  # every replica computes the same synced update
            return next_creator(**{**kwargs, "aggregation": tf.VariableAggregation.ONLY_FIRST_REPLICA})

        with tf.variable_creator_scope(first_replica_writes):
            return super()._get_weights(var_name, shape, init, trainable)

    def forward(self, inputs: tf.Tensor) -> tf.Tensor:
        axes = list(range(len(inputs.shape) - 1))
        if self.is_train:
            mean, var = synced_moments(inputs, axes)
            self.moving_mean.assign(self.moving_mean * self.decay + mean * (1.0 - self.decay))
            self.moving_var.assign(self.moving_var * self.decay + var * (1.0 - self.decay))
        else:
            mean, var = self.moving_mean, self.moving_var
        scale, shift = batchnorm_scale_shift(self.gamma, self.beta, mean, var, self.epsilon)
        outputs = inputs * scale + shift
        return self.act(outputs) if self.act else outputs
