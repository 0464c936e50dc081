"""Typed look-ups in parsed XML for tests: a missing element fails the test at the look-up,
naming the path, instead of as an AttributeError on None further on."""

from __future__ import annotations

import xml.etree.ElementTree as ET


def must_find(element: ET.Element, path: str) -> ET.Element:
    """``element.find(path)``, asserting that it is there."""
    found = element.find(path)
    assert found is not None, f"no {path!r} under <{element.tag}>"
    return found
