"""The feedback tests run on SQLite and on a real PostgreSQL server, started once for this folder's tests."""

from pathlib import Path

import pytest
from postgres import postgres_binaries, throwaway_postgres

from kitchenware.feedback.repository import FeedbackStore
from kitchenware.feedback.schema import open_engine


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL is not installed here: run scripts/install_test_services.sh (as root, with apt-get)")
    with throwaway_postgres(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path: Path) -> str:
    """The URL of an empty database, on each: a SQLite file not yet created, or the PostgreSQL one emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    url = request.getfixturevalue("postgres_url")
    with open_engine(url).begin() as connection:  # a clean database for every test
        for table in ("choices", "classifications", "photos", "schema_version", "alembic_version"):
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    return url


@pytest.fixture
def store(database: str, tmp_path: Path) -> FeedbackStore:
    """An empty store with its photo folder, on each database."""
    return FeedbackStore(database, tmp_path / "photos")
