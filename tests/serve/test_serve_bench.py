"""`anyseq bench serve` on a small scale: the JSON it writes and what it measures."""

import json

import pytest

from anyseq.serve.bench import percentile, run_bench


def test_percentile_picks_the_nearest_rank():
    values = [0.5, 0.1, 0.4, 0.2, 0.3]
    assert percentile(values, 0.5) == 0.3
    assert percentile(values, 0.95) == 0.5
    assert percentile(values, 0.0) == 0.1


@pytest.mark.slow
def test_bench_serve_writes_rates_latencies_and_batch_sizes(tmp_path):
    out = tmp_path / "serve.json"
    result = run_bench(out, concurrency=(1, 4), requests_per_level=8, max_tokens=4, backbone="test")
    assert json.loads(out.read_text()) == result
    rows = {(row["batching"], row["concurrency"]): row for row in result["results"]}
    assert set(rows) == {("on", 1), ("on", 4), ("off", 1), ("off", 4)}
    for row in rows.values():
        assert row["statuses"] == {"200": 8}
        assert row["requests_per_s"] > 0 and 0 < row["p50_s"] <= row["p95_s"]
    assert rows[("off", 4)]["mean_batch_size"] == 1.0
    assert rows[("on", 1)]["mean_batch_size"] == 1.0
    assert rows[("on", 4)]["mean_batch_size"] > 1.0  # four clients at once: the server batched them
    assert set(result["batching_speedup"]) == {"concurrency_1", "concurrency_4"}
