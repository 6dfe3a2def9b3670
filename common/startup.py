"""Start TensorFlow and TensorLayer quietly, once, at an entry point (a script, the tests, a benchmark).

TensorFlow prints its start-up lines while it is imported, and logical CPU devices and a
worker's collective ops can be set up only before it starts (which importing TensorLayer
does). So :func:`start` runs before anything imports either of them::

    from common import startup
    startup.start()                     # or start("mirrored", cpu_replicas=2)
    from common import spiking          # TensorFlow is configured now

Importing a module of this package never starts TensorFlow as a side effect; a module
imported without :func:`start` works, only TensorFlow's start-up messages are shown.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

from common.env import CPU_REPLICAS_ENV, STRATEGY_ENV, VERBOSE_ENV

_started = False


def verbose() -> bool:
    """Whether TensorFlow's start-up messages are shown: ``--verbose`` or ``NEGSPIKE_VERBOSE=1``."""
    return "--verbose" in sys.argv or os.environ.get(VERBOSE_ENV, "") not in ("", "0")


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Swallow what C++ libraries write to file descriptor 2 (TensorFlow's start-up lines, which
    absl prints whatever TF_CPP_MIN_LOG_LEVEL says); replayed if the block fails."""
    if verbose():
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


def start(strategy: str | None = None, cpu_replicas: int | None = None) -> None:
    """Import TensorFlow and TensorLayer quietly and set up the devices of ``strategy``.

    Args:
        strategy: ``--strategy``; default: ``$NEGSPIKE_STRATEGY``, else ``"default"``.
        cpu_replicas: logical CPU devices to split the CPU into; default: ``$NEGSPIKE_CPU_REPLICAS``, else 1.

    Later calls do nothing: TensorFlow starts once per process.
    """
    global _started
    if _started:
        return
    strategy = strategy or os.environ.get(STRATEGY_ENV) or "default"
    cpu_replicas = cpu_replicas or int(os.environ.get(CPU_REPLICAS_ENV) or 1)
    if not verbose():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # oneDNN's kernels: training 2 to 10 times faster and convolutions twice as fast where TensorFlow leaves them off
    # (AMD, no AVX-512); nothing depends on their rounding (training need not match bit for bit, the simulators
    # bound it); TF_ENABLE_ONEDNN_OPTS=0 turns them off
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")  # TensorLayer imports matplotlib; nothing here needs a display
    if strategy == "multi_worker":  # TensorFlow's wait for the cluster runs no Python: another process watches it
        from common.cluster_watch import watch_the_cluster_wait

        watch_the_cluster_wait()
    with quiet_native_stderr():
        import matplotlib

        matplotlib.use("Agg")
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery logs here (a missing CUDA driver), not later
        from common import distribute

        distribute.start(strategy, cpu_replicas)
        import tensorlayer as tl

    tf.get_logger().setLevel("ERROR")
    tl.logging.set_verbosity(tl.logging.WARN)
    _started = True
