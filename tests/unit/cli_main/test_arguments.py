"""The argument rules of the shim's commands (cli/arguments.py): the original's fixed positions
with the rest ignored, the original agent's optparse for --clean-metadata, and he-ha's strict
rules for its own commands."""

from __future__ import annotations

import pytest

from cli.arguments import HelpRequested, Parsed, Rules, Syntax, UsageError, ignored_line
from cli.cmd_repair import CLEAN_SYNTAX

FIXED = Syntax(flags=("--json", "--watch"), valued=("--watch", "--type"), positional=1, rules=Rules.FIXED)


def split(syntax: Syntax, *args: str) -> Parsed:
    return syntax.split("--cmd", args)


# --- FIXED: what the original ignored is ignored (and reported) ------------------------------------


def test_fixed_takes_its_options_anywhere_and_ignores_the_rest() -> None:
    parsed = split(FIXED, "--bogus", "key", "--type=ha", "extra", "--json", "-f")
    assert parsed == Parsed({"--type": "ha", "--json": True}, ["key"], ["--bogus", "extra", "-f"])


def test_fixed_option_both_flag_and_valued() -> None:
    assert split(FIXED, "--watch").options == {"--watch": True}
    assert split(FIXED, "--watch=5").options == {"--watch": "5"}


def test_fixed_flag_with_a_value_is_not_the_flag() -> None:
    assert split(FIXED, "--json=1") == Parsed({}, [], ["--json=1"])  # the original compared the whole word


def test_fixed_known_option_in_a_form_it_does_not_take_is_refused() -> None:
    with pytest.raises(UsageError, match=r"^--cmd: option --type needs a value: --type=<value>$"):
        split(FIXED, "--type", "ha")


def test_fixed_takes_no_prefixes() -> None:
    assert split(FIXED, "--js") == Parsed({}, [], ["--js"])


def test_the_ignored_line_quotes_as_a_shell_would() -> None:
    assert ignored_line("--vm-shutdown", ["--force"]) == (
        "--vm-shutdown: ignored argument --force (the original hosted-engine ignores it too)"
    )
    assert ignored_line("--vm-status", ["a b", "it's"]) == (
        "--vm-status: ignored arguments 'a b' 'it'\"'\"'s' (the original hosted-engine ignores them too)"
    )


def test_parse_prints_one_line_only_when_something_was_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    FIXED.parse("--cmd", ["--json"])
    assert capsys.readouterr().err == ""
    FIXED.parse("--cmd", ["x", "y", "z"])
    assert capsys.readouterr().err == "--cmd: ignored arguments y z (the original hosted-engine ignores them too)\n"


# --- STRICT: he-ha's own commands --------------------------------------------------------------------


def test_strict_refuses_what_it_does_not_know() -> None:
    strict = Syntax(flags=("--dry-run",), valued=("--io-timeout",), ignore=("--force",))
    assert split(strict, "--dry-run", "--io-timeout=5", "--force") == Parsed(
        {"--dry-run": True, "--io-timeout": "5"}, [], ["--force"]
    )
    for bad in ("--dry", "extra", "--forced"):
        with pytest.raises(UsageError, match=rf"^Invalid option '{bad}' for --cmd$"):
            split(strict, bad)


# --- OPTPARSE: --clean-metadata as the original agent parsed it ----------------------------------------


@pytest.mark.parametrize(
    ("args", "options"),
    [
        (["--force-clean"], {"--force-cleanup": True}),  # what the agent's own message suggests
        (["--force"], {"--force-cleanup": True}),
        (["--force-cleanup"], {"--force-cleanup": True}),
        (["--host-id", "2"], {"--host-id": "2"}),
        (["--host-id=2"], {"--host-id": "2"}),
        (["--host=2"], {"--host-id": "2"}),
        (["--host", "2", "--force"], {"--host-id": "2", "--force-cleanup": True}),
        (["--host-id", "--force"], {"--host-id": "--force"}),  # optparse takes the next word as the value
        (["--host-id=2", "--host-id=3"], {"--host-id": "3"}),  # the last one counts
        (["--dry", "--unr"], {"--dry-run": True, "--unreadable": True}),  # he-ha's options: the same rules
    ],
)
def test_optparse_forms(args: list[str], options: dict[str, str | bool]) -> None:
    assert split(CLEAN_SYNTAX, *args) == Parsed(options, [], [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--h"], "--cmd: ambiguous option: --h (--help, --host-id?)"),
        (["--force-clean=yes"], "--cmd: --force-cleanup option does not take a value"),
        (["--host"], "--cmd: --host-id option requires 1 argument"),
        (["--pdb"], "--cmd: no such option: --pdb"),
        (["--forcecleanup"], "--cmd: no such option: --forcecleanup"),
        (["-x"], "--cmd: no such option: -x"),
        (["-fv"], "--cmd: no such option: -f"),
    ],
)
def test_optparse_errors(args: list[str], message: str) -> None:
    with pytest.raises(UsageError) as raised:
        split(CLEAN_SYNTAX, *args)
    assert str(raised.value) == message


@pytest.mark.parametrize("args", [["-h"], ["--help"], ["--he"], ["--force", "--hel"]])
def test_optparse_help(args: list[str]) -> None:
    with pytest.raises(HelpRequested):
        split(CLEAN_SYNTAX, *args)


def test_optparse_positional_words_are_ignored_and_double_dash_ends_the_options() -> None:
    assert split(CLEAN_SYNTAX, "now", "--force", "--", "--host-id=2", "-") == Parsed(
        {"--force-cleanup": True}, [], ["now", "--host-id=2", "-"]
    )
