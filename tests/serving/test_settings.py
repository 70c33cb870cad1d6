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


def test_the_share_of_confident_answers_kept_is_all_unless_set_and_within_0_to_1(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KITCHENWARE_FEEDBACK_KEEP_CONFIDENT", raising=False)
    assert ServiceSettings.from_environment().feedback_keep_confident == 1.0
    monkeypatch.setenv("KITCHENWARE_FEEDBACK_KEEP_CONFIDENT", "0.1")
    assert ServiceSettings.from_environment().feedback_keep_confident == 0.1
    monkeypatch.setenv("KITCHENWARE_FEEDBACK_KEEP_CONFIDENT", "10")
    with pytest.raises(ValueError, match=r"KITCHENWARE_FEEDBACK_KEEP_CONFIDENT=10 must be a share from 0 to 1"):
        ServiceSettings.from_environment()
    monkeypatch.setenv("KITCHENWARE_FEEDBACK_KEEP_CONFIDENT", "half")
    with pytest.raises(ValueError, match=r"KITCHENWARE_FEEDBACK_KEEP_CONFIDENT='half' must be a number"):
        ServiceSettings.from_environment()
