"""archscale.clusters: where a search runs — embedded Ray, a local head, a remote address, Ray Jobs."""

from archscale.clusters.connect import connect, redact

__all__ = ["connect", "redact"]
