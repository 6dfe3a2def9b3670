"""Compatibility of TensorLayer 2.2.5 with current TensorFlow and NumPy.

TensorLayer 2.2.5 (2020) predates TF 2.16 and NumPy 2. Of what this package uses,
three things break; each is handled here rather than by forking TensorLayer:

1. ``import tensorlayer`` imports OpenCV and matplotlib without declaring them:
   ``requirements.txt`` lists both, and :func:`common.startup.start` pins matplotlib to
   the Agg backend before TensorLayer loads so that nothing needs a display.
2. ``tl.layers.BatchNorm`` rebinds ``self.moving_mean`` to a tensor while training,
   which fails inside ``tf.function``: :class:`BatchNorm` below updates the moving
   statistics in place with ``Variable.assign``.
3. ``Model.save_weights`` to ``.npz`` builds a ragged object array, which NumPy 2
   refuses: checkpoints are written by :mod:`common.checkpoint` as named arrays.
"""

from __future__ import annotations

import tensorflow as tf

import tensorlayer as tl

from common.exact import BN_EPSILON  # TensorLayer's default, shared with the converter


def batchnorm_scale_shift(gamma: tf.Tensor, beta: tf.Tensor, mean: tf.Tensor, var: tf.Tensor,
                          epsilon: float = BN_EPSILON) -> tuple[tf.Tensor, tf.Tensor]:
    """Return ``(scale, shift)`` with ``bn(z) = z * scale + shift``.

    The operations of ``tensorlayer.layers.normalization.batch_normalization``, in its order,
    except the inverse square root: float64 rounded once to float32, the same bits on every CPU
    (:func:`common.exact.inverse_sqrt`, which the converter uses, so the SNN sees the ANN's bits).
    """
    inv_std = tf.cast(1.0 / tf.sqrt(tf.cast(var + epsilon, tf.float64)), tf.float32)
    scale = inv_std * gamma
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
