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


@pytest.mark.parametrize("rounds", ["0", "-1", "two"])
def test_sweep_refuses_bad_rounds(rounds, capsys):
    with pytest.raises(SystemExit):
        sweep.main(["--rounds", rounds])
    assert "--rounds: expected a positive integer" in capsys.readouterr().err


def test_sweep_rounds_combine_and_ratios_pair_up():
    # each case's rounds: median time and peak; the speed-up pairs round i of both backends
    def result(t, mem):
        return {"status": "ok", "time_s": {"median": t}, "memory": {"peak_working_bytes": mem}}

    vox = sweep._combine_rounds([result(0.1, 5), result(0.4, 7), result(0.2, 6)])
    p3d = sweep._combine_rounds([result(0.3, 20), result(0.8, 20), result(1.0, 24)])
    assert vox["time_s"]["median"] == 0.2 and vox["time_s"]["rounds"] == [0.1, 0.4, 0.2]
    assert vox["memory"]["peak_working_bytes"] == 6
    records = [
        {"row": "64", "backend": "voxrender", "n_samples": 1000, **vox},
        {"row": "64", "backend": "pytorch3d", "n_samples": 1000, **p3d},
    ]
    sweep._add_ratios(records)
    # ratios 3, 2, 5: median 3 (not 0.8 / 0.2 = 4 from the medians)
    assert records[0]["speedup_rounds"] == pytest.approx([3.0, 2.0, 5.0])
    assert records[0]["speedup_vs_pytorch3d"] == pytest.approx(3.0)
    doc = {
        "env": {
            "git_commit": "0" * 40, "git_dirty": False, "git_dirty_paths": [],
            "torch_version": "x", "python_version": "y", "device_name": "cpu", "cpu_count": 2,
            "load_average": [0.1, 0.1, 0.1], "date": "now",
        },
        "rounds": 3,
        "records": records,
    }  # fmt: skip
    assert "| 200 ms | 800 ms | 3.00x (2.00-5.00) |" in sweep.to_markdown(doc)
    failed = {"status": "timeout", "reason": "slow"}
    assert sweep._combine_rounds([result(0.1, 5), failed]) == failed
