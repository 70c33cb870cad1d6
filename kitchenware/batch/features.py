"""Backbone features for training on Ray Data: `kitchenware train --engine ray` fills the same `FeatureCache` the
head trains on, with the slow part (the frozen Xception over every photo) spread over a pool of actors.

Each actor builds the backbone once with training's own `FeatureCache` (TensorFlow is imported in the actors,
never by this module) and runs its `compute` on a share of the photos; the features come back to the driver's
cache, which the health check, the split, every setting of a sweep and the decision rule read as before.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import ray
import ray.data

from kitchenware.batch.photo_lists import in_blocks
from kitchenware.batch.usage import ActorUsage, report_usage
from kitchenware.core.photos import Sample

if TYPE_CHECKING:
    from kitchenware.training.augmentation import ViewRecipe
    from kitchenware.training.config import TrainConfig
    from kitchenware.training.trainer import Extractor

log = logging.getLogger(__name__)


class BackboneFeatures:
    """One actor of the pool: the frozen backbone built once, then batches of photos in, their features out."""

    def __init__(
        self,
        config: TrainConfig,
        weights_file: list[ray.ObjectRef] | None,
        view: int,
        recipe: ViewRecipe | None,
        threads: int,
        verbose: bool,
        ledger: ray.actor.ActorHandle,
    ):
        from kitchenware.training.accelerators import gpu_count

        gpu_count(verbose)  # imports TensorFlow, quietly unless verbose, as the driver does
        import tensorflow as tf

        from kitchenware.training.trainer import FeatureCache

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        # A local weights file comes through the object store, so a node needs no copy of it.
        with tempfile.TemporaryDirectory(prefix="kitchenware-weights-") as folder:
            if weights_file is not None:
                path = Path(folder) / "backbone.weights.h5"
                path.write_bytes(ray.get(weights_file[0]))
                config = dataclasses.replace(config, weights=str(path))
            self.cache = FeatureCache(config)
            _ = self.cache.backbone  # built, and its weights read, before the file goes
        self.view, self.recipe = view, recipe
        self.ledger = ledger
        report_usage(ledger)  # an actor that never gets a batch is counted too

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        samples = [
            Sample(photo_id, Path(path), label, source)
            for photo_id, path, label, source in zip(batch["Id"], batch["path"], batch["label"], batch["source"])
        ]
        features = self.cache.compute(samples, self.view, self.recipe)
        report_usage(self.ledger)
        return {"row": batch["row"], "features": features}


def extract_on_ray(config: TrainConfig, actors: int | None, threads_per_actor: int, verbose: bool = False) -> Extractor:
    """A `FeatureCache` extractor that runs on the connected Ray cluster; the photos' paths must be the same on
    every node (a shared filesystem), as for `predict --engine ray` on a folder."""
    weights = Path(config.weights)
    weights_file = [ray.put(weights.read_bytes())] if weights.is_file() else None

    def extract(samples: list[Sample], view: int, recipe: ViewRecipe | None) -> np.ndarray:
        pool = actors or max(1, int(ray.cluster_resources().get("CPU", 1) // threads_per_actor))
        ledger = ActorUsage.remote()
        rows = ray.data.from_items(
            [
                {"row": i, "Id": s.id, "path": str(s.path.resolve()), "label": s.label, "source": s.source}
                for i, s in enumerate(samples)
            ]
        )
        computed = in_blocks(rows, pool).map_batches(
            BackboneFeatures,
            batch_size=config.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=pool),
            num_cpus=threads_per_actor,
            fn_constructor_kwargs=dict(
                config=config,
                weights_file=weights_file,
                view=view,
                recipe=recipe,
                threads=threads_per_actor,
                verbose=verbose,
                ledger=ledger,
            ),
        )
        features: list[np.ndarray | None] = [None] * len(samples)
        for batch in computed.iter_batches(batch_format="numpy", batch_size=None):
            for row, vector in zip(batch["row"], batch["features"]):
                features[row] = vector
        usage = ray.get(ledger.usage.remote())
        log.info(
            "features of %d photos on Ray (%d actors); peak memory per actor process: %s",
            len(samples),
            pool,
            ", ".join(f"{process} {megabytes:.0f} MB" for process, (megabytes, _) in usage.items()),
        )
        return np.stack(features)

    return extract
