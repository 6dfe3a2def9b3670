"""One device, several local devices or several machines, through ``tf.distribute``.

``--strategy default`` trains on one device; ``mirrored`` on every local GPU (or on
``--cpu_replicas`` logical CPU devices, so that the path runs on any machine);
``multi_worker`` on several machines described by ``TF_CONFIG``. The training loop and the
spiking runs are written once against a :class:`tf.distribute.Strategy`; this module makes
the strategy and answers the few questions they ask of it (who writes files, how many
replicas, what the workers agree on).
"""

from __future__ import annotations

import os
import signal

import numpy as np
import tensorflow as tf

from common import cluster_watch
from common.env import CLUSTER_TIMEOUT_ENV, CPU_REPLICAS_ENV, STRATEGY_ENV
from common.signals import STOP_SIGNALS

STRATEGIES = ("default", "mirrored", "multi_worker")


class DistributeError(Exception):
    """The requested devices or cluster cannot be set up."""


_STARTED: dict[str, tf.distribute.Strategy] = {}


def start(name: str, cpu_replicas: int = 1) -> None:
    """Set up what TensorFlow allows only before it starts (:func:`common.startup.start` calls this first).

    ``cpu_replicas > 1`` splits the CPU into logical devices; ``multi_worker`` starts this
    worker's server and collective ops from ``TF_CONFIG``.
    """
    if cpu_replicas > 1:
        tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                                   [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
    if name == "multi_worker":
        _STARTED[name] = _join_cluster(float(os.environ.get(CLUSTER_TIMEOUT_ENV) or DEFAULT_CLUSTER_TIMEOUT))


DEFAULT_CLUSTER_TIMEOUT = 300.0  # seconds to wait for every worker of TF_CONFIG (--cluster_timeout)


def _join_cluster(timeout: float) -> tf.distribute.Strategy:
    """Start this worker and wait, saying for what, until every worker of ``TF_CONFIG`` has come.

    TensorFlow waits in native code holding the interpreter lock, so no Python code of this process
    runs until it returns: the process that was started watches this one (:mod:`common.cluster_watch`),
    gives up after ``timeout`` seconds with one line, and ends the wait at once on SIGINT, SIGTERM or SIGHUP.
    """
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    spec = resolver.cluster_spec().as_dict()
    peers = [address for kind in ("chief", "worker") for address in spec.get(kind, [])]
    message = (f"the workers of TF_CONFIG ({', '.join(peers)}) did not all come within {timeout:g} s; start every "
               f"worker (see the README's 'Scaling out'), check the addresses, or raise --cluster_timeout")
    cluster_watch.report_waiting(timeout, message)  # before the line: whoever reads the line finds the watcher told
    print(f"waiting up to {timeout:g} s for the {len(peers)} workers of TF_CONFIG ({', '.join(peers)}); this is "
          f"{resolver.task_type} {resolver.task_id}", flush=True)
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    except (RuntimeError, tf.errors.OpError) as e:
        raise DistributeError(f"{message} ({str(e)[:120]})") from None
    for s, handler in previous.items():
        signal.signal(s, handler)  # TensorFlow's SIGTERM handler out
    cluster_watch.report_came()
    return strategy


def cpu_devices(replicas: int) -> list[str]:
    """The first ``replicas`` logical CPU devices (made by :func:`start`)."""
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < replicas:
        raise DistributeError(f"--cpu_replicas {replicas}: TensorFlow started with {len(devices)} CPU device(s); "
                              f"set {CPU_REPLICAS_ENV}={replicas} before TensorFlow starts (the scripts' "
                              f"--cpu_replicas does this)")
    return devices[:replicas]


def make_strategy(name: str, cpu_replicas: int = 1) -> tf.distribute.Strategy:
    """The strategy of ``--strategy name``."""
    if name not in STRATEGIES:
        raise DistributeError(f"--strategy {name}: expected one of {', '.join(STRATEGIES)}")
    if cpu_replicas > 1 and name != "mirrored":
        raise DistributeError(f"--cpu_replicas {cpu_replicas} splits this CPU for --strategy mirrored; "
                              f"add --strategy mirrored or drop --cpu_replicas")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if cpu_replicas > 1:
            # CPU devices have no NCCL: reduce through one device, as MirroredStrategy itself falls back to.
            return tf.distribute.MirroredStrategy(cpu_devices(cpu_replicas),
                                                  cross_device_ops=tf.distribute.ReductionToOneDevice())
        return tf.distribute.MirroredStrategy()  # every local GPU, else the CPU
    if name not in _STARTED:
        raise DistributeError(f"--strategy multi_worker must be chosen before TensorFlow starts: set "
                              f"{STRATEGY_ENV}=multi_worker before TensorFlow starts (the scripts' --strategy "
                              f"does this)")
    return _STARTED[name]


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints and logs: always, except on the other workers of a cluster."""
    return worker_index(strategy) == 0


def worker_index(strategy: tf.distribute.Strategy) -> int:
    """This process's place among the workers: 0 for the chief, then the workers in ``TF_CONFIG`` order."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type or resolver.task_type == "chief":
        return 0
    return resolver.task_id + ("chief" in resolver.cluster_spec().as_dict())


def worker_count(strategy: tf.distribute.Strategy) -> int:
    """Processes taking part (1 unless ``multi_worker``)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return sum(len(spec.get(kind, [])) for kind in ("chief", "worker"))


def local_devices(strategy: tf.distribute.Strategy) -> list[str]:
    """The devices of this process's replicas, in replica order."""
    if strategy.num_replicas_in_sync == 1 and worker_count(strategy) == 1:
        return ["/cpu:0" if not tf.config.list_logical_devices("GPU") else "/gpu:0"]
    return list(strategy.extended.worker_devices)


def replica_batch(strategy: tf.distribute.Strategy, global_batch: int) -> int:
    """Each replica's share of ``--batch_size``, which stays the global batch."""
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise DistributeError(f"--batch_size {global_batch} does not split evenly over {replicas} replicas; "
                              f"pass a multiple of {replicas}")
    return global_batch // replicas


def sum_over_workers(strategy: tf.distribute.Strategy, table: np.ndarray) -> np.ndarray:
    """Element-wise sum of every process's ``table`` (float64), as all of them receive it.

    Each process contributes through its first local replica only. Every process must call
    this at the same point: it is a collective operation.
    """
    if worker_count(strategy) == 1:
        return table
    local = len(local_devices(strategy))
    table = tf.constant(table, tf.float64)

    def contribution(ctx: tf.distribute.ValueContext) -> tf.Tensor:
        return table if ctx.replica_id_in_sync_group % local == 0 else tf.zeros_like(table)

    values = strategy.experimental_distribute_values_from_function(contribution)
    return strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None).numpy()
