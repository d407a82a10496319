"""One way to write a number for people and manifests: 31536000, not 3.1536e+07; 0.5 stays 0.5."""

from __future__ import annotations


def plain(value: float) -> str:
    """``value`` without a trailing ``.0`` when it is whole (Kubernetes quantities, KEDA formulas,
    bounds in error messages and docs), else as Python writes it."""
    return str(int(value)) if float(value).is_integer() else str(value)
