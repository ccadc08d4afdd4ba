"""Every benchmark in bench/ runs through its real code path with a tiny count and reports figures.

Nothing here asserts a time or a rate's size: only that each benchmark completes and prints well-formed
figures, so that none of them rots. The full runs are by hand (bench/RESULTS.md). No nginx needed:
the overhead benchmark is pointed at bench/canned_server.py.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_bench(script: str, *args: str, timeout_s: float = 100) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          timeout=timeout_s, cwd=BENCH)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def figures(script: str, *args: str, timeout_s: float = 100) -> dict:
    """The JSON line a benchmark prints last."""
    return json.loads(run_bench(script, *args, timeout_s=timeout_s).stdout.strip().splitlines()[-1])


def bench_harness():
    """bench/harness.py, imported as the benchmarks import it."""
    sys.path.insert(0, str(BENCH))
    try:
        import harness
    finally:
        sys.path.remove(str(BENCH))
    return harness


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def share(value) -> bool:
    return isinstance(value, (int, float)) and 0 <= value <= 1


def test_overhead_reports_the_runner_and_both_loops(tmp_path: Path) -> None:
    result = figures("overhead.py", "--requests", "40", "--runs", "1", "--no-nginx", "--work", str(tmp_path))
    assert result["benchmark"] == "overhead" and result["server"] == "aiohttp canned server"
    assert set(result["requests_per_s"]) == {"runner", "naive_httpx", "bare_aiohttp"}
    assert all(positive(v) for v in result["requests_per_s"].values())
    assert positive(result["ratio_to_naive_httpx"]) and positive(result["ratio_to_bare_aiohttp"])
    assert result["machine"]["cpus"].isdigit()


def test_overhead_kinds_reports_both_kinds_and_their_ratio(tmp_path: Path) -> None:
    result = figures("overhead_kinds.py", "--requests", "20", "--rounds", "2", "--no-nginx", "--work", str(tmp_path))
    assert result["benchmark"] == "overhead_kinds" and result["server"] == "aiohttp canned server"
    assert set(result["requests_per_s"]) == {"gemini", "openai"}
    assert all(len(runs) == 2 and all(positive(v) for v in runs) for runs in result["all_runs"].values())
    assert positive(result["ratio_openai_to_gemini"]) and positive(result["median_round_ratio"])


def test_the_canned_server_answers_in_either_kinds_shape() -> None:
    harness = bench_harness()
    from batchrun.providers.gemini import parse_reply
    from batchrun.providers.openai import parse_chat_reply

    gemini = parse_reply(200, harness.canned_text_reply(), wants_image=False)
    chat, image_url = parse_chat_reply(200, harness.canned_chat_reply(), wants_image=False)
    assert image_url is None and chat.outcome is gemini.outcome
    assert (chat.text, chat.finish_reason, chat.response_id) == (gemini.text, "stop", "chatcmpl-bench-canned-reply")
    assert [(u.prompt, u.output_text, u.total) for u in (chat.usage, gemini.usage)] == [(15, 16, 31)] * 2


def test_latency_reports_its_share_of_the_bound(tmp_path: Path) -> None:
    result = figures("latency.py", "--requests", "20", "--latency-s", "0.05", "--concurrency", "10",
                     "--runs", "1", "--work", str(tmp_path))
    assert result["bound_requests_per_s"] == pytest.approx(200.0)
    assert positive(result["requests_per_s"]) and positive(result["share_of_bound"])


@pytest.mark.parametrize("mode", ["known", "unknown"])
def test_limits_report_the_rate_and_the_share_of_429s(tmp_path: Path, mode: str) -> None:
    result = figures("limits.py", mode, "--requests", "30", "--limit", "50", "--settle-s", "0", "--runs", "1",
                     "--work", str(tmp_path))
    assert result["benchmark"] == f"limits-{mode}"
    assert positive(result["requests_per_s"]) and share(result["share_429"])
    assert result["all_runs"][0]["ok"] == 30


@pytest.mark.timeout(300)  # a local Ray cluster starts in half a minute on a loaded machine
def test_ray_limit_reports_the_cluster_beside_one_process(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'batchrun[ray]' runs this benchmark")
    result = figures("ray_limit.py", "--requests", "20", "--limit", "50", "--workers", "2", "--runs", "1",
                     "--work", str(tmp_path), timeout_s=280)
    assert result["benchmark"] == "ray-limit"
    assert positive(result["requests_per_s"]) and share(result["share_429"])
    assert result["all_runs"][0]["ok"] == 20 and result["one_process"]["all_runs"][0]["ok"] == 20
    assert positive(result["ray_over_one_process"])


@pytest.mark.timeout(300)  # two local Ray clusters, each starting in half a minute on a loaded machine
def test_ray_scale_reports_two_workers_beside_one_and_one_process(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'batchrun[ray]' runs this benchmark")
    result = figures("ray_scale.py", "--requests", "6", "--image-mb", "0.05", "--runs", "1",
                     "--work", str(tmp_path), timeout_s=280)
    assert result["benchmark"] == "ray-scale"
    assert set(result["images_per_s"]) == {"one_process", "ray_1", "ray_2"}
    assert all(positive(v) for v in result["images_per_s"].values())
    assert set(result["median_round_ratio"]) == {"ray_2_over_ray_1", "ray_2_over_one_process",
                                                 "ray_1_over_one_process"}
    assert all(positive(v) for v in result["median_round_ratio"].values())
    assert len(result["all_runs"]) == 1


@pytest.mark.timeout(300)  # six short jobs, about 18 processes: slow only on a loaded machine
def test_random_429_reports_the_ratio_to_the_clean_job_for_both_versions(tmp_path: Path) -> None:
    result = figures("random_429.py", "--requests", "40", "--latency-s", "0.05", "--share", "0.2", "--delay-s", "0.2",
                     "--runs", "1", "--reference", "--baseline-python", sys.executable, "--work", str(tmp_path))
    assert result["benchmark"] == "random-429"
    for version in ("this", "baseline"):
        assert positive(result[version]["ratio"]) and positive(result[version]["reference_ratio"])
        assert share(result[version]["all_runs"][0]["share_429"])


def test_images_reports_peak_rss_at_both_sizes(tmp_path: Path) -> None:
    result = figures("images.py", "--small", "4", "--large", "8", "--image-mb", "0.05", "--runs", "1",
                     "--work", str(tmp_path))
    assert set(result["peak_rss_mb"]) == {"4", "8"}
    assert all(positive(v) for v in result["peak_rss_mb"].values())
    assert isinstance(result["growth"], float)


@pytest.mark.parametrize("server,flags", [("aiohttp canned server", ["--no-nginx"]), ("nginx (file)", []),
                                          ("batchrun simulator", ["--simulator"])])
def test_image_throughput_reports_the_runner_and_the_bare_image_loop(tmp_path: Path, server: str, flags) -> None:
    if server.startswith("nginx") and shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed")
    result = figures("image_throughput.py", "--requests", "6", "--image-mb", "0.05", "--runs", "1",
                     "--work", str(tmp_path), *flags)
    assert result["server"] == server
    assert set(result["images_per_s"]) == {"runner", "bare_image_loop"}
    assert all(positive(v) for v in result["images_per_s"].values())
    assert positive(result["ratio_to_bare_image_loop"]) and positive(result["runner_peak_rss_mb"])
    assert not list(tmp_path.glob("**/*.png"))  # the images written are removed after each run


def test_resume_reports_the_time_to_the_first_request(tmp_path: Path) -> None:
    result = figures("resume.py", "--requests", "60", "--done", "40", "--runs", "1", "--work", str(tmp_path))
    assert positive(result["seconds_to_first_request"])


def test_plan_reports_time_and_peak_rss(tmp_path: Path) -> None:
    result = figures("plan.py", "--rows", "200", "--work", str(tmp_path))
    assert result["requests"] == 400
    assert positive(result["seconds"]) and positive(result["peak_rss_mb"])


def test_the_naive_and_bare_loops_run_against_the_canned_server() -> None:
    harness = bench_harness()
    with harness.canned_server() as server:
        url = f"{server.url}/v1beta/models/{harness.TEXT_MODEL}:generateContent"
        for loop in ("naive_httpx_loop.py", "bare_aiohttp_loop.py"):
            result = json.loads(run_bench(loop, url, "--requests", "20", "--concurrency", "4").stdout)
            assert result["requests"] == 20 and positive(result["requests_per_s"])
        assert server.stats()["ok"] == 40


def test_simulator_rps_prints_text_and_image_rates() -> None:
    lines = run_bench("simulator_rps.py", "--text", "20", "--images", "2", "--runs", "1").stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["text", "image"]
    assert all("median" in line and "req/s" in line for line in lines)


def test_simulator_rps_measures_a_baseline_source_tree_alongside(tmp_path: Path) -> None:
    shutil.copytree(BENCH.parent / "batchrun", tmp_path / "batchrun")
    lines = run_bench("simulator_rps.py", "--text", "20", "--images", "2", "--runs", "1",
                      "--baseline-source", str(tmp_path)).stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["text", "image", "baseline", "baseline", "image"]
    assert lines[-1].startswith("image rate vs baseline: ") and lines[-1].endswith("x")


def test_sink_micro_prints_each_figure() -> None:
    lines = run_bench("sink_micro.py", "--rows", "200", "--manifest", "1000", "--images", "8").stdout.splitlines()
    assert any(line.startswith("images: 8 x ") for line in lines)
    assert any(line.startswith("text results, flush_every=256:") for line in lines)
    assert any(line.startswith("resume set:") for line in lines)


def test_limiter_micro_prints_its_figures() -> None:
    lines = run_bench("limiter_micro.py", "--seconds", "0.2", "--workers", "4").stdout.splitlines()
    assert lines and all("per second" in line or "/s" in line for line in lines)


def test_spec_load_reports_the_old_and_the_new_loader(tmp_path: Path) -> None:
    result = figures("spec_load.py", "--rows", "50", "--runs", "1", "--work", str(tmp_path))
    assert result["rows"] == 50 and result["benchmark"] == "spec_load"
    assert {"old", "new_pure", "load_spec"} <= set(result["load_s"])
    assert all(positive(v) for v in result["load_s"].values())
    assert positive(result["old_over_new"]) and set(result["cli_s"]) == set(result["cli_cpu_s"]) == {"plan", "status", "help"}


def test_input_formats_reads_the_same_rows_from_each_format() -> None:
    result = figures("input_formats.py", "--rows", "40", "--rounds", "1")
    assert result["rows_out"] == {"csv": 40, "xlsx": 40, "xlsx_inline": 40, "grouped_csv": 30}
    assert all(positive(v) for v in result["rows_per_s"].values())


def test_url_fetch_reports_every_case_cold_and_warm() -> None:
    result = figures("url_fetch.py", "--urls", "6", "--rounds", "1", "--latency-ms", "0")
    assert result["urls"] == 6
    assert set(result["median_seconds"]) == {"aiohttp/1", "aiohttp/4", "aiohttp/16", "httpx/16", "plan cold", "plan warm"}
    assert all(positive(v) for v in result["median_seconds"].values())


@pytest.mark.timeout(300)  # two simulators and nine short batchrun processes: slow only on a loaded machine
def test_batch_collect_reports_the_collect_beside_a_synchronous_run_and_the_padded_collect(tmp_path: Path) -> None:
    result = figures("batch_collect.py", "--requests", "20", "--pad", "2000", "--runs", "1", "--running-s", "1",
                     "--records", "20", "--work", str(tmp_path), timeout_s=280)
    assert result["benchmark"] == "batch_collect" and result["requests"] == 20
    assert set(result["lines_per_s"]) == {"collect", "collect_padded", "sync_run"}
    assert all(positive(v) for v in result["lines_per_s"].values()) and positive(result["collect_vs_sync"])
    assert positive(result["collect_vs_sync_cpu"]) and all(positive(v) for v in result["lines_per_cpu_s"].values())
    assert all(positive(v) for v in result["peak_rss_mb"].values()) and positive(result["padded_over_plain_rss"])
    assert result["results_mb"]["padded"] > result["results_mb"]["plain"] > 0
    assert positive(result["pending_records_mb"]["20"])


def test_report_paint_reports_generation_first_paint_and_the_cached_second_report() -> None:
    result = figures("report_paint.py", "--rows", "200", "--distinct", "10", "--cache-images", "30", "--paints", "1")
    assert result["rows"] == 200 and result["cache_images"] == 30
    assert positive(result["report_s"]) and positive(result["cache_first_s"]) and positive(result["cache_second_s"])
    assert result["cache_thumbs_made"][1] == 0  # the second report finds every thumbnail cached
    assert result["first_sheet_ms"] == [] or positive(result["first_sheet_ms"][0])


def test_strata_benchmark_runs_both_functions_and_reports_their_ratio():
    done = run_bench("strata.py", "--rows", "3000", "--rounds", "1")
    assert "3,000 requests: stratum_table" in done.stdout and ", ratio " in done.stdout


def test_key_pool_reports_one_key_and_three_side_by_side(tmp_path: Path) -> None:
    result = figures("key_pool.py", "--requests", "12", "--per-key-rpm", "6000", "--rounds", "1", "--work", str(tmp_path))
    assert result["benchmark"] == "key-pool" and positive(result["ratio_median"])
    [round_] = result["rounds"]
    assert (round_["one_key"]["ok"], round_["three_keys"]["ok"]) == (12, 12)
    assert len(round_["three_keys"]["ok_by_key"]) == 3 and sum(round_["three_keys"]["ok_by_key"]) == 12


def test_bucket_output_reports_local_and_both_bucket_variants_side_by_side(tmp_path: Path) -> None:
    result = figures("bucket_output.py", "--requests", "6", "--image-mb", "0.05", "--concurrency", "2", "--runs", "1",
                     "--work", str(tmp_path), timeout_s=180)
    assert result["benchmark"] == "bucket-output"
    assert set(result["images_per_s"]) == {"local", "s3_end", "s3_every_1s"}
    assert all(positive(v) for v in result["images_per_s"].values())
    assert set(result["ratio_to_local"]) == {"s3_end", "s3_every_1s"}
    assert all(positive(v) for v in result["ratio_to_local"].values())
