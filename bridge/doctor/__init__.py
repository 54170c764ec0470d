"""``bridge doctor``: what an upstream offers, and how each JMAP feature will fare on it.

``examine`` connects (reporting TLS, or why it failed), logs in, and looks around read-only;
``render`` turns the report into text (``msgspec.json`` gives the machine form).
"""

from __future__ import annotations

from bridge.doctor.examine import examine
from bridge.doctor.report import Feature, Report, render

__all__ = ["Feature", "Report", "examine", "render"]
