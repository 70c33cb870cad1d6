"""Classify a catalogue on Ray Data: `map_batches` over a pool of actors, each holding the service's classifier.

Each actor opens the model once as a `Classifier`, then decodes every photo of a batch with the one preprocessing
function and classifies it, as the service and the local `predict` do. A photo that cannot be read or decoded
becomes a row with an `error`, never a failed job; an actor that dies has its batches run again on a new one (Ray
Data restarts actors and retries their tasks).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.fs
import ray
import ray.data

from kitchenware.batch.photo_lists import photo_list
from kitchenware.batch.usage import ActorUsage, report_usage
from kitchenware.classifier import Classifier, answer_rows, find_model
from kitchenware.core.card import CARD_JSON, INT8_FILE, ONNX_FILE, OOD_REFERENCE_FILE, ModelCard
from kitchenware.core.inference import FORWARD_BATCH
from kitchenware.core.photos import DataError
from kitchenware.core.preprocessing import ImageError
from kitchenware.core.runtimes import CASCADE, preferred_runtime

FORMATS = ("parquet", "csv")
# Photos an actor decodes, then classifies in one forward pass. Ray Data gathers blocks up to a batch for each
# task, so a larger batch would hand a small job to one actor.
BATCH_SIZE = FORWARD_BATCH
ROWS_PER_FILE = 100_000  # output files of about 10 MB of Parquet, whatever the block size

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSummary:
    photos: int  # rows written, unreadable photos included
    errors: int
    decisions: dict[str, int]
    seconds: float  # from listing the photos to the last row written
    actors: int
    threads_per_actor: int
    actor_usage: dict[str, tuple[float, float]]  # "host:pid" of each actor process -> (peak MB, CPU seconds)

    @property
    def photos_per_second(self) -> float:
        return self.photos / self.seconds

    @property
    def cpu_seconds_per_photo(self) -> float:
        """The actors' CPU time (loading the model included) per photo: what a million photos cost in core-hours."""
        return sum(cpu for _, cpu in self.actor_usage.values()) / self.photos


def answer_schema(class_names: tuple[str, ...]) -> pa.Schema:
    """The columns of a job's output: the local `predict --probabilities` columns, and `error`."""
    return pa.schema(
        [
            ("Id", pa.string()),
            ("label", pa.string()),
            ("confidence", pa.float32()),
            ("decision", pa.string()),
            ("ood_score", pa.float64()),
            ("error", pa.string()),
            *((name, pa.float32()) for name in class_names),
        ]
    )


def read_photo(location: str) -> bytes:
    """A photo's bytes from a local path or from a URI pyarrow opens (s3://, gs://, hdfs://, file://)."""
    if "://" not in location:
        return Path(location).read_bytes()
    filesystem, path = pyarrow.fs.FileSystem.from_uri(location)
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


class ClassifyPhotos:
    """One actor of the pool: the model loaded once, then batches of (Id, path) rows in, answer rows out."""

    def __init__(
        self,
        model_files: list[ray.ObjectRef],
        runtime: str,
        threads: int,
        min_confidence: float | None,
        ood_threshold: float | None,
        ledger: ray.actor.ActorHandle,
    ):
        # The model comes through the object store, so a node needs no copy of the model folder. Its files are
        # read once into the session and the rule, then deleted.
        with tempfile.TemporaryDirectory(prefix="kitchenware-model-") as folder:
            for name, data in ray.get(model_files[0]).items():
                (Path(folder) / name).write_bytes(data)
            self.classifier = Classifier(find_model(folder), runtime, threads, min_confidence, ood_threshold)
        self.schema = answer_schema(self.classifier.card.class_names)
        self.ledger = ledger
        report_usage(ledger)  # an actor that never gets a batch is counted too

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        pixels, errors = [], []
        for location in batch["path"]:
            try:
                if location is None:
                    raise ImageError("the list gives no path for this photo: fill in its 'path'")
                pixels.append(self.classifier.pixels(read_photo(location)))
                errors.append(None)
            except (OSError, pa.ArrowException) as error:
                errors.append(f"cannot read {location} ({error}): check that every node of the cluster can reach it")
            except ImageError as error:
                errors.append(str(error))
        answered = iter(self.classifier.answers(self.classifier.decide(np.stack(pixels)))) if pixels else iter(())
        answers = [next(answered) if error is None else None for error in errors]
        ids = [None if photo_id is None else str(photo_id) for photo_id in batch["Id"]]
        rows = answer_rows(ids, answers, self.classifier.class_names, errors)
        report_usage(self.ledger)
        return pa.Table.from_pylist(rows, schema=self.schema)


def classify_catalogue(
    model_dir: Path,
    source: str,
    output: str,
    output_format: str = "parquet",
    actors: int | None = None,
    threads_per_actor: int = 1,
    min_confidence: float | None = None,
    ood_threshold: float | None = None,
    runtime: str = "",
) -> JobSummary:
    """Classify every photo of `source` (a folder, or a CSV/Parquet list of paths or URIs) into files under
    `output`, one row per photo; actors default to one per `threads_per_actor` CPUs of the cluster. The runtime is
    `onnx` or the int8 cascade (default: the model's preferred one, as the service)."""
    started = time.perf_counter()
    if output_format not in FORMATS:
        raise ValueError(f"unknown output format {output_format!r}: choose one of {', '.join(FORMATS)}")
    if "://" not in output and Path(output).exists():
        raise DataError(f"{output} already exists: choose a new folder for the results, or remove it")
    runtime = runtime or preferred_runtime(model_dir, ModelCard.read(Path(model_dir)).int8)
    names = (ONNX_FILE, OOD_REFERENCE_FILE, CARD_JSON) + ((INT8_FILE,) if runtime == CASCADE else ())
    files = {name: Path(model_dir) / name for name in names}
    if not files[ONNX_FILE].is_file():
        raise FileNotFoundError(
            f"{files[ONNX_FILE]} not found: batch jobs run model.onnx; import the model's exported folder with "
            "`python build_bento_from_saved_model.py --model DIR` or train it with `kitchenware train`"
        )
    model_files = ray.put({name: path.read_bytes() for name, path in files.items() if path.is_file()})
    actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1) // threads_per_actor))
    ledger = ActorUsage.remote()
    photos = photo_list(source, actors)
    log.info("classifying %d photos on %d actor(s) x %d thread(s)", photos.count(), actors, threads_per_actor)
    answers = photos.map_batches(
        ClassifyPhotos,
        batch_size=BATCH_SIZE,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=threads_per_actor,
        fn_constructor_kwargs=dict(
            model_files=[model_files],  # in a list: Ray hands the reference over as it is, fetched in the actor
            runtime=runtime,
            threads=threads_per_actor,
            min_confidence=min_confidence,
            ood_threshold=ood_threshold,
            ledger=ledger,
        ),
    )
    write = answers.write_parquet if output_format == "parquet" else answers.write_csv
    # Writing takes no CPU slot: the actors hold them all, and a writer waiting for one would hold every
    # answer in the object store until the last photo.
    write(output, mode=ray.data.SaveMode.ERROR, min_rows_per_file=ROWS_PER_FILE, ray_remote_args={"num_cpus": 0})
    seconds = time.perf_counter() - started
    decisions, errors, photos = _count(output, output_format)
    return JobSummary(photos, errors, decisions, seconds, actors, threads_per_actor, ray.get(ledger.usage.remote()))


def _count(output: str, output_format: str) -> tuple[dict[str, int], int, int]:
    """(rows per decision, rows with an error, rows) of what was written, read back from the files."""
    columns = ["decision", "error"]
    if output_format == "parquet":
        written = ray.data.read_parquet(output, columns=columns)
    else:
        # An empty field is a missing value (the writer's null), not an empty string.
        options = pyarrow.csv.ConvertOptions(include_columns=columns, strings_can_be_null=True)
        written = ray.data.read_csv(output, convert_options=options)
    decisions, errors, rows = Counter(), 0, 0
    for batch in written.iter_batches(batch_format="pyarrow", batch_size=100_000):
        decisions.update(value for value in batch["decision"].to_pylist() if value)
        errors += len(batch) - batch["error"].null_count
        rows += len(batch)
    return dict(decisions), errors, rows
