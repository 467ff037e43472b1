"""Connecting to Ray: one place, so search code never decides where it runs.

- no address and no RAY_ADDRESS: start an embedded local Ray (token authentication stays on, as
  Ray 2.60 sets it for local clusters);
- `--address ADDR` or RAY_ADDRESS: join that running cluster (`auto` finds a local head);
- `ray://HOST:10001`: Ray Client.
Jobs submission (`http://HEAD:8265`) lives in `archscale.clusters.jobs`.
"""

from __future__ import annotations

import os
import re
from typing import Any

_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@]+:)(?P<password>[^@]+)(?P<at>@)")


def redact(url: str | None) -> str | None:
    """A URL with any password replaced by ***, for printing and logging."""
    if url is None:
        return None
    return _PASSWORD.sub(lambda m: f"{m['scheme']}***{m['at']}", url)


def scrub(text: str, url: str | None) -> str:
    """`text` (an error message, a log line) with the password of `url`, and any URL password, hidden."""
    match = _PASSWORD.search(url or "")
    if match and match["password"]:
        text = text.replace(match["password"], "***")
    return redact(text)


def connect(address: str | None = None) -> dict[str, Any]:
    """Initialise Ray once per process; return a description of the cluster (address, resources)."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": True,
            "logging_level": "ERROR",
        }
        ray.init(address=address, **kwargs)  # None: an embedded Ray with this machine's resources
    resources = ray.cluster_resources()
    return {
        "address": address or "embedded",
        "cpus": resources.get("CPU", 0),
        "gpus": resources.get("GPU", 0),
        "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
        "dashboard_url": _dashboard_url(),
    }


def _dashboard_url() -> str | None:
    try:
        from ray._private.worker import global_worker

        url = global_worker.node.address_info.get("webui_url") if global_worker.node else None
        return f"http://{url}" if url else None
    except Exception:
        return None
