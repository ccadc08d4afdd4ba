"""An output folder in a bucket: a local staging folder, mirrored to `s3://…` or `gs://…`.

Input: the location (`output.dir: s3://bucket/prefix`) and the environment. Output: the staging folder,
`$BATCHRUN_CACHE_DIR/staging/<sha256 of the location, 16 hex>/` (else `~/.cache/batchrun/staging/…`),
which every other part of batchrun reads and writes as the job's output folder, as if it were local.

The durability contract:
- An object store has no append and no lock, so the journal is written in the staging folder, as for a
  local folder, and the lock (`.lock`) stays there (the bucket holds only a lease, see below): a killed
  process loses nothing, and the next run on the same machine recovers the journal.
- Everything goes up but the lock and temp files: the manifest, the input cache, images, result parts, run
  records and a snapshot of the journal. A push uploads what changed since the last one, in this order:
  it takes the list of parts and the journal's bytes first, then uploads every other file (manifest,
  images), the parts, the run records and the journal snapshot; so an image is in the bucket before any
  part or journal line holding its row (as on disk). A part or journal segment removed here (superseded,
  compacted) is then removed from the bucket.
- During a run the sink compacts its journaled rows into a part and pushes every 60 s (or
  `BATCHRUN_UPLOAD_EVERY_S`) in a background thread, one push at a time; the run's end pushes whatever is
  left, and waits for it. A failed push during the run is logged and tried again at the next one.
- A lost machine (disk gone, staging gone) loses at most the results since its last push: their requests
  are pending again, and the next run, on any machine, sends them again. The journal snapshot in the
  bucket names the requests in flight at that push: the next run reports them as sent again (possibly
  billed twice), as after a local crash. Requests first sent after the last push can't be known.
- Reading (`status`, `report`, `export`, a resumed `run`) first pulls: every file in the bucket that the
  staging folder lacks is downloaded; one it holds unchanged since the last sync is replaced when the
  bucket's size or last-modified time differs from the sync record's (a push lists the bucket once to
  record the time of what it uploaded), and removed when the bucket no longer has it (a file changed here
  is kept). A pull that finds nothing asks whether the bucket exists: a mistyped bucket is one line (exit
  10), not an empty job. S3 keeps that time in whole seconds: a replacement of the same size within the second of the
  last write is not seen.
  So a second machine with only the bucket sees every uploaded result, and a folder left by a killed
  run keeps the rows it had not uploaded.
- One machine runs a job at a time: the lock is local, and a run also holds a lease in the bucket
  (`batchrun.output.lease`, renewed at each push and on a timer) that a run on another machine respects.
  An object store has no lock: two runs starting within the same second may both proceed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from batchrun.errors import StorageFailed, UsageError, missing_bucket_message
from batchrun.output.lease import LEASE_NAME, LeaseKeeper
from batchrun.output.store import ObjectStore, RemoteStamp, open_store

log = logging.getLogger(__name__)

CACHE_ENV = "BATCHRUN_CACHE_DIR"
STAGING = "staging"
SYNC_FILE = ".batchrun-store.json"  # in the staging folder: the location, and what was synced when
LOCAL_ONLY = (".lock", SYNC_FILE, LEASE_NAME)  # never mirrored (the lease lives in the bucket alone)
UPLOAD_EVERY_S = 60.0
UPLOAD_THREADS = 8  # files moved side by side, each way
UPLOAD_EVERY_ENV = "BATCHRUN_UPLOAD_EVERY_S"
LAST_GROUPS = ("results/", "runs/", "journal/")  # pushed after everything else, in this order
REMOVED_WITH_LOCAL = ("results/", "journal/")  # superseded parts, compacted segments: gone from the bucket too

Stat = tuple[int, int]  # size, mtime in ns


def staging_folder(location: str, environ: Mapping[str, str] | None = None) -> Path:
    """The local staging folder of a location (see the module docstring)."""
    env = os.environ if environ is None else environ
    root = env.get(CACHE_ENV) or os.path.join(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "batchrun")
    digest = hashlib.sha256(location.rstrip("/").encode()).hexdigest()[:16]
    return Path(root) / STAGING / digest


def is_synced_file(relative: str) -> bool:
    """Whether a file of the output folder goes to the bucket: not the lock, the sync record or a temp file."""
    return not relative.startswith(LOCAL_ONLY) and not relative.endswith(".tmp")


def group_rank(relative: str) -> int:
    """0 for everything else (manifest, images), then 1 for results/, 2 for runs/, 3 for journal/."""
    return next((number for number, group in enumerate(LAST_GROUPS, start=1) if relative.startswith(group)), 0)


def push_order(relatives: list[str]) -> list[str]:
    """Files in upload order: everything else (manifest, images), then results/, runs/, journal/."""
    return sorted(relatives, key=lambda relative: (group_rank(relative), relative))


def file_stat(path: Path) -> Stat:
    """What tells a file changed: its size and modification time."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def upload_groups(relatives: list[str]) -> list[list[str]]:
    """Files in `push_order` cut into its groups: everything else, results/, runs/, journal/."""
    groups: dict[int, list[str]] = {}
    for relative in push_order(relatives):
        groups.setdefault(group_rank(relative), []).append(relative)
    return [groups[rank] for rank in sorted(groups)]


class Mirror:
    """A staging folder and the store it mirrors; `pull` before reading, `push` after writing."""

    def __init__(self, folder: Path, store: ObjectStore, upload_every_s: float = UPLOAD_EVERY_S) -> None:
        self.folder = Path(folder)
        self.store = store
        self.upload_every_s = upload_every_s
        self._synced: dict[str, Stat] = {}  # the local stat of each file at its last sync
        self._remote: dict[str, RemoteStamp] = {}  # the bucket's stamp of each file at its last sync
        self._pushing: threading.Thread | None = None
        self.lease: LeaseKeeper | None = None  # a run's, renewed at each push; status and report have none
        self._lock = threading.Lock()  # one push (or pull) at a time
        self._load_synced()

    # -- reading

    def pull(self) -> int:
        """Download what the staging folder lacks (or holds unchanged but the bucket changed); return the count."""
        with self._lock:
            remote = self.store.list_stamps()
            if not remote and self.store.bucket_missing():
                raise StorageFailed(missing_bucket_message(self.store.location, self.store.bucket))
            self._drop_gone(remote)
            wanted = [rel for rel, stamp in sorted(remote.items())
                      if is_synced_file(rel) and self._needs_download(rel, stamp)]
            with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
                for relative, stat in zip(wanted, pool.map(self._download_one, wanted)):
                    self._synced[relative], self._remote[relative] = stat, remote[relative]
            self._adopt_stamps(remote)
            self._save_synced()
        if wanted:
            log.info("downloaded %d files from %s", len(wanted), self.store.location)
        return len(wanted)

    def _download_one(self, relative: str) -> Stat:
        self.store.download(relative, self.folder / relative)
        return file_stat(self.folder / relative)

    def _drop_gone(self, remote: dict[str, RemoteStamp]) -> None:
        """Remove here what the bucket no longer holds (compacted segments, superseded parts) unless changed here."""
        for relative in [rel for rel in self._synced if rel not in remote]:
            if self._stat(relative) in (None, self._synced[relative]):
                (self.folder / relative).unlink(missing_ok=True)
                del self._synced[relative]
                self._remote.pop(relative, None)

    def _needs_download(self, relative: str, stamp: RemoteStamp) -> bool:
        """Missing here, or unchanged here since the last sync while the bucket's size or time changed."""
        local = self._stat(relative)
        if local is None:
            return True
        if local != self._synced.get(relative):  # changed here (or never synced): kept, it goes up next
            return False
        known = self._remote.get(relative)
        return stamp.size != local[0] if known is None else stamp != known  # no stamp: synced by batchrun 0.6.0

    def _adopt_stamps(self, remote: dict[str, RemoteStamp]) -> None:
        """The bucket's stamp of each synced file that has none yet (a sync record of batchrun 0.6.0)."""
        for relative in self._synced.keys() - self._remote.keys():
            if relative in remote:
                self._remote[relative] = remote[relative]

    # -- writing

    def push(self) -> int:
        """Upload what changed since the last sync, in the contract's order; return the count."""
        with self._lock:
            journal = self._journal_snapshot()  # before listing images: each row's image is then listed
            # Removed once what replaces them is up: a segment compacted during this push goes at the next.
            removed = self._removed_files()
            changed = self._changed_files()
            for group in upload_groups(changed):  # each group whole before the next: images before parts
                self._upload_group(group)
            for relative, (stat, data) in journal.items():
                self.store.upload_bytes(data, relative)
                self._synced[relative] = stat
            for relative in removed:
                self.store.delete(relative)
                del self._synced[relative]
                self._remote.pop(relative, None)
            if changed or journal:
                self._stamp_uploaded([rel for rel in changed if rel in self._synced] + list(journal))
            self._save_synced()
            if self.lease is not None:
                self.lease.renew()
        if changed or removed:
            log.info("uploaded %d files to %s", len(changed) + len(journal), self.store.location)
        return len(changed) + len(journal)

    def _stamp_uploaded(self, relatives: list[str]) -> None:
        """The bucket's stamp of each file just uploaded (one listing): a later replacement is then seen."""
        remote = self.store.list_stamps()
        for relative in relatives:
            if relative in remote:
                self._remote[relative] = remote[relative]

    def _upload_group(self, relatives: list[str]) -> None:
        """Upload files side by side (an object store takes many puts at once; each waits on the network)."""
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            for relative, before in zip(relatives, pool.map(self._upload_one, relatives)):
                if before is not None:
                    self._synced[relative] = before

    def _upload_one(self, relative: str) -> Stat | None:
        before = self._stat(relative)  # a file replaced while it goes up is seen changed next time
        self.store.upload(self.folder / relative, relative)
        return before

    def push_soon(self) -> None:
        """Push in a background thread, unless a push is already running (the next one catches up)."""
        if self._pushing is not None and self._pushing.is_alive():
            return
        self._pushing = threading.Thread(target=self._push_logged, name="batchrun-upload", daemon=True)
        self._pushing.start()

    def wait(self) -> None:
        """Wait for a background push to end."""
        if self._pushing is not None:
            self._pushing.join()
            self._pushing = None

    def _push_logged(self) -> None:
        try:
            self.push()
        except StorageFailed as exc:  # the rows stay in the staging folder; the next push tries again
            log.warning("upload failed, tried again at the next one: %s", exc)

    def _journal_snapshot(self) -> dict[str, tuple[Stat, bytes]]:
        """The bytes of each journal segment changed since the last sync (a segment still grows)."""
        snapshot = {}
        for relative in self._local_files("journal"):
            stat = self._stat(relative)
            if stat is None or stat == self._synced.get(relative):
                continue
            try:
                snapshot[relative] = (stat, (self.folder / relative).read_bytes())
            except FileNotFoundError:  # compacted away since the listing
                continue
        return snapshot

    def _changed_files(self) -> list[str]:
        """Files to upload, but the journal: parts listed before images, so an image goes up before its row."""
        parts = self._local_files("results")
        others = [rel for rel in self._local_files("") if not rel.startswith(LAST_GROUPS)]
        runs = self._local_files("runs")
        every = push_order(others + parts + runs)
        return [rel for rel in every if self._stat(rel) not in (None, self._synced.get(rel))]

    def _removed_files(self) -> list[str]:
        """Parts and journal segments synced before and since removed here: removed from the bucket too."""
        return [rel for rel in self._synced if rel.startswith(REMOVED_WITH_LOCAL) and self._stat(rel) is None]

    def _local_files(self, under: str) -> list[str]:
        base = self.folder / under if under else self.folder
        if not base.is_dir():
            return []
        found = []
        for path in base.rglob("*"):
            relative = path.relative_to(self.folder).as_posix()
            if path.is_file() and is_synced_file(relative):
                found.append(relative)
        return found

    def _stat(self, relative: str) -> Stat | None:
        try:
            return file_stat(self.folder / relative)
        except FileNotFoundError:
            return None

    # -- the sync record

    def _load_synced(self) -> None:
        try:
            record = json.loads((self.folder / SYNC_FILE).read_text())
        except (OSError, ValueError):
            return
        if record.get("location") == self.store.location:
            self._synced = {rel: (stat[0], stat[1]) for rel, stat in record.get("synced", {}).items()}
            self._remote = {rel: RemoteStamp(*stamp) for rel, stamp in record.get("remote", {}).items()}

    def _save_synced(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / SYNC_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"location": self.store.location, "synced": self._synced, "remote": self._remote}))
        os.replace(tmp, path)


class UploadSchedule:
    """When the sink next compacts and pushes: every `every_s` seconds of the given clock."""

    def __init__(self, mirror: Mirror, clock: Callable[[], float], every_s: float = UPLOAD_EVERY_S) -> None:
        self.mirror = mirror
        self.every_s = every_s
        self._clock = clock
        self._last = clock()

    def due(self) -> bool:
        """Whether `every_s` has passed since the last push (then the next one is `every_s` from now)."""
        now = self._clock()
        if now - self._last < self.every_s:
            return False
        self._last = now
        return True


_MIRRORS: dict[Path, Mirror] = {}


def stage_location(location: str, environ: Mapping[str, str] | None = None) -> Path:
    """The staging folder of `location`, pulled from the bucket; its mirror is then `mirror_of(folder)`."""
    env = os.environ if environ is None else environ
    folder = staging_folder(location, env)
    mirror = Mirror(folder, open_store(location, env), upload_every(env))
    mirror.pull()
    _MIRRORS[folder.resolve()] = mirror
    return folder


def upload_every(environ: Mapping[str, str]) -> float:
    """Seconds between pushes during a run: `BATCHRUN_UPLOAD_EVERY_S`, else 60."""
    try:
        return max(0.0, float(environ.get(UPLOAD_EVERY_ENV) or UPLOAD_EVERY_S))
    except ValueError:
        raise UsageError(f"{UPLOAD_EVERY_ENV}={environ[UPLOAD_EVERY_ENV]!r} is not a number of seconds; "
                         f"set it to one (60 by default), or unset it") from None


def mirror_of(folder: Path) -> Mirror | None:
    """The mirror of a staging folder `stage_location` made in this process, else None (a local folder)."""
    return _MIRRORS.get(Path(folder).resolve())


def shown_output(path: Path | str) -> str:
    """Where `path` is as the user knows it: under a staging folder, its place in the bucket
    (`s3://bucket/prefix/report/index.html`); else the path as given."""
    if not _MIRRORS:
        return str(path)
    resolved = Path(path).resolve()
    for folder, mirror in _MIRRORS.items():
        if resolved == folder or folder in resolved.parents:
            relative = resolved.relative_to(folder).as_posix()
            return mirror.store.location + ("" if relative == "." else f"/{relative}")
    return str(path)


def push_output(folder: Path) -> None:
    """Wait for a background push, then upload what is left (nothing for a local folder)."""
    mirror = mirror_of(folder)
    if mirror is not None:
        mirror.wait()
        mirror.push()
