"""Kitchenware photo classifier, in rooms by what each may import (README, Layout):

core (NumPy, Pillow, ONNX Runtime) <- training (+ TensorFlow/Keras), serving (+ BentoML); store.py and cli.py
sit beside them.
"""

__version__ = "0.5.0"  # as in pyproject.toml
