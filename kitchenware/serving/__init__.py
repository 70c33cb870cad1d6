"""The HTTP service's parts (settings, answer shapes, upload checks): BentoML and core, never TensorFlow."""
