"""TensorFlow start-up and the hardware it trains on: quiet import, GPUs, mixed precision, multi-GPU strategy."""

from __future__ import annotations

import functools
import os
import sys
from contextlib import contextmanager


@contextmanager
def _native_stderr_silenced():
    """TensorFlow's C++ start-up lines (absl, cudart_stub, cpu_feature_guard, cuInit) bypass every logging
    setting: they are written to file descriptor 2 before absl's logging starts. Point it at /dev/null meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@functools.cache
def gpu_count(verbose: bool = False) -> int:
    """Import TensorFlow (silencing its start-up noise unless verbose) and count the GPUs it can use."""
    if verbose:
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _native_stderr_silenced():
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU"))  # the first listing initialises CUDA, noisily


def precision_policy(mode: str, gpu_count: int) -> str:
    """Mixed float16 pays off on GPUs only: 'auto' turns it on when one is present."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"--mixed-precision must be auto, on or off, not {mode!r}")
    on = mode == "on" or (mode == "auto" and gpu_count > 0)
    return "mixed_float16" if on else "float32"


def distribution_strategy(gpu_count: int):
    """MirroredStrategy over several GPUs; TensorFlow's default strategy otherwise."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy() if gpu_count > 1 else tf.distribute.get_strategy()
