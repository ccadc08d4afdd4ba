"""Photos by URL fetched into the input cache, against a real HTTP server on 127.0.0.1 that logs requests."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from photo_server import photo_bytes, serve_photos

from batchrun.errors import ImageProblem
from batchrun.planning.inputcache import CachedUrl, InputCache, cached_image_path
from batchrun.planning.urlfetch import FetchSettings, UrlFetcher, fetch_all
from batchrun.records import shown_source

QUICK = FetchSettings(timeout_s=0.5, attempts=2, wait_initial_s=0, wait_max_s=0, max_bytes=100_000)


@pytest.fixture
def server():
    with serve_photos() as running:
        yield running


def fetch(server, cache, *paths, refresh=False, settings=QUICK):
    urls = [server.url + path for path in paths]
    found = fetch_all(urls, cache, settings, refresh=refresh)
    return [found[url] for url in urls]


def test_a_photo_is_stored_under_its_hash_with_its_validators(server, tmp_path):
    cache = InputCache(tmp_path)
    [entry] = fetch(server, cache, "/photo/1.png")
    data = photo_bytes(1)
    assert entry == CachedUrl(hashlib.sha256(data).hexdigest(), "image/png", '"photo-1"', "Wed, 01 Jul 2026 10:00:00 GMT")
    assert cached_image_path(tmp_path, entry.sha256, "image/png").read_bytes() == data
    assert InputCache(tmp_path).url(server.url + "/photo/1.png") == entry  # the index was saved


def test_a_redirect_is_followed(server, tmp_path):
    [entry] = fetch(server, InputCache(tmp_path), "/redirect/7")
    assert entry.sha256 == hashlib.sha256(photo_bytes(7)).hexdigest()
    assert [e.path for e in server.log] == ["/redirect/7", "/photo/7.png"]


def test_redirects_are_bounded(server, tmp_path):
    [problem] = fetch(server, InputCache(tmp_path), "/loop", settings=FetchSettings(max_redirects=3, attempts=1))
    assert str(problem) == f"{server.url}/loop: more than 3 redirects; link the photo's final address"
    assert len(server.requests_to("/loop")) == 4


def test_a_404_is_final_and_named(server, tmp_path):
    [problem] = fetch(server, InputCache(tmp_path), "/missing.png")
    assert isinstance(problem, ImageProblem)
    assert str(problem) == f"{server.url}/missing.png: HTTP 404; check the URL (is the photo public?)"
    assert len(server.requests_to("/missing.png")) == 1


def test_a_503_is_retried_and_recovers(server, tmp_path):
    [entry] = fetch(server, InputCache(tmp_path), "/flaky/1.png")
    assert entry.sha256 == hashlib.sha256(photo_bytes(900)).hexdigest()
    assert len(server.requests_to("/flaky/1.png")) == 2


def test_a_slow_answer_past_the_timeout_fails_after_its_attempts(server, tmp_path):
    [problem] = fetch(server, InputCache(tmp_path), "/slow.png")
    assert str(problem) == f"{server.url}/slow.png: no answer within 0.5 s (after 2 attempts)"


def test_a_page_served_for_a_photo_is_refused_naming_what_came_back(server, tmp_path):
    [problem] = fetch(server, InputCache(tmp_path), "/page.png")
    assert str(problem) == (f"{server.url}/page.png: the server sent text/html, 48 bytes, not an image Pillow can "
                            "read; link a PNG, JPEG or WebP photo itself, not a page")


def test_the_bytes_decide_not_the_content_type(server, tmp_path):
    [entry] = fetch(server, InputCache(tmp_path), "/mislabelled.png")
    assert entry.mime == "image/png"


def test_a_body_over_the_cap_is_refused(server, tmp_path):
    [problem] = fetch(server, InputCache(tmp_path), "/big.png")
    assert str(problem) == f"{server.url}/big.png: the body is over 100,000 bytes, the size cap; link a smaller photo"
    assert list(tmp_path.glob("*.png")) == []


def test_a_known_url_is_reused_without_a_request(server, tmp_path):
    fetch(server, InputCache(tmp_path), "/photo/3.png")
    [entry] = fetch(server, InputCache(tmp_path), "/photo/3.png")
    assert entry.etag == '"photo-3"'
    assert len(server.requests_to("/photo/3.png")) == 1


def test_refresh_revalidates_and_a_304_keeps_the_cached_bytes(server, tmp_path):
    [first] = fetch(server, InputCache(tmp_path), "/photo/4.png")
    [again] = fetch(server, InputCache(tmp_path), "/photo/4.png", refresh=True)
    assert again == first
    second = server.requests_to("/photo/4.png")[1]
    assert (second.if_none_match, second.if_modified_since) == ('"photo-4"', "Wed, 01 Jul 2026 10:00:00 GMT")


def test_a_url_whose_cached_bytes_are_gone_is_fetched_again(server, tmp_path):
    [entry] = fetch(server, InputCache(tmp_path), "/photo/5.png")
    cached_image_path(tmp_path, entry.sha256, entry.mime).unlink()
    fetch(server, InputCache(tmp_path), "/photo/5.png")
    assert [e.if_none_match for e in server.requests_to("/photo/5.png")] == [None, None]


def test_many_urls_are_fetched_at_once_each_once(server, tmp_path):
    found = fetch(server, InputCache(tmp_path), *[f"/photo/{n}.png" for n in range(40)],
                  settings=FetchSettings(connections=8))
    assert len({entry.sha256 for entry in found}) == 40
    assert sorted(e.path for e in server.log) == sorted(f"/photo/{n}.png" for n in range(40))


def test_a_refused_connection_is_retried_then_named(tmp_path):
    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    cache = InputCache(tmp_path)
    url = "https://user:secret@photos.example/a.png?X-Amz-Signature=abc"
    found = fetch_all([url], cache, QUICK, transport=httpx.MockTransport(refuse))
    assert str(found[url]) == "https://photos.example/a.png?…: could not connect (ConnectError) (after 2 attempts)"


@pytest.mark.parametrize(("url", "shown"), [
    ("https://cdn.example/p/1.jpg", "https://cdn.example/p/1.jpg"),
    ("https://cdn.example/p/1.jpg?X-Amz-Signature=abc&X-Amz-Credential=k", "https://cdn.example/p/1.jpg?…"),
    ("https://me:pw@cdn.example:8443/p.jpg?t=1#frag", "https://cdn.example:8443/p.jpg?…"),
    ("photos/local.png", "photos/local.png"),
])
def test_urls_are_shown_without_credentials_or_query_values(url, shown):
    assert shown_source(url) == shown


def test_httpx_s_own_transport_streams_and_stops_past_the_cap_too(server, tmp_path):
    urls = [f"{server.url}/big.png", f"{server.url}/redirect/2"]
    found = fetch_all(urls, InputCache(tmp_path), QUICK, transport=httpx.AsyncHTTPTransport())
    assert str(found[urls[0]]).endswith("the body is over 100,000 bytes, the size cap; link a smaller photo")
    assert found[urls[1]].sha256 == hashlib.sha256(photo_bytes(2)).hexdigest()


def test_retries_wait_through_the_injected_sleep_within_the_backoff_cap(tmp_path):
    import anyio

    answers = iter([429, 503, 502, 200])
    waits: list[float] = []

    def reply(request):
        status = next(answers)
        return httpx.Response(status, content=photo_bytes(3) if status == 200 else b"busy")

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    fetcher = UrlFetcher(InputCache(tmp_path), FetchSettings(attempts=4, wait_initial_s=1, wait_max_s=3), sleep=sleep)

    async def main():
        async with httpx.AsyncClient(transport=httpx.MockTransport(reply)) as client:
            return await fetcher.fetch(client, "https://cdn.example/p.png")

    entry = anyio.run(main)
    assert entry.sha256 == hashlib.sha256(photo_bytes(3)).hexdigest()
    assert fetcher.requests == 4 and len(waits) == 3
    assert all(0 <= wait <= 3 for wait in waits)
