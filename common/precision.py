"""Mixed precision for training: convolutions and matrix products in bfloat16, everything else float32.

Keras' ``mixed_bfloat16`` idea applied to this package's layers. With ``precision="bfloat16"`` a layer
casts its input and its float32 kernel to bfloat16, multiplies, and casts the product back to float32.
The variables, BatchNorm, the quantizer, the loss and the optimizer stay float32, so a checkpoint is
float32 whatever the precision it was trained in, and converts exactly as any other: the conversion is
exact for any weights. Only CPUs with AMX or AVX512-BF16 (Intel Xeon 4th generation and later, AMD Zen 4
and later) and GPUs with bfloat16 tensor cores (NVIDIA A100 and later) compute it fast; elsewhere it is
emulated and slower than float32 (``benchmarks/train_speed.py`` measures both).
"""

from __future__ import annotations

import tensorflow as tf

import tensorlayer as tl

class _ComputesInPrecision:
    """What :class:`Conv2d` and :class:`Dense` share: a ``precision`` argument and the product in it."""

    def __init__(self, *args, precision: str = "float32", **kwargs):
        super().__init__(*args, **kwargs)
        self.compute_dtype = tf.as_dtype(precision)

    def _product(self, op, inputs: tf.Tensor) -> tf.Tensor:
        """``op(inputs, kernel)`` computed in ``compute_dtype``, returned as float32."""
        dtype = self.compute_dtype
        return tf.cast(op(tf.cast(inputs, dtype), tf.cast(self.W, dtype)), tf.float32)


class Conv2d(_ComputesInPrecision, tl.layers.Conv2d):
    """``tl.layers.Conv2d`` (no bias, no activation) computing in ``precision``; its kernel stays float32."""

    def forward(self, inputs: tf.Tensor) -> tf.Tensor:
        if self.compute_dtype == tf.float32:
            return super().forward(inputs)

        def conv(x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
            return tf.nn.conv2d(x, w, self._strides, self.padding, self.data_format, self._dilation_rate)

        return self._product(conv, inputs)


class Dense(_ComputesInPrecision, tl.layers.Dense):
    """``tl.layers.Dense`` (no bias, no activation) computing in ``precision``; its kernel stays float32."""

    def forward(self, inputs: tf.Tensor) -> tf.Tensor:
        if self.compute_dtype == tf.float32:
            return super().forward(inputs)
        return self._product(tf.matmul, inputs)
