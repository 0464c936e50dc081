"""Reading and editing broker.conf's INI text line by line, keeping everything else as written.

configparser can read the file but would rewrite it without its comments; an admin's
comments in broker.conf must survive ``--set-shared-config``. So an edit replaces only the
option's own line (and the continuation lines of its old value), or adds the option at the
end of its section, or adds the section at the end of the file.
"""

from __future__ import annotations

import configparser
import re

_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\]\s*$")
_OPTION = re.compile(r"^(?P<option>[^=:\s][^=:]*?)\s*[=:]")


def ini_values(text: str, source: str) -> dict[str, str]:
    """``section.option`` -> value for every option in the text (configparser's reading:
    no interpolation, option names lower-cased). Raises configparser.Error."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text, source=source)
    return {
        f"{section}.{option}": value
        for section in parser.sections()
        for option, value in parser.items(section, raw=True)
    }


def _continues(line: str) -> bool:
    """An indented non-blank line continues the previous option's value (configparser)."""
    return bool(line.strip()) and line[0] in " \t"


def edit_ini_text(text: str, section: str, option: str, value: str) -> str:
    """Set ``option = value`` in ``[section]``, adding the section or option if missing."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    new_line = f"{option} = {value}\n"
    current: str | None = None
    last_in_section: int | None = None  # index of the section's last non-blank line
    index = 0
    while index < len(lines):
        line = lines[index]
        header = _SECTION.match(line.strip())
        if header:
            current = header.group("name").strip()
            if current == section:
                last_in_section = index
        elif current == section and line.strip():
            last_in_section = index
            found = _OPTION.match(line)
            if found and found.group("option").strip().lower() == option.lower():
                end = index + 1
                while end < len(lines) and _continues(lines[end]):
                    end += 1
                return "".join([*lines[:index], new_line, *lines[end:]])
        index += 1
    if last_in_section is not None:
        return "".join([*lines[: last_in_section + 1], new_line, *lines[last_in_section + 1 :]])
    separator = "\n" if lines and lines[-1].strip() else ""
    return "".join(lines) + f"{separator}[{section}]\n{new_line}"
