"""Promoting a challenger that won: its exported folder put in the champion's place in one step, or a new version
in the MLflow model registry with the champion's alias moved to it."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
from pathlib import Path

from kitchenware.training.model_uri import registry_alias

log = logging.getLogger(__name__)


def replace_folder(new: Path, target: Path) -> None:
    """Copy the folder `new` to `target`, replacing what is there whole: the copy is written beside `target` (the
    same file system), then swapped with it in one rename, so a reader finds the old model or the new one, never
    a mix or a half-written file. Where the system has no atomic swap (not Linux), two renames leave `target` absent
    for an instant between them."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.promoting-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(new, staging)
    if not target.exists():
        staging.rename(target)
    elif _exchange(staging, target):
        shutil.rmtree(staging)  # now the old folder
    else:
        previous = target.parent / f".{target.name}.replaced-{os.getpid()}"
        target.rename(previous)
        staging.rename(target)
        shutil.rmtree(previous)
    log.info("promoted: %s now holds the model of %s", target, new)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 with RENAME_EXCHANGE); False where the system or the file system
    has no such call."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_current_directory, rename_exchange = -100, 2
    if renameat2(at_current_directory, os.fsencode(first), at_current_directory, os.fsencode(second), rename_exchange):
        error = ctypes.get_errno()
        if error in (errno.EINVAL, errno.ENOSYS):
            return False
        raise OSError(error, os.strerror(error), str(second))
    return True


def promote_in_registry(folder: Path, model_uri: str) -> str:
    """Register the exported `folder` as a new version of the champion's model and move the champion's alias to it;
    returns the version."""
    from kitchenware.training import registry  # mlflow only for a registry champion

    name, alias = registry_alias(model_uri)
    version = registry.register(folder, name)
    registry.set_alias(name, alias, version)
    return version
