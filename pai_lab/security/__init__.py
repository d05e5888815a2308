"""Security policies shared by every area (see :mod:`pai_lab.security.paths`)."""

from pai_lab.security.paths import Containment

__all__ = ["Containment"]
