"""The real thing: Xception with the ImageNet weights on the shared kitchenware photos."""

import bentoml
from sample_data import needs_real_data

from kitchenware.core.card import ModelCard


@needs_real_data()
def test_xception_head_on_cached_features_reaches_85_percent(real_xception_in_store: str):
    card = ModelCard.from_metadata(bentoml.models.get(real_xception_in_store).info.metadata)
    assert card.dataset["images"] == 824 and card.dataset["skipped"] == 0
    assert card.config["cache_features"] and card.weights == "imagenet" and len(card.weights_sha256) == 64
    assert "shared" not in str(card.to_metadata()["weights"])
    assert card.validation.accuracy >= 0.85, card.validation
