"""Kitchenware photo classifier, in rooms by what each may import (README, Layout):

core (NumPy, Pillow, ONNX Runtime) <- training (+ TensorFlow/Keras), serving (+ BentoML); store.py and cli.py
sit beside them.
"""
