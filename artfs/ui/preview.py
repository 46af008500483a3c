"""What a file's preview shows, from its first bytes (pure: no I/O).

Only the head of a file is read (``PREVIEW_BYTES``), so previewing a 10 GB file costs what
previewing a small one does. Kinds, decided by the name first and the bytes second:

- ``image``: PNG, JPEG, GIF, WebP (by magic number; drawn by the browser from the file URL);
- ``csv``: the first ``CSV_ROWS`` rows as a table (``.csv``/``.tsv``);
- ``json``: pretty-printed when the whole file is in the head and parses, else as text;
- ``text``: UTF-8 without NUL bytes;
- ``binary``: anything else (size and digest only, and the download).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

PREVIEW_BYTES = 64 * 1024
CSV_ROWS = 50
# SVG is left out on purpose: it can carry scripts, and is shown as text instead.
IMAGE_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


def image_type(head: bytes) -> str | None:
    """The MIME type of an image the browser may draw, from its first bytes; else None."""
    for magic, mime in IMAGE_MAGIC.items():
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _text(head: bytes, complete: bool) -> str | None:
    """The head as text, or None if it is not UTF-8 text. A multi-byte character cut at the
    end of an incomplete head is dropped, not taken for binary."""
    if b"\0" in head:
        return None
    data = head
    for _ in range(4):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if complete or exc.start < len(data) - 3:
                return None
            data = data[: exc.start]
    return None


def _csv_rows(text: str, name: str, complete: bool) -> list[list[str]]:
    lines = text.splitlines()
    if not complete and lines:
        lines = lines[:-1]  # the last line of a cut head is partial
    delimiter = "\t" if name.lower().endswith(".tsv") else ","
    reader = csv.reader(io.StringIO("\n".join(lines[: CSV_ROWS + 1])), delimiter=delimiter)
    return [row for row, _ in zip(reader, range(CSV_ROWS + 1), strict=False)]


def preview(name: str, head: bytes, size: int) -> dict[str, Any]:
    """The preview of a file named ``name`` of ``size`` bytes whose first bytes are ``head``."""
    complete = len(head) >= size
    mime = image_type(head)
    if mime is not None:
        return {"kind": "image", "mime": mime}
    text = _text(head, complete)
    if text is None:
        return {"kind": "binary"}
    lower = name.lower()
    if lower.endswith((".csv", ".tsv")):
        rows = _csv_rows(text, name, complete)
        return {"kind": "csv", "header": rows[0] if rows else [], "rows": rows[1:]}
    if lower.endswith(".json") and complete:
        try:
            value = json.loads(text)
        except ValueError:
            pass
        else:
            pretty = json.dumps(value, indent=2, ensure_ascii=False)
            return {"kind": "json", "text": pretty, "truncated": False}
    return {"kind": "text", "text": text, "truncated": not complete}
