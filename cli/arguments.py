"""How each ``hosted-engine`` command reads its arguments: the original's rules, declared
per command as a ``Syntax``.

The original's wrapper hands each command's arguments to its handler (spec
hosted-engine-cli.md §1 "Dispatch"), and the handlers read them in one of three ways, which
``Rules`` names:

- ``FIXED``: the handler looks at fixed positions (``--mode=``, ``--vm-conf=``, ``--json``,
  a key and a value) and silently ignores every other argument. he-ha takes its options
  anywhere and ignores the rest too, but says so: one stderr line names what was ignored
  (``--vm-shutdown --force``, from public troubleshooting notes, shuts the VM down).
- ``OPTPARSE``: ``--clean-metadata`` hands everything to the original agent's optparse:
  unique prefixes of long options (``--force`` for ``--force-cleanup``, ``--host`` for
  ``--host-id``), values as ``--opt=value`` or ``--opt value``, ``--`` ending the options,
  and an error for an unknown or ambiguous option, in optparse's words. he-ha's extra
  options of the command follow the same rules.
- ``STRICT``: he-ha's own commands and options (no original to follow): exact names,
  ``--opt=value``; anything else is refused naming it.

An option he-ha knows, given in a form the rules do not take (``--vm-conf /path`` under
FIXED), is refused rather than ignored: its intent is plain, and starting from another file
than the one meant is worse than an error.
"""

from __future__ import annotations

import enum
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

HELP = "--help"


class UsageError(Exception):
    """A wrong argument; the message names it (printed on stderr, exit 1)."""


class HelpRequested(Exception):
    """optparse's ``--help`` (or a prefix of it, or ``-h``) among the arguments: the command's
    help is printed and nothing is done (exit 0)."""


class Rules(enum.Enum):
    FIXED = "fixed"
    OPTPARSE = "optparse"
    STRICT = "strict"


@dataclass(frozen=True)
class Parsed:
    options: dict[str, str | bool]  # by the option's full name
    values: list[str]  # the positional values taken
    ignored: list[str] = field(default_factory=list)  # as given, in order


@dataclass(frozen=True)
class Syntax:
    """What one command accepts and by which rules.

    ``flags`` take no value (``--json``); ``valued`` take one (``--mode=global``); an option
    in both (``--watch``) may be given either way. ``positional``: how many plain values are
    taken. ``ignore``: options accepted and reported as ignored (``--force`` anywhere but
    first for ``--reinitialize-lockspace``, as the original did)."""

    flags: tuple[str, ...] = ()
    valued: tuple[str, ...] = ()
    positional: int = 0
    rules: Rules = Rules.STRICT
    ignore: tuple[str, ...] = ()

    def parse(self, command: str, args: Sequence[str]) -> Parsed:
        """``split``, then the one stderr line naming what was ignored (if anything was)."""
        parsed = self.split(command, args)
        if parsed.ignored:
            print(ignored_line(command, parsed.ignored), file=sys.stderr)
        return parsed

    def split(self, command: str, args: Sequence[str]) -> Parsed:
        """The options, values and ignored arguments; UsageError or HelpRequested."""
        if self.rules is Rules.OPTPARSE:
            return self._optparse(command, list(args))
        options: dict[str, str | bool] = {}
        values: list[str] = []
        ignored: list[str] = []
        for arg in args:
            name, sep, value = arg.partition("=")
            if arg in self.flags:
                options[arg] = True
            elif name in self.valued and sep:
                options[name] = value
            elif name in self.valued:
                raise UsageError(f"{command}: option {name} needs a value: {name}=<value>")
            elif arg in self.ignore:
                ignored.append(arg)
            elif not arg.startswith("--") and len(values) < self.positional:
                values.append(arg)
            elif self.rules is Rules.FIXED:
                ignored.append(arg)
            else:
                raise UsageError(f"Invalid option '{arg}' for {command}")
        return Parsed(options, values, ignored)

    def _optparse(self, command: str, rest: list[str]) -> Parsed:
        """optparse's long-option handling (Lib/optparse.py ``_process_long_opt``, ``_match_abbrev``)."""
        options: dict[str, str | bool] = {}
        plain: list[str] = []
        known = (*self.flags, *self.valued, HELP)
        while rest:
            arg = rest.pop(0)
            if arg == "--":
                plain += rest
                break
            if arg == "-h":
                raise HelpRequested()
            if arg.startswith("--"):
                given, sep, value = arg.partition("=")
                name = _match_abbrev(command, given, known)
                if name == HELP:
                    raise HelpRequested()
                if name in self.valued:
                    if not sep:
                        if not rest:
                            raise UsageError(f"{command}: {name} option requires 1 argument")
                        value = rest.pop(0)
                    options[name] = value
                elif sep:
                    raise UsageError(f"{command}: {name} option does not take a value")
                else:
                    options[name] = True
            elif arg.startswith("-") and arg != "-":
                raise UsageError(f"{command}: no such option: {arg[:2]}")
            else:
                plain.append(arg)
        return Parsed(options, plain[: self.positional], plain[self.positional :])


def _match_abbrev(command: str, given: str, known: Sequence[str]) -> str:
    if given in known:
        return given
    matches = sorted(name for name in known if name.startswith(given))
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"{command}: ambiguous option: {given} ({', '.join(matches)}?)")
    raise UsageError(f"{command}: no such option: {given}")


def ignored_line(command: str, ignored: Sequence[str]) -> str:
    """One line: which arguments were ignored (quoted as a shell would need them)."""
    noun, them = ("argument", "it") if len(ignored) == 1 else ("arguments", "them")
    return f"{command}: ignored {noun} {shlex.join(ignored)} (the original hosted-engine ignores {them} too)"
