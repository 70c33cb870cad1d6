"""What a job classifies: a folder of photos, or a CSV/Parquet list of their paths or URIs, as (Id, path) rows."""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.csv
import ray.data

from kitchenware.core.photos import DataError, unlabelled_images

LIST_SUFFIXES = (".csv", ".parquet")
# Rows per block: the work an actor takes at a time and repeats when it dies. Small enough that every actor gets
# several blocks of a small job, large enough that a million photos make a few thousand tasks, not a million.
MAX_ROWS_PER_BLOCK = 256


def photo_list(source: str, actors: int) -> ray.data.MaterializedDataset:
    """(Id, path) of every photo to classify.

    A folder is listed as the local `predict` lists it (same Ids: the path under the folder without its suffix);
    its paths must be the same on every node (a shared filesystem). A list file has a `path` column (local
    paths, relative ones to the list's folder, or URIs pyarrow reads: s3://, gs://, ...) and an optional `Id`
    column (default: the path), read by Ray Data's own readers."""
    suffix = PurePosixPath(source).suffix.lower()
    if suffix in LIST_SUFFIXES:
        rows = _read_list(source, suffix).materialize()
    else:
        samples = unlabelled_images(source)
        rows = ray.data.from_items([{"Id": sample.id, "path": str(sample.path.resolve())} for sample in samples])
    return in_blocks(rows, actors)


def in_blocks(rows: ray.data.Dataset, actors: int) -> ray.data.MaterializedDataset:
    """The rows cut into blocks for a pool of actors (about four blocks each), computed before the actors start:
    once they hold every CPU, no listing task could run."""
    rows_per_block = max(1, min(MAX_ROWS_PER_BLOCK, math.ceil(rows.count() / (4 * actors))))
    return rows.repartition(target_num_rows_per_block=rows_per_block).materialize()


def _read_list(source: str, suffix: str) -> ray.data.Dataset:
    if suffix == ".csv":
        # Read as text: an Id such as "0042" keeps its zeros.
        strings = pyarrow.csv.ConvertOptions(column_types={"Id": pa.string(), "path": pa.string()})
        rows = ray.data.read_csv(source, convert_options=strings)
    else:
        rows = ray.data.read_parquet(source)
    if not rows.count():
        raise DataError(f"{source} lists no photos: add a row with a 'path' for each photo to classify")
    columns = rows.columns()
    if "path" not in columns:
        raise DataError(
            f"{source} has columns {columns}; a photo list needs 'path' (a photo's path or URI on each row) "
            "and may have 'Id'"
        )
    if "Id" not in columns:
        rows = rows.add_column("Id", lambda batch: batch["path"])
    if "://" not in source:
        folder = str(Path(source).resolve().parent)
        rows = rows.map_batches(_beside_list, fn_kwargs={"folder": folder}, batch_format="pyarrow")
    return rows.select_columns(["Id", "path"])


def _beside_list(batch: pa.Table, folder: str) -> pa.Table:
    """Relative paths in a list file are relative to the list's folder, wherever the job runs."""
    paths = [
        path if path is None or "://" in path or Path(path).is_absolute() else str(Path(folder) / path)
        for path in batch["path"].to_pylist()
    ]
    return batch.set_column(batch.schema.get_field_index("path"), "path", pa.array(paths, pa.string()))
