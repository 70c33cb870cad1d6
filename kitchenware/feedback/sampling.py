"""Which classified photos the store keeps: every `unsure` and `unknown` answer (the photos a person's label teaches
the model most, and what the review queue shows first), and a share of the `confident` ones
(KITCHENWARE_FEEDBACK_KEEP_CONFIDENT, 1 by default: all of them), so that storage grows with what is useful.

The share is drawn from the photo's SHA-256, not at random: the same photo is always kept or always not, whichever
worker or replica classifies it and however often, so a photo kept once never loses its later answers.
"""

from __future__ import annotations

from kitchenware.core.decision import CONFIDENT

HASH_SPAN = 16**15  # the first 15 hexadecimal digits of the SHA-256: a uniform number in [0, HASH_SPAN)


def keeps(photo_id: str, decision: str, keep_confident: float) -> bool:
    """Whether the store keeps this photo (its SHA-256, hexadecimal) and its answer."""
    if decision != CONFIDENT or keep_confident >= 1:
        return True
    return int(photo_id[:15], 16) < keep_confident * HASH_SPAN
