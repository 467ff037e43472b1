"""A real PostgreSQL server for tests: Debian's initdb/pg_ctl on a temporary directory, 127.0.0.1 only.

`scripts/install-postgres` (run by `make test`) installs the server package. PostgreSQL refuses to
run as root, so as root the server runs as the `postgres` user the package creates (or `nobody`).
Password authentication (scram-sha-256) is on for TCP, so the tests can check that the password
never leaks. Outside CI a machine without the server skips these tests with a message; in CI
(CI=true) a missing server fails them.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "archscale"


def server_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Postgres:
    bin: Path
    root: Path
    port: int
    password: str
    run_as: str | None

    def url(self, database: str, with_password: bool = True) -> str:
        secret = f":{self.password}" if with_password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh database; returns its URL (with the password)."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name)
        return self.url(name)

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / tool), *args]
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        env = {**os.environ, "PGPASSWORD": self.password}
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        if r.returncode != 0:
            log = self.root / "server.log"
            raise RuntimeError(f"{tool} failed: {r.stderr[-2000:]}\n{log.read_text()[-2000:] if log.exists() else ''}")
        return r

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> Postgres:
    """A server on a fresh directory under the system temp dir (pytest's own is private to root)."""
    bin = server_bin()
    if bin is None:
        message = "PostgreSQL server not installed: run `bash scripts/install-postgres` (make test does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    run_as = None
    root = Path(tempfile.mkdtemp(prefix="archscale-postgres-"))
    if os.geteuid() == 0:  # initdb and postgres refuse root
        run_as = next((u for u in ("postgres", "nobody") if _user_exists(u)), None)
        if run_as is None:
            pytest.fail("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")
        os.chown(root, pwd.getpwnam(run_as).pw_uid, -1)
    pg = Postgres(bin=bin, root=root, port=_free_port(), password=f"pw-{secrets.token_hex(8)}", run_as=run_as)
    pwfile = root / "pwfile"
    pwfile.write_text(pg.password + "\n")
    if run_as:
        os.chown(pwfile, pwd.getpwnam(run_as).pw_uid, -1)
    pg._run(
        "initdb",
        "-D",
        str(root / "data"),
        "-U",
        USER,
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        f"--pwfile={pwfile}",
        "-E",
        "UTF8",
    )
    options = f"-p {pg.port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=100"
    pg._run("pg_ctl", "-D", str(root / "data"), "-o", options, "-l", str(root / "server.log"), "-w", "start")
    return pg


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
