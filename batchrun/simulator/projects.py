"""Which key's project owns each file and batch, when the simulator counts keys apart.

Google keeps files and batches per project: a key of another project cannot get, download, cancel or
delete them, nor create a batch from another project's file, and listings show its own only. The
simulator plays each key as its own project when it counts limits per key (`limits.per_key`, or
`key_limits`): a file or batch is owned by the number of the key that made it (a results file by its
batch's), and another key is answered 403 PERMISSION_DENIED, worded as Google words it for a file.
Without per-key counting nothing is owned, and every key sees everything, as before.
"""

from __future__ import annotations

from .files import FileApiError


class Projects:
    """The owner (a key's number) of each resource name, `files/ID` or `batches/ID`."""

    def __init__(self) -> None:
        self._owners: dict[str, int] = {}

    def claim(self, name: str, key: int | None) -> None:
        """`name` was made with key number `key` (None: keys are not counted apart; nobody owns it)."""
        if key is not None:
            self._owners[name] = key

    def owner(self, name: str) -> int | None:
        return self._owners.get(name)

    def sees(self, name: str, key: int | None) -> bool:
        """Whether key number `key` may see `name`: its own, or one nobody owns."""
        owner = self._owners.get(name)
        return owner is None or owner == key

    def check(self, name: str, key: int | None) -> None:
        """FileApiError 403 when `name` belongs to another key's project."""
        if not self.sees(name, key):
            kind = "File" if name.startswith("files/") else "Batch"
            raise FileApiError(403, "PERMISSION_DENIED",
                               f"You do not have permission to access the {kind} {name} or it may not exist.")
