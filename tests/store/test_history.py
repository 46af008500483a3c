"""Run history in the index: append-only, bounded, last rows by one scan, summary beside it."""

from __future__ import annotations

import pytest

from artfs.errors import UsageError
from artfs.store import Store, history


def test_rows_come_back_in_order_and_the_last_ones_alone(store: Store) -> None:
    with store.index.write() as txn:
        history.append(txn, "abcd1234", [history.encode_row({"n": n}) for n in range(3)])
        history.append(txn, "abcd1234", [history.encode_row({"n": 3})])
        history.append(txn, "other123", [history.encode_row({"n": 99})])
    with store.index.read() as txn:
        assert [r["n"] for r in history.rows(txn, "abcd1234")] == [0, 1, 2, 3]
        assert [r["n"] for r in history.rows(txn, "abcd1234", last=2)] == [2, 3]
        assert history.counts(txn, "abcd1234") == (4, 0)
        assert history.rows(txn, "nothing0") == []


def test_rows_over_the_bound_are_counted_not_stored(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "MAX_ROWS", 3)
    with store.index.write() as txn:
        first = history.append(txn, "abcd1234", [history.encode_row({"n": n}) for n in range(2)])
        second = history.append(
            txn, "abcd1234", [history.encode_row({"n": n}) for n in range(2, 5)]
        )
    assert (first.stored, first.dropped, second.stored, second.dropped) == (2, 0, 1, 2)
    with store.index.read() as txn:
        assert [r["n"] for r in history.rows(txn, "abcd1234")] == [0, 1, 2]
        assert history.counts(txn, "abcd1234") == (3, 2)


def test_summary_lives_beside_the_rows_and_a_huge_row_is_refused(store: Store) -> None:
    with store.index.write() as txn:
        history.put_summary(txn, "abcd1234", {"loss": 0.1})
        history.append(txn, "abcd1234", [history.encode_row({"loss": 0.1})])
    with store.index.read() as txn:
        assert history.summary(txn, "abcd1234") == {"loss": 0.1}
        assert len(history.rows(txn, "abcd1234")) == 1  # the summary is not a row
    with pytest.raises(UsageError, match="artifact files"):
        history.encode_row({"blob": "x" * (history.MAX_ROW_BYTES + 1)})
