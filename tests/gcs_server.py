"""A real GCS-compatible server for the tests: gcp-storage-emulator, a subprocess on 127.0.0.1.

Not a mock of a client library: batchrun talks Google's JSON API over HTTP to it through pyarrow's GCS file
system (resumable uploads included), as it would to Google Cloud Storage. The wait for it is bounded and
waits on its listening line.
"""

from __future__ import annotations

import importlib.util
import itertools
import re
import subprocess
import sys
from dataclasses import dataclass

import pyarrow.parquet as pq
import pytest
from e2e_helpers import STARTUP_TIMEOUT_S, LineReader
from pyarrow import fs as pafs
from s3_server import free_port

STARTED = re.compile(r"All services started")
EMULATOR = ("-m", "gcp_storage_emulator")

_BUCKETS = itertools.count(1)


@dataclass
class GcsServer:
    """The server, and the empty bucket of one test."""

    host: str  # 127.0.0.1:PORT
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """The standard variable a Google client of this server needs (an emulator takes no credentials)."""
        return {"STORAGE_EMULATOR_HOST": f"http://{self.host}"}

    def filesystem(self) -> pafs.GcsFileSystem:
        return pafs.GcsFileSystem(anonymous=True, endpoint_override=self.host, scheme="http", project_id="test")

    def files(self, prefix: str) -> dict[str, int]:
        """Every object under the bucket's `prefix`: path relative to it → size."""
        root = f"{self.bucket}/{prefix}"
        infos = self.filesystem().get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        return {i.path[len(root) + 1:]: i.size for i in infos if i.type == pafs.FileType.File}

    def result_rows(self, prefix: str) -> list[dict]:
        """Every row of every results part under the bucket's `prefix`."""
        filesystem = self.filesystem()
        rows: list[dict] = []
        for name in sorted(self.files(prefix)):
            if name.startswith("results/") and name.endswith(".parquet"):
                rows += pq.read_table(f"{self.bucket}/{prefix}/{name}", filesystem=filesystem).to_pylist()
        return rows


@pytest.fixture(scope="session")
def gcs_host():
    """gcp-storage-emulator on 127.0.0.1, in memory, one for the session (each test has its own bucket)."""
    if importlib.util.find_spec("gcp_storage_emulator") is None:
        pytest.skip("the GCS emulator is not installed: pip install gcp-storage-emulator (in the test extra)")
    port = free_port()
    process = subprocess.Popen([sys.executable, *EMULATOR, "start", "--host", "127.0.0.1", "--port", str(port),
                                "--in-memory"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        LineReader(process.stderr).wait_for(STARTED, STARTUP_TIMEOUT_S)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=STARTUP_TIMEOUT_S)


@pytest.fixture
def gcs(gcs_host, monkeypatch):
    """A new empty bucket on the session's server; this process's STORAGE_EMULATOR_HOST points at it."""
    server = GcsServer(gcs_host, f"bucket-{next(_BUCKETS)}")
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    server.filesystem().create_dir(server.bucket)
    return server
