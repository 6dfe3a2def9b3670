"""Environment variables the package reads: their names, in one place that imports nothing."""

DATA_ENV = "NEGSPIKE_DATA"  # a data root, when --data_dir is not given
VERBOSE_ENV = "NEGSPIKE_VERBOSE"  # show TensorFlow's start-up messages, as --verbose does
CPU_REPLICAS_ENV = "NEGSPIKE_CPU_REPLICAS"  # logical CPU devices made when TensorFlow starts (--cpu_replicas)
STRATEGY_ENV = "NEGSPIKE_STRATEGY"  # --strategy, for what must be set up before TensorFlow starts
