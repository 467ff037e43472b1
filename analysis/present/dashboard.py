"""Live dashboards for a results directory.

* optuna-dashboard on the search's study storage (``run.json`` ``storage``), bound to 127.0.0.1
  by default: the dashboard has no authentication, so expose it only through an SSH tunnel.
* The Ray dashboard address, when a Ray cluster is up. Ray is imported only here, only inside
  ``ray_dashboard_address``, and only when ``RAY_ADDRESS`` is set or ``/tmp/ray/ray_current_cluster``
  exists; no cluster is ever started.
* TensorBoard: Ray Tune writes event files under ``DIR/ray/<experiment>/``; run
  ``tensorboard --logdir DIR/ray`` (see docs/analysis.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from archscale.analysis.data.loaders import PathLike, study_storage

RAY_CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")


def ray_dashboard_address() -> str | None:
    """The running Ray cluster's dashboard URL, or None (no cluster, Ray missing, or any error)."""
    if not os.environ.get("RAY_ADDRESS") and not RAY_CURRENT_CLUSTER.exists():
        return None
    try:
        import ray  # deferred: importing ray costs seconds and must not happen at module import

        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS", "auto"), logging_level="ERROR", log_to_driver=False)
        url = ray.get_runtime_context().dashboard_url or ""
        ray.shutdown()
    except Exception:
        return None
    if not url:
        return None
    return url if url.startswith("http") else f"http://{url}"


def tensorboard_logdir(dir: PathLike) -> Path | None:
    """``DIR/ray`` when Ray Tune wrote its experiment folder there, else None."""
    path = Path(dir) / "ray"
    return path if path.is_dir() else None


def serve_dashboard(dir: PathLike, *, host: str = "127.0.0.1", port: int = 8080, storage: str | None = None) -> None:
    """Serve optuna-dashboard on the study storage of ``dir`` (blocks until interrupted); ``storage``
    overrides ``run.json``'s URL (a PostgreSQL URL recorded there without its password).

    The study names its objectives (``eval_loss``, ``kv_cache_bytes_per_token``, ...) and each trial
    carries ``label`` and ``status_reason`` user attributes (set by ``archscale search``), so the
    dashboard reads like the report."""
    import optuna_dashboard

    optuna_dashboard.run_server(study_storage(dir, storage), host=host, port=port)
