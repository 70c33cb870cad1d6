"""The HTTP service's parts (settings, answer shapes, upload checks, the page): BentoML and core, never TensorFlow."""

from pathlib import Path

PAGE = Path(__file__).parent / "ui"  # the page for people: plain HTML, CSS and JavaScript, shipped with the package
