"""The jobs the review tests share: a text job with a matrix, variants and a response schema, run in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from batchrun.cli import main

ROWS = [{"sku": "A1", "title": "Mug", "price": 9}, {"sku": "B2", "title": "Bowl", "price": 12.5},
        {"sku": "C3", "title": "Jug", "price": 4}]
SCHEMA = {"type": "OBJECT", "properties": {"headline": {"type": "STRING"}, "stars": {"type": "INTEGER"},
                                           "tags": {"type": "ARRAY", "items": {"type": "STRING"}}},
          "required": ["headline", "stars", "tags"]}


def cards_spec(rows: list[dict]) -> dict:
    """A text job of `rows` x 2 tones x 2 variants, each reply a JSON object of SCHEMA."""
    return {
        "name": "cards", "provider": {"kind": "simulator"}, "model": "gemini-3-flash-preview",
        "inputs": {"rows": rows}, "matrix": {"tone": ["warm", "crisp"]},
        "request": {"variants": 2, "prompt": "Write a {{ tone }} product card for the {{ title }}",
                    "generation_config": {"responseMimeType": "application/json", "responseSchema": SCHEMA}},
        "output": {"dir": "out"},
    }


def write_spec(folder: Path, spec: dict) -> Path:
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def cards_job(tmp_path, monkeypatch):
    """The cards job run to its end on the in-process simulator: its output folder."""
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, cards_spec(ROWS))
    assert main(["run", str(spec), "--progress", "none", "-q"]) == 0
    return tmp_path / "out"
