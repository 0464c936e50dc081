"""The configuration archive ("heconflib") of the HE configuration volume (pure: bytes in, bytes out).

Format (spec ovirt-host-integration.md §2.1): a tar archive of exactly ``ARCHIVE_SIZE``
(20480) bytes at offset 0 of the volume, holding five members (``MEMBERS``). Two writers
produce it, and both must be read:

- deploy: GNU tar (``--format=gnu``), owner 36/36, real mtimes, member order ``vm.conf``,
  ``broker.conf``, ``version``, ``fhanswers.conf``, ``hosted-engine.conf``;
- the original's rewrite: ustar/pax headers from Python's tarfile, uid/gid 0, empty owner
  names, mtime 0, mode 0644, order ``version``, ``fhanswers.conf``, ``hosted-engine.conf``,
  ``broker.conf``, ``vm.conf``, zero-padded to 20480 bytes.

``parse_archive`` reads either. It walks the tar headers itself, so every problem gets a
message naming what is wrong, and it trusts only the tar end marker inside the first 20480
bytes, never the volume size: on block domains the bytes after 20480 are stale, and file
domains were truncated to 20480 bytes by the original's ``dd``. ``build_archive`` writes the
rewrite dialect. ``edit_shared_hosted_engine_conf`` is the original's ``he_shared`` edit
rule (§2.4 step 3).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping

ARCHIVE_SIZE = 20480  # the archive, end marker and padding included (rhbz 1336655)
MEMBERS = ("version", "fhanswers.conf", "hosted-engine.conf", "broker.conf", "vm.conf")  # the rewrite's order
DEPLOY_ORDER = ("vm.conf", "broker.conf", "version", "fhanswers.conf", "hosted-engine.conf")
BLOCK = 512
END_MARKER = 2 * BLOCK

_REGULAR = (b"0", b"\0", b"7")  # a file (7: contiguous file, read as a file by every tar)
_TYPE_NAMES = {
    b"1": "hard link",
    b"2": "symbolic link",
    b"3": "character device",
    b"4": "block device",
    b"5": "directory",
    b"6": "FIFO",
}
_POSIX_MAGIC = b"ustar\x00"
_GNU_MAGIC = b"ustar  \x00"


class ConfArchiveError(Exception):
    """The bytes are not a usable configuration archive; the message says what is wrong."""


# --- reading ----------------------------------------------------------------------------------


def parse_archive(data: bytes) -> dict[str, str]:
    """The five members of the archive at the start of ``data``, as text, in ``MEMBERS`` order.

    ``data`` is what the volume holds from offset 0 (at most the first 20480 bytes are
    looked at). Other members are ignored, as the original's reader does; a rewrite drops
    them, as the original's did. Raises ConfArchiveError naming the problem."""
    files = _walk(memoryview(data)[:ARCHIVE_SIZE], len(data))
    missing = [name for name in MEMBERS if name not in files]
    if missing:
        held = ", ".join(files) or "no member"
        raise ConfArchiveError(
            f"the archive lacks {_names(missing)} (it holds {held}); a configuration archive holds {', '.join(MEMBERS)}"
        )
    result = {}
    for name in MEMBERS:
        try:
            result[name] = files[name].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfArchiveError(f"member {name!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return result


def _names(names: list[str]) -> str:
    return ("member " if len(names) == 1 else "members ") + ", ".join(repr(name) for name in names)


def _walk(view: memoryview, given: int) -> dict[str, bytes]:
    """Regular-file members up to the end marker: name -> content."""
    files: dict[str, bytes] = {}
    offset = 0
    pending_name: str | None = None  # from a pax 'path' record or a GNU long-name entry
    pending_size: int | None = None  # from a pax 'size' record
    while True:
        at = offset
        header = view[at : at + BLOCK]
        if len(header) < BLOCK:
            raise ConfArchiveError(_no_end_marker(given, files, at if len(header) else None))
        if header.tobytes().count(0) == BLOCK:
            if at == 0:
                raise ConfArchiveError(
                    "no archive: the first 512 bytes are all zero (a blank or wiped configuration volume)"
                )
            return files  # the end marker (GNU tar and tarfile write two zero blocks; one ends the archive)
        entry = _header(header.tobytes(), at)
        name = pending_name if pending_name is not None else entry.name
        size = pending_size if pending_size is not None else entry.size
        start = at + BLOCK
        end = start + size
        if end > len(view):
            raise ConfArchiveError(_cut_short(name, start, end, len(view), given))
        content = view[start:end].tobytes()
        offset = start + -(-size // BLOCK) * BLOCK
        if entry.kind == b"x":  # pax header for the next entry
            pending_name, pending_size = _pax(content, start)
            continue
        if entry.kind == b"g":  # pax global header: nothing in it matters here
            continue
        if entry.kind == b"L":  # GNU long name for the next entry
            pending_name = content.split(b"\0", 1)[0].decode("utf-8", "replace")
            continue
        if entry.kind == b"K":  # GNU long link name: links are refused below anyway
            continue
        pending_name = pending_size = None
        name = name.removeprefix("./").rstrip("/")  # GNU tar names a directory "dir/"
        if entry.kind not in _REGULAR:
            if name in MEMBERS:
                kind = _TYPE_NAMES.get(entry.kind, f"tar entry of type {entry.kind!r}")
                raise ConfArchiveError(f"member {name!r} is a {kind}, not a file")
            continue
        if name in files:
            raise ConfArchiveError(f"member {name!r} appears twice (again at offset {at})")
        files[name] = content


def _no_end_marker(given: int, files: Mapping[str, bytes], torn_header: int | None) -> str:
    after = f" after {', '.join(files)}" if files else ""
    if given < ARCHIVE_SIZE:
        inside = f" inside the tar header at offset {torn_header}" if torn_header is not None else ""
        return (
            f"the archive is cut short{inside}: it ends at byte {given}{after} with no tar end marker "
            f"(a configuration archive is {ARCHIVE_SIZE} bytes)"
        )
    return f"no tar end marker within the first {ARCHIVE_SIZE} bytes{after} (too large, or not a configuration archive)"


def _cut_short(name: str, start: int, end: int, available: int, given: int) -> str:
    if given < ARCHIVE_SIZE and end > given:
        return (
            f"the archive is cut short inside member {name!r}: its data needs bytes [{start}, {end}) "
            f"but only {given} bytes are there"
        )
    return (
        f"member {name!r} needs bytes [{start}, {end}), past the {available}-byte archive "
        "(damaged header, or not a configuration archive)"
    )


class _Entry:
    __slots__ = ("kind", "name", "size")

    def __init__(self, name: str, size: int, kind: bytes) -> None:
        self.name, self.size, self.kind = name, size, kind


def _header(block: bytes, offset: int) -> _Entry:
    where = "not a tar archive: the first 512 bytes are" if offset == 0 else f"the tar header at offset {offset} is"
    magic = block[257:265]
    if magic[:6] != _POSIX_MAGIC and magic != _GNU_MAGIC:
        raise ConfArchiveError(f"{where} not a tar header (no ustar or GNU tar magic: {magic!r})")
    stored_text = block[148:156]
    try:
        stored = _number(stored_text)
    except ValueError:
        raise ConfArchiveError(f"{where} not a tar header (checksum field {stored_text!r})") from None
    unsigned = sum(block[:148]) + 8 * 0x20 + sum(block[156:])
    signed = unsigned - sum(256 for byte in block[:148] + block[156:] if byte > 127)
    if stored not in (unsigned, signed):
        raise ConfArchiveError(f"{where} damaged: header checksum {stored} does not match the computed {unsigned}")
    name = _text(block[0:100])
    prefix = _text(block[345:500]) if magic[:6] == _POSIX_MAGIC else ""  # GNU keeps times there
    if prefix:
        name = f"{prefix}/{name}"
    try:
        size = _number(block[124:136])
    except ValueError:
        raise ConfArchiveError(f"{where} damaged: size field {block[124:136]!r} for {name!r}") from None
    return _Entry(name, size, block[156:157])


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "replace")


def _number(field: bytes) -> int:
    """An octal header number, or GNU's base-256 form (high bit of the first byte set)."""
    if field[:1] and field[0] & 0x80:
        value = field[0] & 0x3F
        for byte in field[1:]:
            value = value * 256 + byte
        return -value if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    return int(text, 8)


def _pax(content: bytes, offset: int) -> tuple[str | None, int | None]:
    """The 'path' and 'size' records of a pax extended header ("<len> <key>=<value>\\n")."""
    name: str | None = None
    size: int | None = None
    rest = content
    while rest.strip(b"\0"):
        length_text, space, _ = rest.partition(b" ")
        try:
            length = int(length_text)
        except ValueError:
            raise ConfArchiveError(
                f"the pax header at offset {offset} is damaged: record length {length_text!r}"
            ) from None
        if not space or length <= len(length_text) + 1 or length > len(rest):
            raise ConfArchiveError(f"the pax header at offset {offset} is damaged: record of length {length}")
        record, rest = rest[len(length_text) + 1 : length], rest[length:]
        key, _, value = record.rstrip(b"\n").partition(b"=")
        if key == b"path":
            name = value.decode("utf-8", "replace")
        elif key == b"size":
            try:
                size = int(value)
            except ValueError:
                raise ConfArchiveError(f"the pax header at offset {offset} is damaged: size {value!r}") from None
    return name, size


# --- writing ----------------------------------------------------------------------------------


def build_archive(members: Mapping[str, str]) -> bytes:
    """Exactly ``ARCHIVE_SIZE`` bytes: the five members in the rewrite's order and dialect
    (ustar/pax headers, uid/gid 0, no owner names, mode 0644, mtime 0), the end marker, zeros.
    ConfArchiveError when a member is missing or unknown, or when they do not fit."""
    missing = [name for name in MEMBERS if name not in members]
    unknown = [name for name in members if name not in MEMBERS]
    if missing or unknown:
        problems = ([f"{_names(missing)} missing"] if missing else []) + (
            [f"unknown {_names(unknown)}"] if unknown else []
        )
        raise ConfArchiveError(
            f"cannot build the archive: {'; '.join(problems)} (it holds exactly {', '.join(MEMBERS)})"
        )
    contents = {name: members[name].encode("utf-8") for name in MEMBERS}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in MEMBERS:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(contents[name]), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(contents[name]))
        used = archive.offset + END_MARKER
    if used > ARCHIVE_SIZE:
        largest = max(MEMBERS, key=lambda name: len(contents[name]))
        raise ConfArchiveError(
            f"the members do not fit: as a tar archive they take {used} bytes, {used - ARCHIVE_SIZE} more than the "
            f"{ARCHIVE_SIZE} bytes of the configuration archive (largest: {largest!r}, {len(contents[largest])} bytes)"
        )
    data = buffer.getvalue()[:used]
    return data + bytes(ARCHIVE_SIZE - len(data))


# --- the he_shared edit rule -------------------------------------------------------------------


def edit_shared_hosted_engine_conf(text: str, key: str, value: str) -> str:
    """The original's ``he_shared`` edit: each line split at its first ``=``; a line whose key
    is ``key`` and whose value differs becomes ``key=value``; every other line (comments and
    blank lines too) is kept; each kept line ends with a newline. A key found nowhere is
    appended as ``key=value`` WITHOUT a trailing newline."""
    lines = []
    found = False
    for line in text.splitlines():
        name, sep, old = line.partition("=")
        if sep and name.strip() == key and not line.lstrip().startswith("#"):
            found = True
            if old.strip() != value:
                line = f"{key}={value}"
        lines.append(line + "\n")
    if not found:
        lines.append(f"{key}={value}")
    return "".join(lines)


# --- a new archive ------------------------------------------------------------------------------

DEFAULT_BROKER_CONF = """\
[email]
smtp-server=localhost
smtp-port=25
smtp-timeout=10
destination-emails=root@localhost
source-email=root@localhost
[notify]
state_transition=maintenance|start|stop|up|down
"""  # the original package's broker.conf (spec ovirt-ha-behaviour.md §8)

# otopi answer-file keys the deploy's fhanswers.conf carries, from hosted-engine.conf keys
_FHANSWERS_KEYS = (
    ("OVEHOSTED_STORAGE/sdUUID", "sdUUID"),
    ("OVEHOSTED_STORAGE/spUUID", "spUUID"),
    ("OVEHOSTED_STORAGE/domainType", "domainType"),
    ("OVEHOSTED_VM/vmUUID", "vmid"),
)


def minimal_fhanswers(hosted_engine_conf: Mapping[str, str]) -> str:
    """An otopi answer file naming the deployment's storage and VM (what he-ha knows of it)."""
    lines = ["[environment:default]"]
    lines += [
        f"{answer}=str:{hosted_engine_conf[key]}" for answer, key in _FHANSWERS_KEYS if hosted_engine_conf.get(key)
    ]
    return "\n".join(lines) + "\n"
