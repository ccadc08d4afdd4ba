"""A real S3-compatible server for the tests: moto's standalone server, a subprocess on 127.0.0.1.

Not a mock of a client library: batchrun talks HTTP to it through pyarrow's S3 file system, as it would
to AWS or MinIO. The wait for it is bounded and waits on its listening line.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.parquet as pq
import pytest
from e2e_helpers import STARTUP_TIMEOUT_S, LineReader
from pyarrow import fs as pafs

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-access-id", "AWS_SECRET_ACCESS_KEY": "test-secret-S3LEAKCHECK",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
RUNNING = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")


_BUCKETS = itertools.count(1)


@dataclass
class S3Server:
    """The server, and the empty bucket of one test."""

    endpoint: str
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """The standard variables a client of this server needs."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def filesystem(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(endpoint_override=self.endpoint, scheme="http", access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                 secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region="us-east-1",
                                 allow_bucket_creation=True)

    def files(self, prefix: str) -> dict[str, int]:
        """Every object under the bucket's `prefix`: path relative to it → size."""
        root = f"{self.bucket}/{prefix}"
        infos = self.filesystem().get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        return {i.path[len(root) + 1:]: i.size for i in infos if i.type == pafs.FileType.File}

    def read(self, key: str) -> bytes | None:
        """The bytes of the object at `key` in the bucket, None when there is none."""
        try:
            with self.filesystem().open_input_stream(f"{self.bucket}/{key}") as source:
                return source.read()
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        with self.filesystem().open_output_stream(f"{self.bucket}/{key}") as target:
            target.write(data)

    def result_rows(self, prefix: str) -> list[dict]:
        """Every row of every results part under the bucket's `prefix`."""
        filesystem = self.filesystem()
        rows: list[dict] = []
        for name in sorted(self.files(prefix)):
            if name.startswith("results/") and name.endswith(".parquet"):
                rows += pq.read_table(f"{self.bucket}/{prefix}/{name}", filesystem=filesystem).to_pylist()
        return rows


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_server() -> Iterator[tuple[str, subprocess.Popen]]:
    """moto's S3 server on 127.0.0.1: its endpoint and its process (a test may stop it early)."""
    if importlib.util.find_spec("moto") is None:
        pytest.fail("moto's server is not installed: pip install -e '.[test]' (the test extra has moto[server])")
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(free_port())],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = LineReader(process.stderr).wait_for(RUNNING, STARTUP_TIMEOUT_S).group(1)
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(timeout=STARTUP_TIMEOUT_S)


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1, one for the session (each test has its own bucket)."""
    with moto_server() as (endpoint, _):
        yield endpoint


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    """A new empty bucket on the session's server; this process's AWS variables point at it."""
    server = S3Server(s3_endpoint, f"bucket-{next(_BUCKETS)}")
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    server.filesystem().create_dir(server.bucket)
    return server
