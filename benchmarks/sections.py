"""One benchmark's own section of benchmarks/RESULTS.md, rewritten in place between its two markers (appended at
the end the first time), everything else kept: `benchmarks.serving` rewrites the top, the others their sections."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, text: str, results: Path = RESULTS) -> None:
    """Put `text` between `<!-- begin NAME -->` and `<!-- end NAME -->` in RESULTS.md."""
    begin, end = f"<!-- begin {name} -->\n", f"<!-- end {name} -->\n"
    before = results.read_text() if results.is_file() else ""
    section = begin + text.rstrip("\n") + "\n" + end
    if begin in before and end in before:
        start, stop = before.index(begin), before.index(end) + len(end)
        results.write_text(before[:start] + section + before[stop:])
    else:
        results.write_text(before.rstrip("\n") + "\n\n" + section)
