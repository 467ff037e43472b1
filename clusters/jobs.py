"""Submitting a search to a Ray cluster as a Ray Job.

`archscale search submit SPACE --address http://HEAD:8265 ...` builds a wheel of this archscale
checkout, ships it with the space file through the job's runtime_env (`py_modules` takes a
wheel; `working_dir` holds the space file), and runs `archscale search run` on the head node. The
cluster's image must already have archscale's dependencies (torch, ray, optuna, polars, ...);
`--pip` adds packages. Token authentication: the client reads the token as Ray does
(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, or Ray's default token file ~/.ray/auth_token) and, when
one is there, runs in RAY_AUTH_MODE=token so it is sent.

A study storage URL with a password (`--storage postgresql://user:secret@db/optuna`) is not sent in
the entrypoint, which Ray shows in its dashboard and job list and archscale prints: the job gets the
URL without the password and the password as `PGPASSWORD` in its runtime_env (libpq reads it).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def build_wheel(dest: Path) -> Path:
    """A wheel of the installed archscale source tree (no dependencies)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").exists():
        raise ValueError(
            f"{root}: archscale is not installed from a source checkout; install the cluster image "
            "with archscale instead and pass --no-ship"
        )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest), str(root)],
        check=True,
        capture_output=True,
    )
    return next(dest.glob("archscale-*.whl"))


def without_password(run_args: list[str]) -> tuple[list[str], str | None]:
    """`run_args` with the password taken out of a `--storage` URL, and that password (or None)."""
    from archscale.clusters.connect import _PASSWORD

    args, password = list(run_args), None
    for i, arg in enumerate(args):
        if arg.startswith("--storage="):
            prefix, url = "--storage=", arg.removeprefix("--storage=")
        elif i > 0 and args[i - 1] == "--storage":
            prefix, url = "", arg
        else:
            continue
        match = _PASSWORD.search(url)
        if match:
            if not url.startswith("postgres"):
                raise ValueError(
                    "--storage: a password in a non-PostgreSQL URL cannot be passed safely to a job; "
                    "configure it on the cluster (e.g. in the database client's config) instead"
                )
            password = match["password"]
            args[i] = prefix + url[: match.start("password") - 1] + url[match.end("password") :]
    return args, password


def job_spec(space_file: str, run_args: list[str], *, wheel: Path | None, pip: list[str] | None) -> dict[str, Any]:
    """Entrypoint and runtime_env for a search job (pure: tested without a cluster)."""
    space = Path(space_file)
    run_args, password = without_password(run_args)
    runtime_env: dict[str, Any] = {"working_dir": str(space.parent.resolve()) if space.exists() else None}
    if password is not None:
        runtime_env["env_vars"] = {"PGPASSWORD": password}
    if wheel is not None:
        runtime_env["py_modules"] = [str(wheel)]
    if pip:
        runtime_env["pip"] = list(pip)
    runtime_env = {k: v for k, v in runtime_env.items() if v}
    target = space.name if space.exists() else space_file  # a shipped space name needs no file
    entrypoint = shlex.join(["python", "-m", "archscale.search.cli", "search", "run", target, *run_args])
    return {"entrypoint": entrypoint, "runtime_env": runtime_env}


def use_token_if_available() -> None:
    """Ray's clients send the token only in token mode, read when Ray is first imported: call this
    before importing ray. A local head made by Ray 2.60 requires the token; we never disable it."""
    if (
        os.environ.get("RAY_AUTH_TOKEN")
        or os.environ.get("RAY_AUTH_TOKEN_PATH")
        or (Path.home() / ".ray" / "auth_token").exists()
    ):
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def submit(
    address: str,
    space_file: str,
    run_args: list[str],
    *,
    ship: bool = True,
    pip: list[str] | None = None,
    wait: bool = False,
) -> dict[str, Any]:
    """Submit the search; return the job id and how to follow it."""
    use_token_if_available()
    from ray.job_submission import JobSubmissionClient

    tmp = Path(tempfile.mkdtemp(prefix="archscale-submit-"))
    try:
        wheel = build_wheel(tmp) if ship else None
        spec = job_spec(space_file, run_args, wheel=wheel, pip=pip)
        client = JobSubmissionClient(address)
        job_id = client.submit_job(**spec)
        info = {
            "job_id": job_id,
            "address": address,
            "entrypoint": spec["entrypoint"],
            "follow": f"ray job logs --address {address} --follow {job_id}",
            "status": f"ray job status --address {address} {job_id}",
        }
        if wait:
            import time

            from ray.job_submission import JobStatus

            while (status := client.get_job_status(job_id)) not in (
                JobStatus.SUCCEEDED,
                JobStatus.FAILED,
                JobStatus.STOPPED,
            ):
                time.sleep(1)
            info["final_status"] = str(status.value)
            info["logs"] = client.get_job_logs(job_id)[-4000:]
        return info
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
