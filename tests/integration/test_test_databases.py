"""The suite's Postgres databases (tests/conftest.py, issue 27): each test module gets a database
of its own, cloned from a template migrated once per run, dropped at the module's end, so that a
module never sees another's rows; under pytest-xdist each worker's names carry the worker.

Checked by running a small suite of two modules in a pytest subprocess with two xdist workers on
the real server: both create the same table (which fails in a shared database), both find the
schema at head, each names its database (with its worker), and after the run none of the run's
databases is left."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from scenedex.adapters.db.migrate import head_revision
from tests.conftest import PostgresServer, run_database_name, worker_redis_url

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
MODULE = """
import os

import sqlalchemy as sa


def test_{name}(postgres_engine, postgres_url):
    with postgres_engine.begin() as connection:
        connection.execute(sa.text("create table probe (id int)"))  # fails if another module's is there
        connection.execute(sa.text("insert into probe values (1)"))
        version = connection.execute(sa.text("select version_num from alembic_version")).scalar_one()
        count = connection.execute(sa.text("select count(*) from probe")).scalar_one()
    name = postgres_engine.url.database
    assert postgres_url.endswith("/" + name)
    with open(os.environ["PROBE_OUT"], "a") as out:  # xdist's workers print nowhere
        out.write(f"DATABASE {{name}} {{version}} {{count}}\\n")
"""


def test_each_module_has_its_own_migrated_database_dropped_after_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    server = PostgresServer(postgres_url)
    base = f"scenedex_pt_{uuid.uuid4().hex[:8]}"  # the inner run's base, none of this run's names
    monkeypatch.setenv("SCENEDEX_TEST_DATABASE_URL", server.database_url(base))
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.setenv("PYTHONPATH", f"{ROOT / 'src'}:{ROOT}")
    out = pytester.path / "databases.txt"
    monkeypatch.setenv("PROBE_OUT", str(out))
    pytester.makeconftest(
        "from tests.conftest import (  # noqa: F401\n"
        "    postgres_engine, postgres_template, postgres_url, pytest_configure\n)\n"
    )
    pytester.makepyfile(test_alpha=MODULE.format(name="alpha"), test_beta=MODULE.format(name="beta"))
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile")
        result.assert_outcomes(passed=2)
        found = re.findall(r"DATABASE (\S+) (\S+) (\d+)", out.read_text())
        names = sorted(name for name, _, _ in found)
        assert len(set(names)) == 2 and all(name.startswith(f"{base}_") for name in names), found
        assert sorted(name.rsplit("_", 1)[1] for name in names) == ["alpha", "beta"], names  # either worker
        assert all(version == head_revision() and count == "1" for _, version, count in found), found
        assert all(re.match(rf"{base}_gw[01]_", name) for name in names), names  # the worker's
        with server.admin.connect() as connection:
            left = connection.execute(
                sa.text("select datname from pg_database where datname like :prefix"), {"prefix": f"{base}_%"}
            )
            assert left.scalars().all() == []  # the modules' databases and the template dropped
    finally:
        server.drop(base)  # the inner run's base, created by its probe
        server.admin.dispose()


def test_database_names_are_unique_per_module_and_worker_and_fit_postgres() -> None:
    long_module = "tests/integration/test_" + "x" * 80 + ".py"
    names = {
        run_database_name("scenedex_ci_1234", worker, module)
        for worker in ("", "gw0", "gw1")
        for module in ("tests/a/test_one.py", "tests/b/test_one.py", long_module)
    }
    assert len(names) == 9 and all(len(name.encode()) <= 63 for name in names)
    assert run_database_name("scenedex_test", "gw1", None) == "scenedex_test_gw1_template"
    assert run_database_name("scenedex_test", "", "tests/a/test_one.py").endswith("_one")
    with pytest.raises(pytest.UsageError):
        run_database_name("x" * 49, "", None)


def test_each_xdist_worker_has_its_own_redis_database() -> None:
    url = "redis://:pw@127.0.0.1:6379/4"
    assert worker_redis_url(url, "") == url
    assert [worker_redis_url(url, f"gw{k}") for k in range(2)] == [url, "redis://:pw@127.0.0.1:6379/5"]
    assert worker_redis_url("redis://127.0.0.1:6379/15", "gw1") == "redis://127.0.0.1:6379/14"
    assert worker_redis_url("redis://127.0.0.1:6379/15", "gw2") == "redis://127.0.0.1:6379/13"  # -n 3
    assert worker_redis_url("redis://127.0.0.1:6379", "gw2") == "redis://127.0.0.1:6379/2"
