"""``artfs config``: store settings, and the privacy setting for run command lines."""

from __future__ import annotations

from typing import Any


def test_settings_list_set_and_refuse_unknown(run_cli: Any) -> None:
    code, _, err = run_cli("config")  # showing needs a store; setting makes one
    assert code == 1 and "no artfs store" in err
    run_cli("config", "record_command_lines", "true", check=True)
    assert run_cli("config", check=True).stdout == ("entity = none\nrecord_command_lines = true\n")
    assert run_cli("config", "record_command_lines", "off", check=True).stdout == (
        "record_command_lines = false\n"
    )
    code, out, err = run_cli("config", "colour", "blue")
    assert code == 2 and out == "" and err.startswith("artfs: error: unknown setting 'colour'")
    assert err.rstrip().endswith("known settings are entity, record_command_lines")
    code, _, err = run_cli("config", "record_command_lines", "maybe")
    assert code == 2 and "use true or false" in err
    assert run_cli("config", "record_command_lines", check=True).stdout.endswith("= false\n")


def test_the_entity_is_listed_with_the_settings(run_cli: Any) -> None:
    run_cli("config", "entity", "my-team", check=True)
    assert run_cli("config", check=True).stdout.splitlines() == [
        "entity = my-team",
        "record_command_lines = true",
    ]
    assert run_cli("config", "entity", "none", check=True).stdout == "entity = none\n"
    assert run_cli("config", "entity", check=True).stdout == "entity = none\n"


def test_command_lines_are_kept_unless_the_store_says_not_to(run_cli: Any) -> None:
    run_cli("run", "--project", "p", "--", "true", "--token=s3cret", check=True)
    (kept,) = run_cli("runs", "--json", check=True).json()
    assert kept["command"] == ["true", "--token=s3cret"]

    run_cli("config", "record_command_lines", "false", check=True)
    run_cli("run", "--project", "p", "--", "true", "--token=s3cret", check=True)
    runs = run_cli("runs", "--json", check=True).json()
    assert [r["command"] for r in runs] == [["true", "--token=s3cret"], []]
    assert "s3cret" not in run_cli("runs", check=True).stdout.split("\n", 2)[2]


def test_a_long_command_is_cut_with_dots_in_the_runs_table(run_cli: Any) -> None:
    run_cli("run", "--project", "p", "--", "true", "a" * 100, check=True)
    table = run_cli("runs", check=True).stdout
    assert "true " + "a" * 52 + "..." in table and "a" * 53 not in table
    (whole,) = run_cli("runs", "--json", check=True).json()
    assert whole["command"] == ["true", "a" * 100]
