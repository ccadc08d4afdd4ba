"""Bad input images found while expanding, collected so one plan reports them together.

A row with a bad image is counted once, however many matrix combinations it expands to; the first
`SpecProblems.LISTED` are named. `raise_collected` raises nothing when every image was good, a SpecError
for one bad row, a SpecProblems for several.
"""

from __future__ import annotations

from batchrun.errors import SpecError, SpecProblems


class ImageProblems:
    """The bad input images of one expansion: the first few named, the rest counted."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.listed: list[tuple[str, str]] = []  # (spec key, message) of the first ten rows
        self.rows = 0
        self._last_row = 0

    def add(self, key: str, row_number: int, message: str) -> None:
        """A bad image of an input row; a row already counted is not counted again."""
        if self._last_row == row_number:  # once per row, not per matrix combination
            return
        self._last_row = row_number
        self.rows += 1
        if len(self.listed) < SpecProblems.LISTED:
            self.listed.append((key, message))

    def raise_collected(self) -> None:
        """Raise the collected problems, if any."""
        if self.rows == 1:
            raise SpecError(self.shown, *self.listed[0])
        if self.listed:
            raise SpecProblems(self.shown, self.listed, self.rows)
