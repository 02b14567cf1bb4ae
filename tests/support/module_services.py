"""Services on a migrated SQLite store of their own, built once per test module: for modules
whose tests only read what one setup wrote (a record and its history), so the store and the
services are built once instead of once per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from carnet.app import Services, build_services
from carnet.settings import Settings
from tests.support.migrated_store import SqliteTemplate


def module_services_fixture() -> Callable[..., Iterator[Services]]:
    """A module fixture named after the variable it is assigned to (``shared = ...``)."""

    @pytest.fixture(scope="module")
    def shared(
        tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: SqliteTemplate
    ) -> Iterator[Services]:
        data_dir = tmp_path_factory.mktemp("module-store") / "data"
        migrated_sqlite.copy_into(data_dir)
        # argon2id's smallest parameters, as tests/conftest.py's settings (the product's strong
        # default is proved in tests/unit/authn/test_passwords.py).
        settings = Settings.from_env(
            {},
            data_dir=str(data_dir),
            public_base_url="http://127.0.0.1",
            password_hash_profile="test-only-weak",
        )
        built = build_services(settings, migrate=False)
        yield built
        built.close()

    return shared
