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


def test_goal_conditioned_example_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The Dict-observation example (docs: guide/observations): PointMaze data, MultiInputPolicy, evaluation, safe load."""
    pytest.importorskip("gymnasium_robotics")
    args = [os.path.join(EXAMPLES, "goal_conditioned.py"), *TINY_ARGS, "--data-steps", "600", "--out", str(tmp_path)]
    result = run_offline([*args, "--root", str(tmp_path / "minari")], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GMPO on umaze: return" in result.stdout and "safe load predicts the same: True" in result.stdout


def test_readme_ten_lines_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """README's ten-line example, as written, on a small hopper dataset made by the package and tiny budgets."""
    readme = open(os.path.join(os.path.dirname(EXAMPLES), "README.md")).read()
    code = readme.split("## Ten lines", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    for big, small in (("10_000", "20"), ("5_000", "10"), ("n_eval_episodes=5", "n_eval_episodes=1")):
        assert big in code
        code = code.replace(big, small)
    setup = "from sb3_generative.data import make_d4rl_style\n"
    setup += f"make_d4rl_style({str(tmp_path / 'minari')!r}, tasks=['hopper'], levels=['medium'], steps=400)\n"
    (tmp_path / "ten_lines.py").write_text(setup + code)
    result = run_offline([str(tmp_path / "ten_lines.py")], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.stdout.strip().splitlines()[-1].split()) == 2  # the mean return and its normalised score
