"""Preprocessing, the forward pass, the model card and photo listing: NumPy, Pillow and ONNX Runtime only."""
