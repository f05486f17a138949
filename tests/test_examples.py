"""Every example runs end to end on the demo dataset with a tiny budget."""

import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
TINY_ARGS = ["--steps", "20", "--critic-steps", "20"]


def run_offline(args: list[str], folder) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    """Run ``python *args`` in ``folder`` with its own Minari folder, no network, one thread."""
    env = dict(os.environ, MINARI_DATASETS_PATH=str(folder / "minari"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=folder, timeout=600)


@pytest.mark.parametrize(
    "script,extra,expected",
    [
        ("train_and_evaluate.py", ["--algo", "gmpo"], "GMPO: mean return"),
        ("train_and_evaluate.py", ["--algo", "gmpg"], "GMPG: mean return"),
        ("learning_curve.py", ["--eval-freq", "10"], "learning curve written"),
        ("sb3_evaluation_loop.py", [], "evaluate_policy(deterministic=False)"),
        ("swap_generative_model.py", [], "icfm: mean return"),
        ("shared_critic.py", [], "trained once: True"),
        ("export_onnx.py", [], "torch imported: False"),
    ],
)
def test_example_runs(script: str, extra: list[str], expected: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if script == "learning_curve.py":
        pytest.importorskip("matplotlib")
    if script == "export_onnx.py":
        pytest.importorskip("onnxruntime")
    result = run_offline([os.path.join(EXAMPLES, script), *TINY_ARGS, "--out", str(tmp_path), *extra], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout
    if script == "learning_curve.py":
        assert (tmp_path / "learning_curve.png").stat().st_size > 1000
    if script == "export_onnx.py":  # the program's actions are predict's
        lines = result.stdout.splitlines()
        predicted = next(line for line in lines if line.startswith("predict:")).split(": ", 1)[1]
        exported = next(line for line in lines if line.startswith("actions")).split(": ", 1)[1]
        assert predicted == exported


def test_quick_start_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """README's quick start, at a tiny budget: data made by the package, GMPO, EvalCallback, save, load."""
    args = [os.path.join(EXAMPLES, "quick_start.py"), "--steps", "4", "--critic-steps", "4", "--data-steps", "300"]
    result = run_offline([*args, "--root", str(tmp_path / "minari")], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "D4RL-normalised" in result.stdout and (tmp_path / "gmpo_hopper.zip").exists()


def test_demo_main_job_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """README's first command: the embedded default job (here with a tiny budget)."""
    args = ["-m", "sb3_generative.demo", "--steps", "20", "--critic-steps", "20", "--episodes", "2"]
    result = run_offline([*args, "--out", str(tmp_path / "demo_model")], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GMPO return" in result.stdout and (tmp_path / "demo_model.zip").exists()
