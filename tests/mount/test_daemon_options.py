"""artfsd's options: a number out of range is refused at once, with the option named."""

from __future__ import annotations

from pathlib import Path

import pytest
from artfsd.main import parse_args


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--threads", "0", "0 is too small: use 1 or more"),
        ("--loaders", "-1", "-1 is too small: use 0 or more"),
        ("--cache-mb", "-5", "-5 is too small: use 0 or more"),
        ("--index-mb", "-1", "-1 is too small: use 0 or more"),
        ("--index-mb", "lots", "'lots' is not a whole number"),
    ],
)
def test_a_count_out_of_range_is_refused_naming_the_option(
    option: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["/mnt", option, value])
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error == f"artfsd: error: argument {option}: {says}"


def test_counts_at_their_least_are_taken() -> None:
    args = parse_args(["/mnt", "--threads", "1", "--loaders", "0", "--index-mb", "0"])
    assert (args.mountpoint, args.threads, args.loaders, args.index_mb) == (Path("/mnt"), 1, 0, 0)
    assert parse_args(["/mnt"]).index_mb == 256
