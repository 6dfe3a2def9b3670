"""Exact arithmetic for the rare neurons whose level a floating-point sum cannot decide.

A neuron's synaptic integral is ``z = sum_i w_i x_i`` with float32 weights and float32
inputs (spike counts, or the image times ``2^k``). Each product is exact in float64
(24 + 24 bits), so :func:`math.fsum` of the products is ``z`` correctly rounded to float64,
whatever the order: the canonical value every simulator and the exact ANN agree on.
The BatchNorm fold's inverse square root is here for the same reason: one value on every CPU.
Imports no TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np

from common.networks import Conv

BN_EPSILON = 1e-5  # TensorLayer's default, used by training and by the converter


def inverse_sqrt(x: np.ndarray) -> np.ndarray:
    """``1 / sqrt(x)`` of float32 ``x``, in float64 and rounded once to float32.

    The same bits on every CPU: IEEE 754 rounds float64 square roots and quotients correctly,
    whereas TensorFlow's float32 ``rsqrt`` is a hardware estimate refined by Newton steps whose
    last bit differs between AVX2 and AVX-512 (a quarter of the shipped LeNet's channels).
    :func:`common.compat.batchnorm_scale_shift` computes the same formula in TensorFlow.
    """
    return (1.0 / np.sqrt(np.asarray(x, np.float32).astype(np.float64))).astype(np.float32)


def dot_error_factor(n: int, unit_roundoff: float) -> float:
    """``gamma_n = n u / (1 - n u)``, doubled: any floating-point sum of ``n`` exact products lies
    within ``gamma_n * sum |p_i|`` of the exact sum, in any order, with or without FMA (Higham,
    *Accuracy and Stability of Numerical Algorithms*, 2002, eq. 3.5). The factor 2 covers the
    rounding of the bound itself."""
    nu = n * unit_roundoff
    if nu >= 0.5:
        raise ValueError(f"a sum of {n} terms is too long for an error bound at unit roundoff {unit_roundoff}")
    return 2.0 * nu / (1.0 - nu)


def exact_dot(x: np.ndarray, w: np.ndarray) -> float:
    """``sum(x * w)`` correctly rounded to float64 (x and w hold float32 values); NaN if it is not finite."""
    try:
        return math.fsum((x.astype(np.float64) * w.astype(np.float64)).ravel().tolist())
    except (ValueError, OverflowError):  # inf - inf, or a sum beyond float64: the caller reports non-finite output
        return math.nan


def exact_integrals(x: np.ndarray, kernel: np.ndarray, conv: Conv, index: np.ndarray) -> np.ndarray:
    """Correctly rounded synaptic integrals of the neurons ``index`` (rows ``(b, i, j, o)``) of a
    convolution ``conv`` with ``kernel`` (kh, kw, c_in, c_out) over inputs ``x`` (B, h, w, c_in)."""
    (top, bottom), (left, right) = conv.pads(x.shape[1]), conv.pads(x.shape[2])
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    k, s = conv.kernel, conv.stride
    out = np.empty(len(index), np.float64)
    for n, (b, i, j, o) in enumerate(np.asarray(index, np.int64)):
        out[n] = exact_dot(padded[b, i * s:i * s + k, j * s:j * s + k, :], kernel[..., o])
    return out


def exact_products(x: np.ndarray, weights: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Correctly rounded ``x[b] @ weights[:, c]`` for the rows ``(b, c)`` of ``index``."""
    return np.array([exact_dot(x[b], weights[:, c]) for b, c in np.asarray(index, np.int64)], np.float64)
