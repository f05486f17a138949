"""RL Zoo entry point: train / enjoy / continue / optimize on a tiny dataset, and every packaged YAML entry."""

import os

import numpy as np
import pytest
import yaml

from sb3_generative import GMPG, GMPO
from sb3_generative.zoo import CONFIG_DIR, PRESETS, main, register, register_d4rl_style_envs, zoo_arguments

pytest.importorskip("rl_zoo3")


@pytest.fixture()
def zoo_conf(pendulum_id: str, tmp_path) -> str:  # type: ignore[no-untyped-def]
    tiny = {
        "policy": "GenerativePolicy",
        "dataset": pendulum_id,
        "n_timesteps": 20,
        "batch_size": 32,
        "critic_steps": 20,
        "critic_batch_size": 32,
        "policy_kwargs": "dict(net_arch=[16, 16], critic_net_arch=[16, 16], n_sampling_steps=4)",
    }
    path = tmp_path / "conf.yml"
    path.write_text(yaml.safe_dump({"Pendulum-v1": tiny}))
    return str(path)


def test_train_enjoy_and_continue(zoo_conf: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    logs = str(tmp_path / "logs")
    common = ["--algo", "gmpo", "--env", "Pendulum-v1", "-f", logs]
    main(
        ["train", *common, "-conf", zoo_conf, "--eval-freq", "10", "--eval-episodes", "1", "--save-freq", "10", "--seed", "0"]
    )
    run = os.path.join(logs, "gmpo", "Pendulum-v1_1")
    for name in ("Pendulum-v1.zip", "best_model.zip", "evaluations.npz", "rl_model_10_steps.zip", "rl_model_20_steps.zip"):
        assert os.path.exists(os.path.join(run, name)), name
    assert np.load(os.path.join(run, "evaluations.npz"))["timesteps"].tolist() == [10, 20]  # gradient steps
    main(["enjoy", *common, "--load-best", "-n", "30", "--no-render"])
    main(["enjoy", *common, "--load-checkpoint", "10", "-n", "30", "--no-render"])
    # -i: continue training a saved model (RL Zoo passes every YAML key, the dataset too, to load())
    main(["train", *common, "-conf", zoo_conf, "-i", os.path.join(run, "Pendulum-v1.zip"), "-n", "10", "--eval-freq", "-1"])
    first = GMPO.load(os.path.join(run, "Pendulum-v1.zip"))
    continued = GMPO.load(os.path.join(logs, "gmpo", "Pendulum-v1_2", "Pendulum-v1.zip"))
    # RL Zoo restarts the step count on -i (as for every SB3 algorithm); the critic is kept, the actor moves on
    assert continued.num_timesteps == 10 and continued.critic_steps_done == 20
    assert np.array_equal(continued.critic.value_func._fc.weight.detach(), first.critic.value_func._fc.weight.detach())
    assert not np.array_equal(continued.actor.net.last.weight.detach(), first.actor.net.last.weight.detach())


def test_optimize_two_trials_with_shared_storage(zoo_conf: str, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("optuna")
    from sb3_generative.common.offline_algorithm import OfflineAlgorithm

    critic_steps: list[int] = []  # critic steps per model that trains one
    run_phase = OfflineAlgorithm._run_phase

    def counting(self, phase, *args):  # type: ignore[no-untyped-def]
        before = self.critic_steps_done
        run_phase(self, phase, *args)
        if phase.name == "critic" and self.critic_steps_done > before:
            critic_steps.append(self.critic_steps_done - before)

    monkeypatch.setattr(OfflineAlgorithm, "_run_phase", counting)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    main(
        [
            "optimize",
            "--algo",
            "gmpo",
            "--env",
            "Pendulum-v1",
            "-conf",
            zoo_conf,
            "-f",
            str(tmp_path / "logs"),
            "-n",
            "10",
            "--n-trials",
            "2",
            "--n-jobs",
            "1",
            "--sampler",
            "random",
            "--pruner",
            "none",
            "--eval-episodes",
            "1",
            "--storage",
            storage,
            "--study-name",
            "gmpo-test",
            "--no-optim-plots",
        ]
    )
    import optuna

    study = optuna.load_study(study_name="gmpo-test", storage=storage)
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == 2 and {"beta", "weight_clamp", "learning_rate"} <= set(finished[0].params)
    # the critic was trained once, before the trials, and handed to both
    assert critic_steps == [20]
    assert os.path.exists(tmp_path / "logs" / "gmpo" / "shared_critic_Pendulum-v1_seed0.zip")


def test_plot_draws_the_evaluation_curves_of_namespaced_envs(zoo_conf: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("seaborn")
    import pickle

    import gymnasium as gym

    register_d4rl_style_envs()
    env_id = "D4RLStyle/hopper-medium-v0"
    conf = yaml.safe_load(open(zoo_conf))
    conf = {env_id: {**conf["Pendulum-v1"], "dataset": _hopper_arrays(tmp_path)}}
    (tmp_path / "hopper.yml").write_text(yaml.safe_dump(conf))
    logs = str(tmp_path / "logs")
    main(["train", "--algo", "gmpo", "--env", env_id, "-f", logs, "-conf", str(tmp_path / "hopper.yml"),
          "--eval-freq", "10", "--eval-episodes", "2", "--seed", "0"])  # fmt: skip
    out = str(tmp_path / "plots")
    main(["plot", "-a", "gmpo", "-e", env_id, "-f", logs, "--no-display", "-o", out])
    with open(out + ".pkl", "rb") as file:
        results = pickle.load(file)
    key = env_id.replace("/", "-")
    assert gym.spec(env_id) is not None and results["results_table"] is not None
    (curve,) = results[key].values()  # the evaluation curve was found (written with "/", it is a silent 0.0)
    assert curve["timesteps"].tolist() == [10, 20] and np.all(curve["mean"] != 0.0)


def _hopper_arrays(tmp_path) -> str:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    n = 64
    path = tmp_path / "hopper.npz"
    np.savez(
        path,
        observations=rng.normal(size=(n, 11)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        terminals=np.arange(n) % 32 == 31,
    )
    return str(path)


def test_arguments_use_packaged_config_unless_given() -> None:
    args = zoo_arguments("train", ["--algo", "gmpg", "--env", "Hopper-v4"])
    assert args[-4:-2] == ["--conf-file", os.path.join(CONFIG_DIR, "gmpg.yml")]
    assert "--conf-file" not in zoo_arguments("train", ["--algo", "gmpo", "-conf", "mine.yml"])
    assert zoo_arguments("optimize", ["--algo", "gmpo"])[2] == "-optimize"
    assert zoo_arguments("train", ["--algo", "gmpo"])[-2:] == ["--num-threads", "1"]  # one thread unless told
    assert zoo_arguments("train", ["--algo", "gmpo", "--num-threads", "2"]).count("--num-threads") == 1
    cpu = zoo_arguments("train", ["--algo", "gmpg", "--preset", "cpu", "--env", "Hopper-v4"])
    assert "--preset" not in cpu and cpu[-4:-2] == ["--conf-file", os.path.join(CONFIG_DIR, "cpu", "gmpg.yml")]
    with pytest.raises(SystemExit, match="--preset must be one of"):
        zoo_arguments("train", ["--algo", "gmpg", "--preset=gpu"])
    with pytest.raises(SystemExit, match="give one of them"):
        zoo_arguments("train", ["--algo", "gmpg", "--preset", "cpu", "-conf", "mine.yml"])


def test_unknown_command_explains_usage() -> None:
    with pytest.raises(SystemExit, match="usage"):
        main(["fly"])


@pytest.mark.parametrize("preset", ["paper", "cpu"])
@pytest.mark.parametrize("algo", ["gmpo", "gmpg"])
def test_every_packaged_entry_parses_and_builds(algo: str, preset: str) -> None:
    register()
    register_d4rl_style_envs()
    with open(os.path.join(PRESETS[preset], f"{algo}.yml")) as file:
        entries = yaml.load(file, Loader=yaml.UnsafeLoader)  # RL Zoo's own loader (YAML anchors, !!float)
    # the paper's nine datasets; the CPU recipe's eight that can be made locally (no walker2d medium-replay) and the
    # three PointMaze datasets
    assert "default" in entries and len(entries) == (10 if preset == "paper" else 12)
    maze = {"policy": "MultiInputPolicy", "normalize_reward": False, "normalize_observations": True, "expectile": 0.9}
    cls = {"gmpo": GMPO, "gmpg": GMPG}[algo]
    for env_id, params in entries.items():
        params = dict(params)
        assert params.pop("n_timesteps") > 0
        dataset = params.pop("dataset", None)
        if env_id != "default":
            assert dataset == "d4rl-style/{}/{}".format(*env_id.split("/")[1].removesuffix("-v0").split("-", 1)) + "-v0"
        if "pointmaze" in env_id:
            pytest.importorskip("gymnasium_robotics")
        if preset == "cpu":  # one recipe for every dataset, the mazes' reward, observation and expectile settings aside
            expected = {k: v for k, v in entries["default"].items() if k != "n_timesteps"}
            assert params == ({**expected, **maze} if "pointmaze" in env_id else expected)
        params["policy_kwargs"] = eval(params["policy_kwargs"])  # as RL Zoo does
        model = cls(env="Pendulum-v1" if env_id == "default" else env_id, device="cpu", **params)
        assert model.policy.net_arch == ([512, 256, 128] if preset == "paper" else [256, 256])
