"""A Postgres cluster of a test module's own (``pg_createcluster`` on a free port), for tests that
stop and start their database server: they must never stop the cluster other suites (or another
copy of this suite) use on the same machine (issue 27).

Needs Debian's postgresql-common tools and root (as CI runs); ``private_cluster`` returns None
otherwise, and the caller falls back to a database on the shared server."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PORTS = range(20_000, 32_000)
"""Where a private cluster's port is drawn: below Linux's ephemeral range (32768-60999), where
this sandbox refused Postgres's bind ("Address already in use") on free ports."""


@dataclass(frozen=True)
class Cluster:
    """A running private cluster: ``pg_ctlcluster`` ``version`` and ``name``, its ``url``
    (trust auth on 127.0.0.1, database ``postgres``)."""

    version: str
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, action: str, *options: str) -> None:
        """``pg_ctlcluster VERSION NAME action`` (``stop``, ``start``), checked, within 60 s."""
        subprocess.run(["pg_ctlcluster", self.version, self.name, action, *options], check=True, timeout=60)

    def ready(self) -> bool:
        """True when the server accepts connections."""
        command = ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        return subprocess.run(command, timeout=10).returncode == 0


def free_port() -> int:
    for _ in range(200):
        port = random.choice(PORTS)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


@contextmanager
def private_cluster(name: str) -> Iterator[Cluster | None]:
    """A new cluster ``name`` (fsync off: nothing in it must survive), started, dropped on exit;
    None when this machine cannot make one (not root, no ``pg_createcluster``)."""
    versions = sorted(os.listdir("/etc/postgresql")) if Path("/etc/postgresql").is_dir() else []
    if os.geteuid() != 0 or shutil.which("pg_createcluster") is None or not versions:
        yield None
        return
    cluster = Cluster(versions[-1], name, free_port())
    subprocess.run(["pg_dropcluster", cluster.version, name, "--stop"], capture_output=True)  # a leftover
    subprocess.run(
        ["pg_createcluster", cluster.version, name, "-p", str(cluster.port), "--", "--auth=trust"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        conf = Path(f"/etc/postgresql/{cluster.version}/{name}/conf.d/90-test.conf")
        conf.write_text("listen_addresses = '127.0.0.1'\nfsync = off\nsynchronous_commit = off\n")
        cluster.ctl("start")
        yield cluster
    finally:
        subprocess.run(["pg_dropcluster", cluster.version, name, "--stop"], capture_output=True, timeout=120)
