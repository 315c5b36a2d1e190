"""`ledger.store.pg` without a database: the URLs it opens and how it names them in messages (as
`ledger.store.db.open_engine` does)."""

from __future__ import annotations

import pytest

from ledger.store import db, pg


@pytest.mark.parametrize("url", ["postgresql://u@h:5432/d", "postgres://u:p@h/d", "postgresql+psycopg://u@h/d",
                                 "postgresql:///d"])
def test_postgresql_urls_for_psycopg_are_opened(url):
    assert pg.snapshot_url(url)


@pytest.mark.parametrize("url", ["sqlite:///ledger.db", "postgresql+psycopg2://u@h/d", "postgresql://u@h/d?sslmode=require",
                                 "mysql://u@h/d"])
def test_other_urls_are_not(url):
    assert not pg.snapshot_url(url)
    with pytest.raises(ValueError, match="not a PostgreSQL URL"), pg.open_snapshot(url):
        pass


def test_a_url_is_named_as_open_engine_names_it():
    for url in ("postgresql://u:secret@h:5432/d", "postgres://u:secret@h:5432/d", "postgresql+psycopg://u:secret@h:5432/d"):
        shown = pg._shown(url)
        assert shown == db.make_engine(url).url.render_as_string(hide_password=True) == "postgresql+psycopg://u:***@h:5432/d"
    assert pg._shown("postgresql://u@h/d") == db.make_engine("postgresql://u@h/d").url.render_as_string(hide_password=True)


@pytest.mark.parametrize("url", ["postgresql+psycopg://u:se/cret@h:5432/d", "postgresql+psycopg://u:a:b@h/d",
                                 "postgresql+psycopg://u:p%40ss@h/d", "postgresql+psycopg://:pw@h/d",
                                 "postgresql+psycopg://u:@h/d", "postgresql+psycopg://h:5432/d@x",
                                 "mysql://u:pw@h/d?x=1", "sqlite:///ledger.db"])
def test_a_password_is_hidden_as_sqlalchemy_hides_it(url):
    """Whatever it holds ('/' too), as `ledger.store.db.open_engine` hides it in messages."""
    assert pg._hide(url) == db.sa.make_url(url).render_as_string(hide_password=True)


def test_a_password_with_a_slash_is_not_shown():
    assert pg._shown("postgresql://u:se/cret@h:5432/d") == "postgresql+psycopg://u:***@h:5432/d"
