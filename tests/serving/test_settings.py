"""The service's settings on every system it runs on."""

import os
import subprocess
import sys

import pytest
from sample_data import ROOT

from kitchenware.serving.settings import ServiceSettings, available_cores


def test_without_cpu_affinity_every_core_is_used(monkeypatch: pytest.MonkeyPatch):
    """macOS and Windows have no os.sched_getaffinity."""
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.delenv("KITCHENWARE_THREADS", raising=False)
    monkeypatch.setenv("KITCHENWARE_WORKERS", "1")
    assert available_cores() == os.cpu_count() == ServiceSettings.from_environment().threads


def test_the_service_imports_where_cpu_affinity_does_not_exist():
    probe = "import os; del os.sched_getaffinity; import service; print(service.SETTINGS.threads)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) == os.cpu_count()
