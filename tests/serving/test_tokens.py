"""Feedback tokens: a token opens /feedback for its one photo until it expires, under the secret that signed it;
and the secret every worker and replica of a server must share."""

import logging

import pytest

from kitchenware.serving.tokens import SECRET_VARIABLE, FeedbackTokens, TokenRefused, secret_from_environment

CUP, GLASS = "a" * 64, "b" * 64
NOW = 1_800_000_000.0


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now


def refusal(tokens: FeedbackTokens, token: str, photo_id: str) -> str:
    with pytest.raises(TokenRefused) as refused:
        tokens.check(token, photo_id)
    assert "classify the photo again" in str(refused.value)  # every refusal says what to do
    return str(refused.value)


def test_a_token_opens_feedback_for_its_photo_until_it_expires():
    clock = Clock()
    tokens = FeedbackTokens(b"secret", 3600, clock)
    token = tokens.issue(CUP)
    assert token.startswith(f"{CUP}.{int(NOW) + 3600}.") and len(token) < 120
    tokens.check(token, CUP)
    clock.now = NOW + 3600  # its last second
    tokens.check(token, CUP)
    clock.now = NOW + 3601
    assert "has expired (tokens last 60 minutes)" in refusal(tokens, token, CUP)


def test_a_token_for_another_photo_is_refused():
    tokens = FeedbackTokens(b"secret", 3600, Clock())
    assert "for another photo" in refusal(tokens, tokens.issue(GLASS), CUP)


@pytest.mark.parametrize(
    "alter",
    [
        lambda token: token.replace(CUP, GLASS),  # the photo id changed to another photo's
        lambda token: token.replace(str(int(NOW) + 3600), str(int(NOW) + 360000)),  # a longer life
        lambda token: token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),  # the signature itself
    ],
)
def test_an_altered_token_is_refused(alter):
    tokens = FeedbackTokens(b"secret", 3600, Clock())
    altered = alter(tokens.issue(CUP))
    photo_id = GLASS if GLASS in altered else CUP
    assert "not issued by this service" in refusal(tokens, altered, photo_id)


def test_a_token_signed_with_another_secret_is_refused():
    """Another replica's, or this server's before a restart, without a shared secret."""
    token = FeedbackTokens(b"one secret", 3600, Clock()).issue(CUP)
    assert "not issued by this service" in refusal(FeedbackTokens(b"another", 3600, Clock()), token, CUP)


@pytest.mark.parametrize("token", ["", "nonsense", f"{CUP}.soon.c2ln", f"{CUP}.1.2.3", "x" * 5000])
def test_a_malformed_token_is_refused(token: str):
    assert "malformed" in refusal(FeedbackTokens(b"secret", 3600, Clock()), token, CUP)


def test_the_secret_is_the_variable_else_derived_from_the_api_key_the_same_on_every_replica(caplog):
    assert secret_from_environment({SECRET_VARIABLE: "shared", "KITCHENWARE_API_KEY": "key"}) == b"shared"
    replicas = [secret_from_environment({"KITCHENWARE_API_KEY": "key"}) for _ in range(2)]
    assert replicas[0] == replicas[1] and len(replicas[0]) == 32
    assert b"key" not in replicas[0] and replicas[0] != secret_from_environment({"KITCHENWARE_API_KEY": "other"})
    assert caplog.records == []  # nothing to warn about


def test_without_either_variable_a_random_secret_is_handed_to_the_workers_through_the_environment(caplog):
    """`bentoml serve` reads the settings before it starts its workers, which inherit its environment."""
    environment: dict[str, str] = {}
    with caplog.at_level(logging.WARNING):
        first = secret_from_environment(environment)
        assert len(first) >= 32 and environment[SECRET_VARIABLE] == first.decode()
        assert secret_from_environment(dict(environment)) == first  # a worker: the same secret, no second warning
    (warning,) = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert "not by other replicas nor after a restart" in warning and f"set {SECRET_VARIABLE}" in warning
    assert secret_from_environment({}) != first  # another replica, or this server after a restart
