"""Speed of our updates and sampler, each beside a plain eager PyTorch implementation of the same computation run in
the same process on the same weights and data (the ratio is the figure; absolute times depend on the machine).

Rows (the speed issue's table): GMPO policy update, IQL critic update, the actor's optimizer step alone (our fused
Adam), GMPG update, ``predict`` latency for one observation, sampling throughput for a large batch. Two settings:
the paper's network ([512, 256, 128]) at batch 4096 and a small one ([256, 256]) at batch 256. The plain references
are what a straightforward implementation does: indices drawn on the host and the batch copied over, a
``loss.item()`` per step, ``foreach``-free Adam, a Python loop of network calls for the sampler (``torch.no_grad``),
and GMPG's exact divergence as one backward pass per action dimension. On CUDA the arithmetic-limit fraction (model
FLOPs / peak TF32 FLOPs / time) is reported too.

    python benchmarks/speed.py --device cpu --threads 2 --out benchmarks/results/speed_cpu.json
    python benchmarks/speed.py --device cpu --threads 1 --compile True --only-compiled \
        --out benchmarks/results/compile_cpu.json

With ``--compile MODE`` each update and the sampler are also timed with ``torch_compile=MODE`` against the same model
eager, at each of ``--precisions``; the compile time (the first call less a steady one) is reported apart.
"""

import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th

import sb3_generative
from sb3_generative import GMPG, GMPO
from sb3_generative.generative.model import GenerativeModel

OBS_DIM, ACTION_DIM, N_DATA = 17, 6, 200_000  # HalfCheetah sizes
PEAK_TF32_FLOPS = {"H200": 494e12, "H100": 494e12, "A100": 156e12}  # dense, from the vendors' data sheets


def timed(fn: Callable[[], Any], device: th.device, repeats: int, budget_s: float = 10.0) -> float:
    """Median seconds of one call of ``fn`` after a warm-up call (the device is synchronised around each call);
    slow calls are repeated fewer times, at least 3, so that each measurement takes about ``budget_s``."""

    def once() -> float:
        if device.type == "cuda":
            th.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            th.cuda.synchronize()
        return time.perf_counter() - start

    first = min(once(), once())
    n = max(3, min(repeats, int(budget_s / max(first, 1e-9))))
    return statistics.median(once() for _ in range(n))


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = N_DATA
    data = {
        "observations": rng.normal(size=(n, OBS_DIM)).astype(np.float32),
        "actions": np.tanh(rng.normal(size=(n, ACTION_DIM))).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "next_observations": rng.normal(size=(n, OBS_DIM)).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": np.zeros(n, bool),
    }
    data["timeouts"][999::1000] = True
    return data


# ---------------------------------------------------------------------------------------------------- references
class PlainGMPO:
    """GMPO's update written plainly: host-side indices, a copy to the device, ``loss.item()`` every step."""

    def __init__(self, model: GMPO, data: dict[str, np.ndarray]) -> None:
        self.model, self.actor = model, copy.deepcopy(model.actor)
        self.optimizer = th.optim.Adam(self.actor.parameters(), lr=1e-4, foreach=False)
        self.obs, self.actions = th.as_tensor(data["observations"]), th.as_tensor(data["actions"])

    def step(self, batch: int) -> float:
        idx = th.as_tensor(np.random.randint(0, len(self.obs), batch))
        obs, actions = self.obs[idx].to(self.model.device), self.actions[idx].to(self.model.device)
        with th.no_grad():
            weight = th.exp(self.model.beta * self.model.critic.advantage(obs, actions)).clamp(max=self.model.weight_clamp)
        loss = (weight * self.actor.per_sample_loss(actions, obs)).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()


class PlainIQL:
    """IQL's critic update written plainly on copies of our Q and V networks (same losses), one ``item()`` a step."""

    def __init__(self, model: GMPO, data: dict[str, np.ndarray]) -> None:
        self.critic = copy.deepcopy(model.critic)
        self.critic.optimizer = th.optim.Adam(
            [*self.critic.q_funcs.parameters(), *self.critic.value_func.parameters()], lr=3e-4, foreach=False
        )
        self.device = model.device
        self.data = {k: th.as_tensor(data[k]) for k in ("observations", "actions", "rewards", "next_observations")}
        self.data["dones"] = th.as_tensor(data["terminals"], dtype=th.float32)

    def step(self, batch: int) -> float:
        idx = th.as_tensor(np.random.randint(0, len(self.data["rewards"]), batch))
        b = {k: v[idx].to(self.device) for k, v in self.data.items()}
        q_loss, v_loss = self.critic.losses(
            b["observations"], b["actions"], b["rewards"].unsqueeze(-1), b["next_observations"], b["dones"].unsqueeze(-1)
        )
        self.critic.optimizer.zero_grad()
        (q_loss + v_loss).backward()
        self.critic.optimizer.step()
        with th.no_grad():  # SB3's Polyak update, two kernels per tensor
            for target, online in zip(self.critic.targ_q_funcs.parameters(), self.critic.q_funcs.parameters()):
                target.mul_(1 - 0.005).add_(online, alpha=0.005)
        return q_loss.item() + v_loss.item()


def plain_divergence(velocity: Callable[[th.Tensor], th.Tensor], x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """Velocity and exact divergence with one backward pass per action dimension (the textbook loop)."""
    x = x if x.requires_grad else x.detach().requires_grad_(True)
    v = velocity(x)
    div = sum(th.autograd.grad(v[:, i].sum(), x, create_graph=True)[0][:, i] for i in range(x.shape[1]))
    return v, div  # type: ignore[return-value]


def plain_log_prob_solve(
    model: GenerativeModel, obs: th.Tensor, x0: th.Tensor, grid: th.Tensor
) -> tuple[th.Tensor, th.Tensor]:
    """RK4 over ``grid`` of the augmented ODE (x, int div), divergence by the per-dimension loop."""

    def f(tau: th.Tensor, x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return plain_divergence(lambda y: model.velocity(tau, y, obs), x)

    x, acc = x0, th.zeros(x0.shape[0], device=x0.device)
    for i in range(len(grid) - 1):
        t, h = grid[i], grid[i + 1] - grid[i]
        k1 = f(t, x)
        k2 = f(t + h / 2, x + h / 2 * k1[0])
        k3 = f(t + h / 2, x + h / 2 * k2[0])
        k4 = f(t + h, x + h * k3[0])
        x = x + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        acc = acc + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    return x, acc


class PlainGMPG:
    """GMPG's update (same objective, grid and solver) with the per-dimension divergence loop and ``item()``."""

    def __init__(self, model: GMPG, data: dict[str, np.ndarray]) -> None:
        self.model, self.actor = model, copy.deepcopy(model.actor)
        self.optimizer = th.optim.Adam(self.actor.parameters(), lr=1e-4, foreach=False)
        self.obs = th.as_tensor(data["observations"])

    def step(self, batch: int, kl_states: int | None = None) -> float:
        """One update with the KL term on the first ``kl_states`` states (None: all), the Q term on all."""
        obs = self.obs[th.as_tensor(np.random.randint(0, len(self.obs), batch))].to(self.model.device)
        k = batch if kl_states is None else kl_states
        n, power = self.model.n_gradient_steps, self.model.grid_power
        noise = th.randn(batch, ACTION_DIM, device=obs.device)
        grid = self.actor.grid(n, 0.0, 1.0, obs.device, power)
        actions, int_div = plain_log_prob_solve(self.actor, obs[:k], noise[:k], grid)
        log_pi = -0.5 * (noise[:k] ** 2).sum(-1) - 0.5 * ACTION_DIM * math.log(2 * math.pi) - int_div
        reference = self.model.policy.reference
        end = reference.data_end()
        z, neg_int = plain_log_prob_solve(reference, obs[:k], actions, reference.grid(n, end, 0.0, obs.device, power))
        log_mu = -0.5 * (z**2).sum(-1) - 0.5 * ACTION_DIM * math.log(2 * math.pi) + neg_int
        if k < batch:
            actions = th.cat([actions, plain_pathwise_sample(self.actor, obs[k:], noise[k:], grid)])
        q = self.model.critic.q_value(obs, actions).squeeze(-1)
        loss = -self.model.beta * q.mean() + ((log_pi - log_mu) / (ACTION_DIM * math.log(2))).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()


def plain_pathwise_sample(model: GenerativeModel, obs: th.Tensor, x: th.Tensor, grid: th.Tensor) -> th.Tensor:
    """RK4 over ``grid`` from noise to actions, differentiable (the Q term's pathwise sample), a network call a stage."""
    for i in range(len(grid) - 1):
        t, h = grid[i], grid[i + 1] - grid[i]
        k1 = model.velocity(t, x, obs)
        k2 = model.velocity(t + h / 2, x + h / 2 * k1, obs)
        k3 = model.velocity(t + h / 2, x + h / 2 * k2, obs)
        k4 = model.velocity(t + h, x + h * k3, obs)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def plain_sample(model: GenerativeModel, obs: th.Tensor, n_steps: int = 31) -> np.ndarray:
    """The reference sampler: a Python loop of Euler steps under ``no_grad``, times made as new tensors each step."""
    with th.no_grad():
        x = th.zeros(obs.shape[0], ACTION_DIM, device=obs.device)
        times = np.linspace(0.0, 1.0, n_steps + 1)
        for i in range(n_steps):
            h, t = float(times[i + 1] - times[i]), th.tensor(float(times[i]), device=obs.device)
            x = x + h * model.velocity(t, x, obs)
        return x.clamp(-1, 1).cpu().numpy()


# ---------------------------------------------------------------------------------------------------- rows
def flops_per_row(model: GenerativeModel) -> float:
    """Multiply-adds x 2 of one network evaluation for one row (linear layers only)."""
    return 2.0 * sum(m.in_features * m.out_features for m in model.net.modules() if isinstance(m, th.nn.Linear))


def measure(setting: str, net_arch: list[int], batch: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    device, data, rows = th.device(args.device), arrays(), []
    common = dict(dataset=data, critic_steps=0, critic_batch_size=batch, device=device, seed=0,
                  policy_kwargs=dict(net_arch=net_arch))  # fmt: skip
    gmpo = GMPO("GenerativePolicy", None, batch_size=batch, beta=3.0, **common)
    gmpo.pretrain()
    plain, plain_iql = PlainGMPO(gmpo, data), PlainIQL(gmpo, data)
    buffer = gmpo.replay_buffer
    assert buffer is not None

    def critic_step() -> None:
        gmpo.critic_step(buffer.sample(batch))

    gmpg_batch = args.gmpg_batch or batch
    gmpg = GMPG("GenerativePolicy", None, batch_size=gmpg_batch, chunk_size=args.gmpg_chunk, bc_steps=0,
                kl_batch_size=None, **common)  # fmt: skip
    gmpg.pretrain()
    plain_gmpg = PlainGMPG(gmpg, data)
    sub_batch = max(1, gmpg_batch // 8)

    def gmpg_sub_batch_kl() -> None:
        gmpg.kl_batch_size = sub_batch
        gmpg.train(1, gmpg_batch)
        gmpg.kl_batch_size = None

    for param in gmpo.actor.parameters():  # gradients for the optimizer-step row
        param.grad = th.randn_like(param)
    plain_adam = th.optim.Adam(gmpo.actor.parameters(), lr=1e-4, foreach=False)
    obs1 = data["observations"][:1]
    obs_big = th.as_tensor(data["observations"][: args.sample_batch], device=device)
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], int, float]] = [
        ("actor Adam step alone", gmpo.policy.optimizer.step, plain_adam.step, batch, 0.0),  # first: grads are set
        ("GMPO policy update", lambda: gmpo.train(1, batch), lambda: plain.step(batch), batch, 3.0),
        ("IQL critic update", critic_step, lambda: plain_iql.step(batch), batch, 0.0),
        ("GMPG update, KL on every state", lambda: gmpg.train(1, gmpg_batch), lambda: plain_gmpg.step(gmpg_batch),
         gmpg_batch, 0.0),
        (f"GMPG update, KL on {sub_batch} states", gmpg_sub_batch_kl, lambda: plain_gmpg.step(gmpg_batch, sub_batch),
         gmpg_batch, 0.0),
        ("predict, 1 observation", lambda: gmpo.predict(obs1, deterministic=True),
         lambda: plain_sample(gmpo.actor, th.as_tensor(obs1, dtype=th.float32, device=device)), 1, 31.0),
        (f"sample {args.sample_batch} observations", lambda: gmpo.policy(obs_big, deterministic=True),
         lambda: plain_sample(gmpo.actor, obs_big), args.sample_batch, 31.0),
    ]  # fmt: skip
    peak = next((v for k, v in PEAK_TF32_FLOPS.items() if device.type == "cuda" and k in th.cuda.get_device_name()), None)
    for name, ours, reference, rows_per_call, net_evals in cases:
        ours_s, ref_s = timed(ours, device, args.repeats), timed(reference, device, args.repeats)
        row = {"setting": setting, "what": name, "batch": rows_per_call, "ours_ms": round(ours_s * 1e3, 3),
               "plain_eager_ms": round(ref_s * 1e3, 3), "speed-up": round(ref_s / ours_s, 2)}  # fmt: skip
        if peak and net_evals:  # forward (+ backward, 2x forward) FLOPs of the actor for the update
            flops = flops_per_row(gmpo.actor) * rows_per_call * (net_evals if "update" not in name else 3.0)
            row["arithmetic_limit_fraction"] = round(flops / peak / ours_s, 4)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------- compiled
def compiled_rows(setting: str, net_arch: list[int], batch: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each update and the sampler, eager against ``torch_compile`` (one mode), at each precision; compile time apart."""
    from sb3_generative.common.precision import precision_context

    device, rows = th.device(args.device), []
    models = {mode: compile_pair_models(net_arch, batch, args, mode) for mode in (False, args.compile)}
    for precision in args.precisions:
        for name, calls, rows_per_call, net_evals in compile_cases(models, batch, args):
            if args.skip and any(word in name for word in args.skip):
                continue
            with precision_context(precision, device):
                start = time.perf_counter()
                calls[args.compile]()  # the first call compiles
                first_s = time.perf_counter() - start
                eager_s, compiled_s = (
                    timed(calls[False], device, args.repeats),
                    timed(calls[args.compile], device, args.repeats),
                )
            row = {"setting": setting, "what": name, "batch": rows_per_call, "mode": args.compile, "precision": precision,
                   "eager_ms": round(eager_s * 1e3, 3), "compiled_ms": round(compiled_s * 1e3, 3),
                   "speed-up": round(eager_s / compiled_s, 2),
                   "compile_s": round(max(first_s - compiled_s, 0.0), 1)}  # fmt: skip
            row.update(arithmetic_fraction(models[False][0], name, rows_per_call, net_evals, compiled_s, device))
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def compile_pair_models(net_arch: list[int], batch: int, args: argparse.Namespace, mode: Any) -> tuple[GMPO, GMPG]:
    """A GMPO and a GMPG on the same data and seed, eager (mode False) or compiled."""
    common = dict(dataset=arrays(), critic_steps=0, critic_batch_size=batch, device=args.device, seed=0,
                  torch_compile=mode, policy_kwargs=dict(net_arch=net_arch))  # fmt: skip
    gmpo = GMPO("GenerativePolicy", None, batch_size=batch, beta=3.0, **common).pretrain()
    gmpg = GMPG("GenerativePolicy", None, batch_size=args.gmpg_batch or batch, bc_steps=0, **common).pretrain()
    gmpg.critic.requires_grad_(False)
    return gmpo, gmpg


def compile_cases(models: dict[Any, tuple[GMPO, GMPG]], batch: int, args: argparse.Namespace) -> list[tuple]:
    """(name, {mode: call}, rows per call, network evaluations per row) of each compiled region."""
    obs1 = arrays()["observations"][:1]
    obs_big = th.as_tensor(arrays()["observations"][: args.sample_batch], device=args.device)
    gmpg_batch = args.gmpg_batch or batch

    def per_mode(make: Callable[[GMPO, GMPG], Callable[[], Any]]) -> dict[Any, Callable[[], Any]]:
        return {mode: make(*pair) for mode, pair in models.items()}

    def sample(model: GMPO) -> Callable[[], Any]:
        return lambda: model.policy(obs_big, deterministic=True)

    return [
        ("GMPO policy update", per_mode(lambda gmpo, _: lambda: gmpo.train(1, batch)), batch, 3.0),
        ("IQL critic update", per_mode(lambda gmpo, _: lambda: gmpo.critic_step(gmpo.replay_buffer.sample(batch))),
         batch, 0.0),
        ("GMPG behaviour-cloning step", per_mode(lambda _, gmpg: lambda: gmpg.bc_step(gmpg.replay_buffer.sample(batch))),
         batch, 3.0),
        ("GMPG update (default kl_batch_size)", per_mode(lambda _, gmpg: lambda: gmpg.train(1, gmpg_batch)), gmpg_batch, 0.0),
        ("predict, 1 observation", per_mode(lambda gmpo, _: lambda: gmpo.predict(obs1, deterministic=True)), 1, 31.0),
        (f"sample {args.sample_batch} observations", per_mode(lambda gmpo, _: sample(gmpo)), args.sample_batch, 31.0),
    ]  # fmt: skip


def arithmetic_fraction(gmpo: GMPO, name: str, rows: int, net_evals: float, seconds: float, device: th.device) -> dict:
    """The fraction of the GPU's dense TF32 peak that the actor's FLOPs reach (CUDA only)."""
    peak = next((v for k, v in PEAK_TF32_FLOPS.items() if device.type == "cuda" and k in th.cuda.get_device_name()), None)
    if not peak or not net_evals:
        return {}
    return {"arithmetic_limit_fraction": round(flops_per_row(gmpo.actor) * rows * net_evals / peak / seconds, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if th.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--settings", nargs="+", default=["small", "paper"], choices=["tiny", "small", "paper"],
                        help="tiny ([16, 16], batch 32) only checks that every row runs")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=50, help="timed calls at most (fewer for slow ones)")
    parser.add_argument("--gmpg-batch", type=int, default=None, help="GMPG states per update (default: the setting's)")
    parser.add_argument("--gmpg-chunk", type=int, default=None, help="GMPG chunk size")
    parser.add_argument("--sample-batch", type=int, default=4096)
    parser.add_argument("--out", default=None, help="JSON file for the rows")
    parser.add_argument("--compile", default=None, help="also time torch_compile in this mode (True: default) against eager")
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "tf32", "bf16"])
    parser.add_argument("--only-compiled", action="store_true", help="skip the plain-eager reference rows")
    parser.add_argument("--skip", nargs="*", default=[], help="leave out the compiled rows whose name contains a word")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    if args.compile in ("True", "true", "default"):
        args.compile = True
    settings = {"tiny": ([16, 16], 32), "small": ([256, 256], 256), "paper": ([512, 256, 128], 4096)}
    rows = [] if args.only_compiled else [r for name in args.settings for r in measure(name, *settings[name], args)]
    if args.compile:
        rows += [r for name in args.settings for r in compiled_rows(name, *settings[name], args)]
    write_result("speed.py", args, rows)


def write_result(script: str, args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """Write the rows with the command and the machine to ``args.out`` (if given) as JSON."""
    device_name = th.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    write_json(args.out, script, f"{device_name}, {os.cpu_count()} cores, {args.threads} torch threads", rows)


def write_json(out: str | None, script: str, machine: str, rows: list[dict[str, Any]], prefix: str = "", **extra: Any) -> None:
    """Write a benchmark's rows with its command, the machine and the versions to ``out`` (if given) as JSON, whole
    (a temporary file moved over an earlier result).

    :param out: the JSON file (None: nothing written)
    :param script: the script's file name
    :param machine: a description of the machine
    :param rows: the figures
    :param prefix: what precedes the command (environment variables)
    :param extra: further versions or settings to record
    """
    result = {
        "command": f"{prefix}python benchmarks/{script} " + " ".join(sys.argv[1:]),
        "machine": machine,
        "torch": th.__version__,
        "sb3_generative": sb3_generative.__version__,
        **extra,
        "rows": rows,
    }
    if out:
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        with open(out + ".tmp", "w") as file:
            json.dump(result, file, indent=2)
        os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
