"""Where a batch job runs: an existing Ray cluster (`--address`), or a Ray started on this machine for the run."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ray
import ray.data  # configures its console handler, quieted below

import kitchenware

log = logging.getLogger(__name__)


@contextmanager
def connected(address: str | None, verbose: bool = False) -> Iterator[None]:
    """Ray for the length of a job, shut down after it (a local Ray with everything it started).

    The package travels with the job (`py_modules`): a cluster's nodes need the dependencies
    (requirements-ray.txt), not this repository. Ray Data's console lines (plans, progress every few seconds)
    show with `verbose`; its full log is in the session folder."""
    runtime_env = {"py_modules": [str(Path(kitchenware.__file__).parent)]}
    options = dict(runtime_env=runtime_env, logging_level=logging.WARNING, configure_logging=False)
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(address="local", include_dashboard=False, **options)
    except ConnectionError as error:
        raise ConnectionError(
            f"no Ray cluster answers at {address} ({error}): start one (`ray start --head`, `ray up`, KubeRay) "
            "and pass its head's address as --address HOST:PORT, or leave --address out to run on this machine; "
            "a cluster with token authentication (Ray's default) also needs RAY_AUTH_MODE=token and its token in "
            "~/.ray/auth_token here"
        ) from error
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.INFO if verbose else logging.WARNING)
    resources = ray.cluster_resources()
    log.info("Ray: %d node(s), %g CPUs", sum(node["Alive"] for node in ray.nodes()), resources.get("CPU", 0))
    try:
        yield
    finally:
        ray.shutdown()
