"""Batch jobs on Ray Data: classify a catalogue of photos, extract backbone features for training.

The room imports `core` and Ray; `cli.py` imports it only for `--engine ray`, and the bento never holds it.
The photos go through the service's own preprocessing and classifier (`kitchenware.core`), so a photo gets
the same answer from a batch job as from `/classify` and from the local `predict`.
"""
