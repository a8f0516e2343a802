"""Which database session a request gets: reads in autocommit, writes in a transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from procurement.data_access import core as store


def autocommit() -> bool:
    return store.db.session.connection().connection.dbapi_connection.autocommit


def test_reads_run_in_autocommit_and_may_not_write(app):
    """A GET's session reads in autocommit (no BEGIN, no ROLLBACK); a write's session is
    transactional, and a GET that tried to write is refused rather than committed statement
    by statement."""
    with app.test_request_context("/api/v1/orders", method="GET"):
        assert autocommit() is True
        with pytest.raises(RuntimeError, match="may not write"), store.transaction():
            pass
    with app.test_request_context("/api/v1/requests", method="POST"):
        assert autocommit() is False
        with store.transaction() as session:
            assert session.execute(text("SELECT 1")).scalar() == 1
    with app.app_context():
        assert autocommit() is False
