"""The four OVFs written by real engines (shared/data/ovf), found beside this checkout.

Developers' machines and CI lay the project's shared/ folder next to the repository
(``<checkout>/../shared``), so the path is derived from this file, never hard-coded.
A missing folder is a test error, not a skip.
"""

from __future__ import annotations

from pathlib import Path

OVF_SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ovf"
OVF_42 = OVF_SAMPLES / "ovf_test_v4.2.xml"  # 4.2 era, with a safe EngineXml
