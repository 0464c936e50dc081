"""broker.conf edits keep everything but the option's own line; configparser reads the result."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cli.ini_text import edit_ini_text, ini_values

TEXT = "# top\n[email]\nSMTP-Server = old\n  continued\n; note\n\n[notify]\nstate_transition = up\n"


def test_replaces_the_option_and_its_continuation_lines() -> None:
    assert edit_ini_text(TEXT, "email", "smtp-server", "new") == (
        "# top\n[email]\nsmtp-server = new\n; note\n\n[notify]\nstate_transition = up\n"
    )


def test_adds_to_the_end_of_the_section_or_a_new_section() -> None:
    assert edit_ini_text(TEXT, "notify", "extra", "1").endswith("state_transition = up\nextra = 1\n")
    assert edit_ini_text(TEXT, "email", "smtp-port", "25").startswith(
        "# top\n[email]\nSMTP-Server = old\n  continued\n; note\nsmtp-port = 25\n\n[notify]"
    )
    assert edit_ini_text("[a]\nx = 1", "b", "y", "2") == "[a]\nx = 1\n\n[b]\ny = 2\n"
    assert edit_ini_text("", "b", "y", "2") == "[b]\ny = 2\n"


def test_a_commented_option_is_not_the_option() -> None:
    assert edit_ini_text("[email]\n# smtp-port = 1\n", "email", "smtp-port", "2") == (
        "[email]\n# smtp-port = 1\nsmtp-port = 2\n"
    )


def test_colon_separator_and_same_option_in_another_section() -> None:
    text = "[a]\nkey: 1\n[b]\nkey = 1\n"
    assert edit_ini_text(text, "b", "key", "2") == "[a]\nkey: 1\n[b]\nkey = 2\n"
    assert edit_ini_text(text, "a", "key", "2") == "[a]\nkey = 2\n[b]\nkey = 1\n"


values = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40).map(str.strip)


@given(first=values, second=values)
def test_configparser_reads_back_what_was_set(first: str, second: str) -> None:
    text = edit_ini_text(TEXT, "email", "smtp-server", first)
    text = edit_ini_text(text, "other", "x", second)
    read = ini_values(text, "broker.conf")
    assert read["email.smtp-server"] == first and read["other.x"] == second
    assert read["notify.state_transition"] == "up"
