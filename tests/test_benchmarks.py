"""benchmarks/scores.py end to end on a tiny hopper dataset: the table, the reference column, resumption."""

import csv
import importlib.util
import json
import os
import subprocess
import sys
from types import ModuleType

import gymnasium as gym
import numpy as np
import pytest

from tests.conftest import make_minari_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_SETTINGS = [
    "--budget", "1e-5", "--evals", "2", "--bootstrap", "50", "--eval-episodes", "2", "--device", "cpu", "--jobs", "1",
    "--set", "batch_size=16", "critic_batch_size=16", "policy_kwargs=dict(net_arch=[16, 16], emb_dim=16)",
    "bc_batch_size=16", "--gmpg-set", "chunk_size=8", "n_gradient_steps=2",
]  # fmt: skip


def load_scores() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scores", os.path.join(ROOT, "benchmarks", "scores.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_hopper_episodes(n_episodes: int = 6, seed: int = 0) -> list:
    """Short random-action Hopper-v4 episodes (they fall within a few dozen steps)."""
    from minari.data_collector import EpisodeBuffer

    env, rng, episodes = gym.make("Hopper-v4", max_episode_steps=200), np.random.default_rng(seed), []
    for k in range(n_episodes):
        obs, _ = env.reset(seed=k)
        cols: dict[str, list] = {"o": [obs], "a": [], "r": [], "te": [], "tr": []}
        done = False
        while not done:
            action = rng.uniform(-1, 1, 3).astype(np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)
            for key, value in zip(("o", "a", "r", "te", "tr"), (obs, action, float(reward), terminated, truncated)):
                cols[key].append(value)
            done = terminated or truncated
        episodes.append(EpisodeBuffer(id=k, seed=k, observations=np.asarray(cols["o"], np.float32),
                                      actions=np.asarray(cols["a"], np.float32), rewards=cols["r"],
                                      terminations=cols["te"], truncations=cols["tr"]))  # fmt: skip
    return episodes


@pytest.fixture(scope="module")
def hopper_medium(minari_root: str) -> str:
    dataset_id = "d4rl-style/hopper/medium-v0"
    make_minari_dataset(dataset_id, random_hopper_episodes(), env_id="Hopper-v4", ref_min_score=-20.272305,
                        ref_max_score=3234.3)  # fmt: skip
    return dataset_id


def read_rows(path: str) -> list[dict[str, str]]:
    with open(path) as file:
        return list(csv.DictReader(file))


def test_score_table_with_every_method_and_the_d3rlpy_reference(hopper_medium: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    scores = load_scores()
    out = str(tmp_path / "scores")
    scores.main(["--datasets", "hopper-medium", "--seeds", "0", "--out", out, *TINY_SETTINGS])
    rows = read_rows(os.path.join(out, "scores.csv"))
    methods = {row["method"] for row in rows}
    policies = {f"{a}-{m}" for a in ("gmpo", "gmpg") for m in ("vpsde", "gvp", "icfm")}
    baselines = {"bc-d3rlpy", "iql-d3rlpy", "rebrac-d3rlpy"}
    assert methods == policies | baselines | {f"mu-{m}" for m in ("vpsde", "gvp", "icfm")}
    gmpg_steps = sorted(int(r["step"]) for r in rows if r["method"] == "gmpg-gvp")
    assert gmpg_steps == [0, 1]  # the behaviour-cloned start is scored, then the policy-gradient steps
    (mu,) = [r for r in rows if r["method"] == "mu-gvp"]  # mu's column: GMPG's step 0, the same evaluation
    (step0,) = [r for r in rows if r["method"] == "gmpg-gvp" and r["step"] == "0"]
    assert (mu["step"], mu["score_mean"]) == ("0", step0["score_mean"])
    # the baselines play the same episodes as the policies; their data column is the same draw
    assert all(os.path.exists(os.path.join(out, "runs", b, "hopper-medium", "seed0", "done.json")) for b in baselines)
    # the training time per run (evaluations left out) is recorded and shown
    for method in ("gmpo-gvp", "bc-d3rlpy", "critic"):
        assert json.load(open(os.path.join(out, "runs", method, "hopper-medium", "seed0", "done.json")))["train_s"] >= 0
    assert all(r["finished"] == "True" and np.isfinite(float(r["score_mean"])) for r in rows)
    assert len({r["dataset_average"] for r in rows}) == 1 and np.isfinite(float(rows[0]["dataset_average"]))
    table = open(os.path.join(out, "scores.md")).read()
    assert "iql-d3rlpy" in table and "Final score" in table and "Best evaluation" in table
    header = table.split("### Final score")[1].splitlines()[2]  # D4RL's order: data, BC, mu, IQL, ReBRAC, the policies
    assert header.startswith("| dataset | data | bc-d3rlpy | mu-vpsde | mu-gvp | mu-icfm | iql-d3rlpy | rebrac-d3rlpy |")
    assert "### Training time per run" in table and "FAILED" not in table
    assert "| hopper-medium |" in table and "—" not in table.split("### Best")[0].split("hopper-medium")[1].split("\n")[0]
    assert os.path.exists(os.path.join(out, "curves_hopper-medium.png"))
    statistics = open(os.path.join(out, "statistics.md")).read()  # rliable's IQM with bootstrap intervals
    assert "| gmpg-gvp | 1 |" in statistics and "| iql-d3rlpy | 1 |" in statistics and "| mu-gvp | 1 |" in statistics
    for x in ("gmpo-gvp", "gmpg-icfm"):  # the probability that GMPO / GMPG improves on each baseline column
        for y in ("bc-d3rlpy", "mu-gvp", "iql-d3rlpy", "rebrac-d3rlpy"):
            assert f"| {x} | {y} | " in statistics
    assert os.path.getsize(os.path.join(out, "performance_profile.png")) > 1000
    # every GMPO / GMPG run's final policy is scored again with the paper's sampler (N(0, I) initial noise)
    noise = read_rows(os.path.join(out, "final_with_noise.csv"))
    assert sorted(r["method"] for r in noise) == sorted(policies)
    assert all(np.isfinite(float(r["score_mean"])) for r in noise)
    noise_section = table.split("sampler")[-1].split("### Training time")[0]
    assert "### Final score with the paper's sampler" in table and "d3rlpy" not in noise_section and "mu-" not in noise_section
    # training statistics beside the scores: a collapse shows without reloading checkpoints
    run = os.path.join(out, "runs", "{}", "hopper-medium", "seed0", "train_from_0.csv")
    for method, key in (
        ("gmpg-gvp", "train/outside_box_fraction"),
        ("gmpo-gvp", "train/weight_ess"),
        ("critic", "critic/q_loss"),
    ):
        logged = read_rows(run.format(method))
        assert logged and key in logged[-1] and np.isfinite(float(logged[-1][key])), method


def test_a_killed_run_resumes_where_it_stopped(hopper_medium: str, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    scores = load_scores()
    args = ["--datasets", "hopper-medium", "--seeds", "0", "--algos", "gmpo", "--models", "gvp", "--no-reference"]
    straight = str(tmp_path / "straight")
    scores.main([*args, "--out", straight, *TINY_SETTINGS])

    resumed = str(tmp_path / "resumed")
    record = scores.Recorder.record
    calls = []

    def dies_on_second_evaluation(self, model, step, episodes=None):  # type: ignore[no-untyped-def]
        calls.append(step)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")  # the process dies: nothing after the first checkpoint is kept
        return record(self, model, step, episodes)

    monkeypatch.setattr(scores.Recorder, "record", dies_on_second_evaluation)
    with pytest.raises(KeyboardInterrupt):
        scores.main([*args, "--out", resumed, *TINY_SETTINGS])
    run = os.path.join(resumed, "runs", "gmpo-gvp", "hopper-medium", "seed0")
    assert os.path.exists(os.path.join(run, "checkpoint.zip")) and not os.path.exists(os.path.join(run, "done.json"))
    monkeypatch.setattr(scores.Recorder, "record", record)
    scores.main([*args, "--out", resumed, *TINY_SETTINGS])  # the same command again

    done, expected = (
        read_rows(os.path.join(run, "evals.csv")),
        read_rows(os.path.join(straight, "runs", "gmpo-gvp", "hopper-medium", "seed0", "evals.csv")),
    )
    assert [r["step"] for r in done] == [r["step"] for r in expected]  # each evaluation once, none lost
    assert [r["return_mean"] for r in done] == [r["return_mean"] for r in expected]  # the same run, bit for bit


def test_an_override_that_is_not_an_argument_is_refused_before_any_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    scores = load_scores()
    with pytest.raises(SystemExit, match="n_gradient_steps: not an argument of GMPO"):
        scores.main(["--datasets", "hopper-medium", "--out", str(tmp_path / "x"), "--set", "n_gradient_steps=2"])
    assert not os.path.exists(tmp_path / "x" / "runs")


def test_gmpg_cost_table_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "cost.json"
    args = ["--device", "cpu", "--threads", "1", "--batches", "8", "--net-arch", "16", "16", "--repeats", "3"]
    script = os.path.join(ROOT, "benchmarks", "gmpg_cost.py")
    subprocess.run([sys.executable, script, *args, "--out", str(out)], check=True, cwd=tmp_path)
    (row,) = json.loads(out.read_text())["rows"]
    assert row["batch"] == 8
    for name in ("gmpg_default", "pathwise_sample_and_q_only", "gmpg_kl_on_every_state"):
        assert row[f"{name}_ms"] > 0 and row[f"{name}_in_gmpo_updates"] > 0


def test_score_table_as_ray_tasks(hopper_medium: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("ray")
    import ray

    scores = load_scores()
    out = str(tmp_path / "ray_scores")
    args = ["--datasets", "hopper-medium", "--seeds", "0", "--algos", "gmpo", "--models", "gvp", "--no-reference",
            "--out", out, "--ray", *TINY_SETTINGS]  # fmt: skip
    try:
        scores.main(args)  # two tasks: the shared critic, then the GMPO run
    finally:
        ray.shutdown()
    rows = read_rows(os.path.join(out, "scores.csv"))
    assert {row["method"] for row in rows} == {"gmpo-gvp"} and all(row["finished"] == "True" for row in rows)
    assert os.path.exists(os.path.join(out, "runs", "critic", "hopper-medium", "seed0", "done.json"))


def test_cpu_preset_plans_one_recipe_and_the_model_each_yaml_names() -> None:
    scores = load_scores()
    args = scores.parse_args(["--preset", "cpu", "--seeds", "0", "1", "--iql-steps", "500"])
    critics, runs = scores.plan(args)
    assert len(critics) == 16 and "walker2d-medium-replay" not in args.datasets  # eight local datasets x 2 seeds
    assert {job.name for job in runs} == {"gmpo-gvp", "gmpg-gvp", "bc-d3rlpy", "iql-d3rlpy", "rebrac-d3rlpy"}
    assert len(runs) == 80
    names = ["bc-d3rlpy", "mu-gvp", "iql-d3rlpy", "rebrac-d3rlpy", "gmpo-gvp", "gmpg-gvp"]
    assert scores.method_names(args) == names
    baselines_only = scores.parse_args(["--preset", "cpu", "--algos", "--baselines", "iql", "--seeds", "0"])
    critics, runs = scores.plan(baselines_only)  # no policy run: no critic to train
    assert critics == [] and {job.name for job in runs} == {"iql-d3rlpy"}
    assert scores.baseline_steps(runs[0], scores.parse_args(["--preset", "cpu", "--bc-steps", "7"])) == 100_000
    assert scores.baseline_steps(scores.Job("bc", "hopper-medium", 0), scores.parse_args(["--bc-steps", "7"])) == 7
    no_baselines = scores.parse_args(["--preset", "cpu", "--no-reference"])
    assert scores.method_names(no_baselines) == ["mu-gvp", "gmpo-gvp", "gmpg-gvp"]  # mu comes with GMPG
    for bad in (["--rebrac-steps", "0"], ["--final-episodes", "0"]):
        with pytest.raises(SystemExit):
            scores.parse_args(bad)
    for algo in ("gmpo", "gmpg"):
        cpu = [scores.hyperparameters(algo, d, 1.0, {}, "cpu") for d in args.datasets]
        assert all({**p, "dataset": ""} == {**cpu[0], "dataset": ""} for p in cpu)  # the same recipe everywhere
        assert cpu[0]["batch_size"] == 256 and cpu[0]["bc_steps"] == 20000  # GMPO warm-starts from the data too
    assert cpu[0]["clip_q_actions"] is True
    with pytest.raises(SystemExit):
        scores.parse_args(["--preset", "cpu", "--iql-steps", "0"])
    paper = scores.parse_args(["--datasets", "hopper-medium"])
    assert paper.models == ["vpsde", "gvp", "icfm"] and scores.hyperparameters("gmpg", "hopper-medium", 1.0, {})["beta"] == 20


def write_earlier_table(path, fields: list[str], earlier: list[tuple]) -> str:  # type: ignore[no-untyped-def]
    """An earlier machine's ``scores.csv`` with one row per (method, dataset, seed, finished, step, score), made on a
    draw of the data that averages 42.125."""
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fields)
        writer.writeheader()
        for method, dataset, seed, finished, step, score in earlier:
            values = dict(step=step, wall_s=1.0, return_mean=score * 30, return_std=0, score_mean=score, score_std=0)
            tags = dict(method=method, dataset=dataset, seed=seed, finished=finished, dataset_average=42.125)
            writer.writerow({**tags, **values})
    return str(path)


def test_finished_runs_of_an_earlier_table_are_imported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``--import-runs`` takes the finished runs of another machine's scores.csv that the plan has, as done."""
    scores = load_scores()
    fields = ["method", "dataset", "seed", "finished", "dataset_average", *scores.EVAL_FIELDS]
    earlier = [
        ("gmpg-gvp", "hopper-medium", 0, "True", 0, 55.0), ("gmpg-gvp", "hopper-medium", 0, "True", 150, 61.0),
        ("iql-d3rlpy", "hopper-medium", 0, "False", 100, 40.0),  # unfinished: trained again, not imported
        ("gmpo-icfm", "hopper-medium", 0, "True", 100, 17.0),  # not a method of this plan
        ("gmpg-gvp", "walker2d-medium", 0, "True", 150, 78.0),  # not a dataset of this plan
    ]  # fmt: skip
    path = write_earlier_table(tmp_path / "earlier.csv", fields, earlier)
    # the earlier table's N(0, I)-noise scores, beside its scores.csv: they travel with the runs they belong to
    (tmp_path / "final_with_noise.csv").write_text(
        "method,dataset,seed,score_mean,score_std\ngmpg-gvp,hopper-medium,0,58.5,3.25\ngmpg-gvp,walker2d-medium,0,70.0,1.0\n"
    )
    out = str(tmp_path / "table")
    scores.main(["--preset", "cpu", "--datasets", "hopper-medium", "--seeds", "0", "--out", out,
                 "--import-runs", str(path), "--report-only"])  # fmt: skip
    rows = read_rows(os.path.join(out, "scores.csv"))
    assert [(r["method"], r["step"], r["score_mean"], r["finished"]) for r in rows] == [
        ("gmpg-gvp", "0", "55.0", "True"),
        ("mu-gvp", "0", "55.0", "True"),  # GMPG's step 0 is mu's column
        ("gmpg-gvp", "150", "61.0", "True"),
    ]
    assert {r["dataset_average"] for r in rows} == {"42.125"}  # the data column travels with the runs
    assert "| hopper-medium | 42.1 |" in open(os.path.join(out, "scores.md")).read()
    noise = read_rows(os.path.join(out, "final_with_noise.csv"))
    assert [(r["method"], r["dataset"], r["score_mean"]) for r in noise] == [("gmpg-gvp", "hopper-medium", "58.5")]
    assert "| hopper-medium | 58.5 (1) |" in open(os.path.join(out, "scores.md")).read()
    gmpg = scores.Job("policy", "hopper-medium", 0, "gmpg", "gvp")
    args = scores.parse_args(["--preset", "cpu", "--out", out])
    assert scores.run_job(gmpg, args).endswith("already done")  # a later run does not train it again
    assert not os.path.exists(scores.Job("iql", "hopper-medium", 0).folder(out))
    with pytest.raises(SystemExit, match="is not a file"):
        scores.main(["--preset", "cpu", "--out", out, "--import-runs", str(tmp_path / "none.csv"), "--report-only"])
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit, match=r"not a scores\.csv: no column"):
        scores.main(["--preset", "cpu", "--out", out, "--import-runs", str(tmp_path / "other.csv"), "--report-only"])
    bad = write_earlier_table(tmp_path / "bad.csv", fields, [("gmpg-gvp", "walker2d-medium", 0, "True", 150, 78.0)])
    text = open(bad).read().replace("42.125", "n/a")
    open(bad, "w").write(text)
    with pytest.raises(SystemExit, match=r"dataset_average of 'n/a', not a number"):
        scores.main(["--preset", "cpu", "--datasets", "walker2d-medium", "--seeds", "0", "--out", out,
                     "--import-runs", bad, "--report-only"])  # fmt: skip
    noise_file = tmp_path / "final_with_noise.csv"
    noise_file.write_text("method,dataset,seed,score_mean,score_std\ngmpg-gvp,walker2d-medium,0,x,1\n")
    with pytest.raises(SystemExit, match=r"is not a final_with_noise\.csv"):
        scores.main(["--preset", "cpu", "--datasets", "walker2d-medium", "--seeds", "0", "--out", str(tmp_path / "t2"),
                     "--import-runs", str(path), "--report-only"])  # fmt: skip


def test_imported_runs_keep_the_draw_of_the_data_they_were_trained_on(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Runs imported from a machine whose draw of a dataset differs keep their own data average, and the table says
    which runs were trained on which draw."""
    scores = load_scores()
    out = str(tmp_path / "table")
    critic = scores.Job("critic", "hopper-medium", 0).folder(out)
    os.makedirs(critic)
    scores.mark_done(critic, {"critic_steps": 10, "dataset_average": 42.0})  # this machine's draw
    gmpg = scores.Job("policy", "hopper-medium", 0, "gmpg", "gvp").folder(out)
    os.makedirs(gmpg)
    with open(os.path.join(gmpg, "evals.csv"), "w", newline="") as file:
        writer = csv.DictWriter(file, scores.EVAL_FIELDS)
        writer.writeheader()
        writer.writerow(dict(step=150, wall_s=1.0, return_mean=2000, return_std=0, score_mean=62.0, score_std=0))
    scores.mark_done(gmpg, {"n_timesteps": 150})
    fields = ["method", "dataset", "seed", "finished", "dataset_average", *scores.EVAL_FIELDS]
    path = write_earlier_table(tmp_path / "earlier.csv", fields, [("iql-d3rlpy", "hopper-medium", 0, "True", 100, 48.0)])
    scores.main(["--preset", "cpu", "--datasets", "hopper-medium", "--seeds", "0", "--out", out,
                 "--import-runs", path, "--report-only"])  # fmt: skip
    warning = "warning: iql-d3rlpy/hopper-medium/seed0 was trained on a hopper-medium of average 42.125"
    assert warning in capsys.readouterr().out
    rows = read_rows(os.path.join(out, "scores.csv"))
    assert {(r["method"], r["dataset_average"]) for r in rows} == {("gmpg-gvp", "42.000"), ("iql-d3rlpy", "42.125")}
    table = open(os.path.join(out, "scores.md")).read()
    assert "| hopper-medium | 42.0 | — | — | 48.0 (1) | — | — | 62.0 (1) |" in table  # data: this machine's draw
    assert ("Data draws of hopper-medium differ between its runs: average 42.000: gmpg-gvp seed 0; "
            "average 42.125: iql-d3rlpy seed 0.") in table  # fmt: skip


def test_a_run_finished_before_the_noise_score_gets_it_from_its_checkpoint(hopper_medium: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A finished run without the N(0, I)-noise score (an earlier scores.py's) is scored from its final checkpoint when
    the command runs again, with the same seeded noise; an imported run, which has no checkpoint, is left alone."""
    scores = load_scores()
    out = str(tmp_path / "table")
    command = ["--datasets", "hopper-medium", "--seeds", "0", "--algos", "gmpg", "--models", "gvp", "--no-reference",
               "--out", out, *TINY_SETTINGS]  # fmt: skip
    scores.main(command)
    folder = scores.Job("policy", "hopper-medium", 0, "gmpg", "gvp").folder(out)
    first = scores.read_done(folder)
    assert first is not None and set(first[scores.NOISE_KEY]) == {"score_mean", "score_std"}
    scores.mark_done(folder, {k: v for k, v in first.items() if k != scores.NOISE_KEY})
    os.replace(os.path.join(folder, "checkpoint.zip"), os.path.join(tmp_path, "checkpoint.zip"))
    scores.main(command)  # no checkpoint (as for an imported run): nothing to score
    assert scores.NOISE_KEY not in scores.read_done(folder)
    assert "sampler" not in open(os.path.join(out, "scores.md")).read()
    os.replace(os.path.join(tmp_path, "checkpoint.zip"), os.path.join(folder, "checkpoint.zip"))
    scores.main(command)
    assert scores.read_done(folder)[scores.NOISE_KEY] == first[scores.NOISE_KEY]  # seeded: the same score
    assert read_rows(os.path.join(out, "final_with_noise.csv"))[0]["score_mean"] == str(first[scores.NOISE_KEY]["score_mean"])


def test_the_baselines_see_the_transitions_the_policies_see(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The conversion to d3rlpy's ``MDPDataset`` keeps every episode: its boundaries (terminations as terminal, time-outs
    and the final cut as time-outs), its observations, actions and raw rewards; d3rlpy then trains on every transition
    but the last of each truncated episode (whose next observation it does not hold), the rest with their own next
    observation; and IQL's reward factor is the IQL paper's, which counts the final cut episode."""
    import d3rlpy

    from sb3_generative.common.datasets import load_offline_data, locomotion_reward_scale

    scores = load_scores()
    episodes = random_hopper_episodes(5)
    cut = 7  # the data ends inside the last episode, as D4RL's files do
    keys = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
    arrays: dict[str, list] = {k: [] for k in keys}
    for k, ep in enumerate(episodes):
        n = len(ep.actions) if k < len(episodes) - 1 else cut
        arrays["observations"].append(ep.observations[:n])
        arrays["next_observations"].append(ep.observations[1 : n + 1])
        arrays["actions"].append(ep.actions[:n])
        arrays["rewards"].append(np.asarray(ep.rewards[:n], np.float32))
        terminals, timeouts = np.asarray(ep.terminations[:n]), np.asarray(ep.truncations[:n])
        arrays["terminals"].append(terminals)
        arrays["timeouts"].append(timeouts)
    data = load_offline_data({k: np.concatenate(v) for k, v in arrays.items()})
    mdp = scores.mdp_dataset(data)
    ends = data.episode_ends
    assert len(mdp.episodes) == len(ends) == len(episodes)
    starts = np.concatenate([[0], ends[:-1] + 1])
    for episode, start, end in zip(mdp.episodes, starts, ends):
        np.testing.assert_array_equal(episode.observations, data.observations[start : end + 1])
        np.testing.assert_array_equal(episode.actions, data.actions[start : end + 1])
        np.testing.assert_array_equal(episode.rewards[:, 0], data.rewards[start : end + 1])
        assert episode.terminated == bool(data.terminations[end])
    assert not mdp.episodes[-1].terminated and mdp.episodes[-1].size() == cut  # the final cut: a time-out
    assert mdp.transition_count == len(data) - sum(not e.terminated for e in mdp.episodes)
    picker = d3rlpy.dataset.BasicTransitionPicker()
    for episode, start in zip(mdp.episodes, starts):
        for i in range(episode.transition_count):
            transition = picker(episode, i)
            if not transition.terminal:
                np.testing.assert_array_equal(transition.next_observation, data.next_observations[start + i])
    returns = [float(np.sum(r)) for r in arrays["rewards"]]
    assert locomotion_reward_scale(data) == pytest.approx(1000 / (max(returns) - min(returns)), rel=1e-5)
