"""benchmarks.sweep: the fit-step size sweep writes its JSON, Markdown and plot."""

from __future__ import annotations

import json

import pytest

from benchmarks import sweep


def test_sweep_runs_a_row_and_writes_its_files(tmp_path):
    # one real case (the smallest row, voxrender only) in a fresh process, then the three files
    status = sweep.main(
        ["--rows", "32", "--backends", "voxrender", "--repeats", "1", "--out", str(tmp_path)]
    )
    assert status == 0
    (json_path,) = tmp_path.glob("cpu-*.json")
    doc = json.loads(json_path.read_text())
    (record,) = doc["records"]
    assert record["status"] == "ok", record.get("reason")
    assert record["n_samples"] == 2 * 32 * 32 * 32
    assert record["time_s"]["median"] > 0 and record["speedup_vs_pytorch3d"] is None
    assert doc["env"]["git_commit"] and doc["env"]["torch_version"]
    markdown = json_path.with_suffix(".md").read_text()
    assert "| 32³ | 2 x 32² x 32 |" in markdown
    assert json_path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_ratios_and_table():
    def rec(row, backend, t, mem):
        return {
            "row": row, "backend": backend, "status": "ok", "n_samples": 1000,
            "time_s": {"median": t}, "memory": {"peak_working_bytes": mem},
        }  # fmt: skip

    doc = {
        "env": {
            "git_commit": "0" * 40, "git_dirty": False, "git_dirty_paths": [],
            "torch_version": "x", "python_version": "y", "device_name": "cpu", "cpu_count": 2,
            "load_average": [0.1, 0.1, 0.1], "date": "now",
        },
        "records": [rec("64", "voxrender", 0.1, 2 << 20), rec("64", "pytorch3d", 0.3, 8 << 20)],
    }  # fmt: skip
    sweep._add_ratios(doc["records"])
    vox = doc["records"][0]
    assert vox["speedup_vs_pytorch3d"] == pytest.approx(3.0)
    assert vox["memory_vs_pytorch3d"] == pytest.approx(0.25)
    assert "| 64³ | 4 x 64² x 64 | 0.001 M | 100 ms | 300 ms | 3.00x | 2 | 8 | 0.25x |" in (
        sweep.to_markdown(doc)
    )


def test_sweep_refuses_unknown_rows():
    with pytest.raises(SystemExit):
        sweep.main(["--rows", "48"])
