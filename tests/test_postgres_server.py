"""Proves the private PostgreSQL test server is real, isolated and cleaned up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import postgres
import psycopg
import pytest
from postgres import PostgresServer, postgres_server, postgres_url  # noqa: F401
from sqlalchemy import Engine, create_engine, inspect, text


@contextmanager
def engine(url: str) -> Iterator[Engine]:
    eng = create_engine(url)
    try:
        yield eng
    finally:
        eng.dispose()  # pooled connections would otherwise block DROP DATABASE


def test_databases_are_real_and_isolated(postgres_server: PostgresServer) -> None:  # noqa: F811
    url_a = postgres_server.create_database("iso_a")
    url_b = postgres_server.create_database()
    assert url_a.startswith("postgresql+psycopg://") and url_a.endswith("/iso_a")
    assert url_a != url_b

    with engine(url_a) as eng, eng.begin() as conn:
        conn.execute(text("CREATE TABLE mails (id serial PRIMARY KEY, subject text NOT NULL)"))
        conn.execute(text("INSERT INTO mails (subject) VALUES ('G-MIS'), ('Konto')"))
    with engine(url_a) as eng, eng.connect() as conn:
        rows = conn.execute(text("SELECT subject FROM mails ORDER BY id")).scalars().all()
        version = conn.execute(text("SHOW server_version")).scalar_one()
    assert rows == ["G-MIS", "Konto"]
    assert version  # a real server answered

    with engine(url_b) as eng:
        assert not inspect(eng).has_table("mails")
        with eng.begin() as conn:
            conn.execute(text("CREATE TABLE mails (subject text)"))
            conn.execute(text("INSERT INTO mails VALUES ('only in b')"))
        with eng.connect() as conn:
            assert conn.execute(text("SELECT subject FROM mails")).scalars().all() == ["only in b"]


def test_postgres_url_fixture_gives_empty_database(postgres_url: str) -> None:  # noqa: F811
    with engine(postgres_url) as eng:
        assert inspect(eng).get_table_names() == []


def test_stop_shuts_down_and_removes_temp_dir() -> None:
    with PostgresServer() as server:
        tmp = server._tmp
        assert tmp is not None and (tmp / "data" / "PG_VERSION").is_file()
        url = server.url()
    assert not tmp.exists()
    with pytest.raises(RuntimeError, match="not started"):
        server.url()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url.replace("+psycopg", ""), connect_timeout=2)


def test_env_var_reuses_existing_server(
    postgres_server: PostgresServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(postgres.ENV_URL, postgres_server.url())
    with postgres.running_postgres() as external:
        assert isinstance(external, postgres.ExternalPostgresServer)
        assert external.port == postgres_server.port
        url = external.create_database("via_env")
        with engine(url) as eng, eng.connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar_one() == "via_env"
    with psycopg.connect(postgres_server.url().replace("+psycopg", "")) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'via_env'").fetchall()
    assert left == []  # dropped on stop(), the shared server stays clean


def test_missing_binaries_fail_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "PG_ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="apt-get install postgresql"):
        PostgresServer().start()
