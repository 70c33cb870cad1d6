"""The real thing: Xception with the ImageNet weights on the shared kitchenware photos."""

from pathlib import Path

from conftest import IMAGENET_WEIGHTS, REAL_PHOTOS, needs_real_data

from kitchenware.config import TrainConfig
from kitchenware.training import prepare_data, train_model


@needs_real_data()
def test_xception_head_on_cached_features_reaches_85_percent(tmp_path: Path):
    config = TrainConfig(data=REAL_PHOTOS, weights=str(IMAGENET_WEIGHTS), epochs=10, lr=1e-3)
    prepared = prepare_data(config)
    assert len(prepared.train) + len(prepared.val) == 824 and not prepared.skipped
    trained = train_model(config, prepared, tmp_path)
    assert trained.history["stage"][0] == "head"
    assert trained.report.accuracy >= 0.85, trained.report.summary()
