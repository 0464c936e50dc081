"""The engine-status text of a whiteboard slot header, on its own: ``hosted-engine --vm-status``
prints it without loading the codec (which loads the configuration models, pydantic)."""

from __future__ import annotations

import json
from collections.abc import Mapping


def engine_status_json(status: Mapping[str, str]) -> str:
    """The header's engine-status text: ``json.dumps`` with its default ``", "``/``": "``
    separators, which peers and scripts grep for (``"vm": "up"``)."""
    return json.dumps(dict(status))
