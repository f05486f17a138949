"""benchmarks/gpu_check.sh --dry-run: every step of the prepared GPU check runs here on the CPU, so it cannot rot."""

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_check_dry_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = dict(os.environ, OUT=str(tmp_path), OMP_NUM_THREADS="1")
    script = os.path.join(ROOT, "benchmarks", "gpu_check.sh")
    result = subprocess.run(["bash", script, "--dry-run"], env=env, capture_output=True, text=True, timeout=900)
    progress = (tmp_path / "progress.log").read_text()
    steps = (tmp_path / "steps.log").read_text() if (tmp_path / "steps.log").exists() else ""
    assert result.returncode == 0, progress + steps[-4000:]
    for name in ("environment", "cuda_tests", "speed", "data", "scores"):
        assert f"end {name} rc=0" in progress, name
    assert "done failed=0" in progress
    assert (tmp_path / "speed_cpu.json").exists() and (tmp_path / "scores.md").exists()
    assert len(list(tmp_path.iterdir())) <= 8  # what the device tool brings back
