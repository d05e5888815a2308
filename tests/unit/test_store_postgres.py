"""The server on a PostgreSQL store: the password in its URL never reaches the logs."""

from __future__ import annotations

import logging

from pai_lab.platform import Platform


def test_the_store_password_stays_out_of_the_log(new_postgres_database, tmp_path, caplog):
    url = new_postgres_database().replace("://pai@", "://pai:not-for-logs@")  # the test server trusts loopback
    with caplog.at_level(logging.INFO, logger="pai_lab"):
        platform = Platform(tmp_path / "root", url, owner="owner").start()
    platform.store.dispose()
    assert "store postgresql+psycopg://pai:***@" in caplog.text
    assert "not-for-logs" not in caplog.text
