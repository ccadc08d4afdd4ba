"""Large input images through the Files API: which images go by file, the upload book, reuse across
requests and runs, re-upload on expiry or on a 404/403, one upload for concurrent requests."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import anyio
import httpx

from batchrun.batching.files import ImageFilesRoute
from batchrun.providers.uploads import (
    ImageUploads,
    UploadBook,
    UploadedImage,
    base64_size,
    default_book_path,
    images_by_file,
)
from batchrun.records import ImageRef

BASE = "https://files.test"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DATA = b"\x89PNG fake image bytes"
REF = ImageRef("photo.png", "sha256:" + hashlib.sha256(DATA).hexdigest(), "image/png", len(DATA), 10, 10)


def ref(name: str, size: int) -> ImageRef:
    return ImageRef(name, "sha256:" + hashlib.sha256(name.encode()).hexdigest(), "image/png", size, 1, 1)


class FakeFiles:
    """A Files API that records uploads and checks; `hold` makes every upload start wait for `release`."""

    def __init__(self, *, hold: bool = False, lifetime: timedelta = timedelta(hours=48)) -> None:
        self.held: dict[str, bytes] = {}
        self.uploads: list[bytes] = []
        self.checks: list[str] = []
        self.release = anyio.Event()
        self.hold = hold
        self.lifetime = lifetime
        self.pending: dict[str, bytes] = {}

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    async def handle(self, request: httpx.Request) -> httpx.Response:
        command = request.headers.get("x-goog-upload-command", "")
        if command == "start":
            if self.hold:
                await self.release.wait()
            return httpx.Response(200, headers={"x-goog-upload-url": f"{BASE}/up/{len(self.pending)}"})
        if command == "upload, finalize":
            return self._finalize(request.content)
        if request.method == "GET":
            name = request.url.path.removeprefix("/v1beta/")
            self.checks.append(name)
            return httpx.Response(200, json={"name": name}) if name in self.held else httpx.Response(
                404, json={"error": {"code": 404, "status": "NOT_FOUND", "message": f"{name} not found"}})
        raise AssertionError(f"unexpected {request.method} {request.url}")

    def _finalize(self, data: bytes) -> httpx.Response:
        self.uploads.append(data)
        name = f"files/f{len(self.uploads)}"
        self.held[name] = data
        expiry = (NOW + self.lifetime).isoformat().replace("+00:00", "Z")
        file = {"name": name, "uri": f"{BASE}/v1beta/{name}", "mimeType": "image/png", "expirationTime": expiry}
        return httpx.Response(200, json={"file": file}, headers={"x-goog-upload-status": "final"})


def uploads(book: UploadBook, now: datetime = NOW) -> ImageUploads:
    return ImageUploads(ImageFilesRoute(BASE, "KEY"), book, now=lambda: now)


def file_for(fake: FakeFiles, registry: ImageUploads, image: ImageRef = REF) -> UploadedImage:
    async def main() -> UploadedImage:
        async with fake.client() as client:
            return await registry.file_for(client, image, lambda: DATA)
    return anyio.run(main)


def test_an_image_is_uploaded_once_and_reused_by_later_requests(tmp_path):
    fake, registry = FakeFiles(), uploads(UploadBook(tmp_path / "book.jsonl"))
    first = file_for(fake, registry)
    second = file_for(fake, registry)
    assert first == second == UploadedImage(REF.sha256.removeprefix("sha256:"), "files/f1", f"{BASE}/v1beta/files/f1",
                                            "image/png", "2026-11-29T12:00:00Z")
    assert fake.uploads == [DATA]
    assert fake.checks == []  # uploaded in this run: known to be there


def test_a_later_run_reuses_the_recorded_upload_after_checking_it_once(tmp_path):
    fake = FakeFiles()
    file_for(fake, uploads(UploadBook(tmp_path / "book.jsonl")))
    later = uploads(UploadBook(tmp_path / "book.jsonl"))
    assert file_for(fake, later).name == "files/f1"
    assert file_for(fake, later).name == "files/f1"
    assert (len(fake.uploads), fake.checks) == (1, ["files/f1"])


def test_an_expired_upload_is_uploaded_again_without_asking_the_server(tmp_path):
    fake = FakeFiles()
    file_for(fake, uploads(UploadBook(tmp_path / "book.jsonl")))
    two_days_later = uploads(UploadBook(tmp_path / "book.jsonl"), now=NOW + timedelta(hours=48))
    assert file_for(fake, two_days_later).name == "files/f2"
    assert (len(fake.uploads), fake.checks) == (2, [])


def test_an_upload_within_an_hour_of_expiry_is_uploaded_again(tmp_path):
    fake = FakeFiles()
    file_for(fake, uploads(UploadBook(tmp_path / "book.jsonl")))
    assert file_for(fake, uploads(UploadBook(tmp_path / "book.jsonl"), now=NOW + timedelta(hours=46, minutes=59))
                    ).name == "files/f1"
    assert file_for(fake, uploads(UploadBook(tmp_path / "book.jsonl"), now=NOW + timedelta(hours=47, minutes=1))
                    ).name == "files/f2"


def test_an_upload_the_server_answers_404_for_is_uploaded_again_and_recorded(tmp_path):
    fake = FakeFiles()
    file_for(fake, uploads(UploadBook(tmp_path / "book.jsonl")))
    fake.held.clear()  # deleted, or kept by another key's project
    assert file_for(fake, uploads(UploadBook(tmp_path / "book.jsonl"))).name == "files/f2"
    assert UploadBook(tmp_path / "book.jsonl").get(REF.sha256.removeprefix("sha256:")).name == "files/f2"


def test_a_403_on_the_check_is_taken_as_gone_too(tmp_path):
    fake = FakeFiles()
    file_for(fake, uploads(UploadBook(tmp_path / "book.jsonl")))
    fake.held.clear()
    real = fake.handle

    async def forbidding(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(403, json={"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "no"}})
        return await real(request)

    fake.handle = forbidding
    assert file_for(fake, uploads(UploadBook(tmp_path / "book.jsonl"))).name == "files/f2"


def test_concurrent_requests_for_one_image_upload_it_once():
    fake, registry = FakeFiles(hold=True), uploads(UploadBook(None))
    names: list[str] = []

    async def main() -> None:
        async with fake.client() as client:
            async def one() -> None:
                names.append((await registry.file_for(client, REF, lambda: DATA)).name)

            async with anyio.create_task_group() as group:
                for _ in range(5):
                    group.start_soon(one)
                await anyio.wait_all_tasks_blocked()  # one task in the upload start, four at the lock
                fake.release.set()

    anyio.run(main)
    assert (names, len(fake.uploads)) == (["files/f1"] * 5, 1)


def test_a_forgotten_upload_is_uploaded_again(tmp_path):
    fake, registry = FakeFiles(), uploads(UploadBook(tmp_path / "book.jsonl"))
    registry.forget(file_for(fake, registry))
    assert file_for(fake, registry).name == "files/f2"
    assert file_for(fake, uploads(UploadBook(tmp_path / "book.jsonl"))).name == "files/f2"


def test_a_torn_last_line_of_the_book_is_skipped(tmp_path):
    fake = FakeFiles()
    file_for(fake, uploads(UploadBook(tmp_path / "book.jsonl")))
    with (tmp_path / "book.jsonl").open("a") as book:
        book.write('{"sha256":"ab')
    assert file_for(fake, uploads(UploadBook(tmp_path / "book.jsonl"))).name == "files/f1"


def test_the_book_holds_one_line_per_upload(tmp_path):
    file_for(FakeFiles(), uploads(UploadBook(tmp_path / "book.jsonl")))
    lines = [json.loads(line) for line in (tmp_path / "book.jsonl").read_text().splitlines()]
    assert lines == [{"sha256": REF.sha256.removeprefix("sha256:"), "name": "files/f1",
                      "uri": f"{BASE}/v1beta/files/f1", "mime": "image/png", "expiration_time": "2026-11-29T12:00:00Z"}]


def test_the_book_lives_under_the_cache_dir_one_per_base_url():
    first = default_book_path("https://a.test/", {"BATCHRUN_CACHE_DIR": "/c"})
    assert first.parent.as_posix() == "/c/uploads"
    assert first == default_book_path("https://a.test", {"BATCHRUN_CACHE_DIR": "/c"})
    assert first != default_book_path("https://b.test", {"BATCHRUN_CACHE_DIR": "/c"})
    assert default_book_path("https://a.test", {"XDG_CACHE_HOME": "/x"}).parent.as_posix() == "/x/batchrun/uploads"


def test_images_that_fit_inline_together_go_inline():
    refs = [ref("a", 300), ref("b", 300)]
    assert images_by_file(refs, 100, 100 + 2 * base64_size(300)) == []


def test_the_largest_images_go_by_file_until_the_rest_fits():
    small, large, middle = ref("small", 30), ref("large", 3000), ref("middle", 300)
    limit = 100 + base64_size(30) + base64_size(300)
    assert images_by_file([small, large, middle], 100, limit) == [large]
    assert images_by_file([small, large, middle], 100, limit - 1) == [large, middle]


def test_an_image_used_twice_in_a_request_counts_twice():
    image = ref("a", 300)
    assert images_by_file([image, image], 0, base64_size(300)) == [image]
