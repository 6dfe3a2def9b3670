"""Environment variables the package reads: their names, in one place that imports nothing."""

DATA_ENV = "NEGSPIKE_DATA"  # a data root, when --data_dir is not given
VERBOSE_ENV = "NEGSPIKE_VERBOSE"  # show TensorFlow's start-up messages, as --verbose does
CPU_REPLICAS_ENV = "NEGSPIKE_CPU_REPLICAS"  # logical CPU devices made when TensorFlow starts (--cpu_replicas)
STRATEGY_ENV = "NEGSPIKE_STRATEGY"  # --strategy, for what must be set up before TensorFlow starts
CLUSTER_TIMEOUT_ENV = "NEGSPIKE_CLUSTER_TIMEOUT"  # --cluster_timeout, read when the multi-worker strategy starts
CLUSTER_WATCH_ENV = "NEGSPIKE_CLUSTER_WATCH"  # set in a watched multi-worker child: "<watcher pid>,<report fd>"

_REAL_STDERR: list[int] = []  # a duplicate of file descriptor 2 made before TensorFlow's start-up is quieted


def keep_real_stderr(fd: int) -> None:
    """Remember ``fd``, a duplicate of standard error taken before the quiet start-up swallows descriptor 2."""
    _REAL_STDERR.append(fd)


def real_stderr_fd() -> int:
    """Standard error as it was before TensorFlow's start-up was quieted (which swallows file descriptor 2)."""
    return _REAL_STDERR[0] if _REAL_STDERR else 2
