"""Bad input images found while expanding, collected so one plan reports them together.

A row with a bad image is counted once, however many matrix combinations it expands to; the first
`SpecProblems.LISTED` are named. `raise_collected` raises nothing when every image was good, a SpecError
for one bad row, a SpecProblems for several. With `skip` (`--skip-bad-inputs`) nothing is raised: each
bad row is kept in `skipped` (its number, id, image and reason) for the plan summary and
`skipped_inputs.csv`, and left out of the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchrun.errors import SpecError, SpecProblems
from batchrun.records import shown_source


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """An input row left out of the plan for a bad image."""

    row: int  # 1-based input row
    ident: str  # the id column's value, "" without one
    image: str  # the path or URL as written (a URL's query hidden)
    reason: str


class ImageProblems:
    """The bad input images of one expansion: the first few named, the rest counted."""

    def __init__(self, shown: str, *, skip: bool = False) -> None:
        self.shown = shown
        self.skip = skip
        self.skipped: list[SkippedRow] = []
        self.listed: list[tuple[str, str]] = []  # (spec key, message) of the first ten rows
        self.rows = 0
        self._last_row = 0

    def add(self, key: str, row_number: int, message: str, *, image: str = "", ident: str = "",
            reason: str = "") -> None:
        """A bad image of an input row; a row already counted is not counted again."""
        if self._last_row == row_number:  # once per row, not per matrix combination
            return
        self._last_row = row_number
        self.rows += 1
        if self.skip:
            self.skipped.append(SkippedRow(row_number, ident, shown_source(image), reason or message))
            return
        if len(self.listed) < SpecProblems.LISTED:
            self.listed.append((key, message))

    def raise_collected(self) -> None:
        """Raise the collected problems, if any (none when skipping bad rows)."""
        if self.skip:
            return
        if self.rows == 1:
            raise SpecError(self.shown, *self.listed[0])
        if self.listed:
            raise SpecProblems(self.shown, self.listed, self.rows)

