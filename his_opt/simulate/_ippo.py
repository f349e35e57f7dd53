"""The paper's learned policy HID: independent PPO (IPPO) over one agent per user slot, built on
torchrl (``MultiAgentMLP`` with ``share_params=False`` for the 50 batched actors and critics,
``ClipPPOLoss`` for the clipped objective, ``generalized_advantage_estimate`` for GAE).

Each agent's action is two categorical choices, ``x`` in ``0..x_max`` and ``y`` in
``0..y_max`` (:class:`FactoredCategorical`). Reward scaling divides rewards by the running
standard deviation of the discounted return (Engstrom et al. 2020); ``ClipPPOLoss`` normalises
advantages per minibatch. Every episode reseeds torch from ``(seed, episode)`` and draws its slots
from the ``train`` stream, so training resumed from a checkpoint repeats an uninterrupted run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path
from ._config import IppoSettings
from ._env import PaperEnv

__all__ = ["IppoAgents", "RunningStd", "TRAINING_COLUMNS", "train_ippo"]

TRAINING_COLUMNS = ("episode", "reward", "objective", "quality", "delay_s", "energy_j",
                    "gpu_s", "entropy", "loss_objective", "loss_critic")


def _dist_class() -> type:
    import torch
    from torch import distributions as D

    class FactoredCategorical(D.Distribution):
        """Two independent categoricals (``x``, ``y``) over one logits vector per agent."""

        arg_constraints: dict = {}
        sizes: tuple[int, int] = (1, 1)

        def __init__(self, logits: torch.Tensor) -> None:
            a, b = logits.split(list(self.sizes), -1)
            self.cx, self.cy = D.Categorical(logits=a), D.Categorical(logits=b)
            super().__init__(batch_shape=logits.shape[:-1], event_shape=torch.Size([2]),
                             validate_args=False)

        def sample(self, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
            sample_shape = torch.Size(sample_shape)
            return torch.stack([self.cx.sample(sample_shape), self.cy.sample(sample_shape)], -1)

        def log_prob(self, value: torch.Tensor) -> torch.Tensor:
            return self.cx.log_prob(value[..., 0]) + self.cy.log_prob(value[..., 1])

        def entropy(self) -> torch.Tensor:
            return self.cx.entropy() + self.cy.entropy()

        @property
        def mode(self) -> torch.Tensor:
            return torch.stack([self.cx.probs.argmax(-1), self.cy.probs.argmax(-1)], -1)

        @property
        def deterministic_sample(self) -> torch.Tensor:
            return self.mode

    return FactoredCategorical


@dataclass
class RunningStd:
    """Welford running variance of the discounted return, for reward scaling."""

    count: float = 0.0
    mean: float = 0.0
    m2: float = 0.0

    def update(self, values: np.ndarray) -> None:
        for v in np.asarray(values, dtype=float).ravel():
            self.count += 1.0
            d = v - self.mean
            self.mean += d / self.count
            self.m2 += d * (v - self.mean)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count > 1 and self.m2 > 0 else 1.0


class IppoAgents:
    """The agents' actors and critics (batched over agents), the PPO loss and its optimizer."""

    def __init__(self, n_agents: int, action_sizes: tuple[int, int], settings: IppoSettings,
                 *, seed: int = 0) -> None:
        import torch
        from tensordict.nn import TensorDictModule
        from torchrl.modules import MultiAgentMLP, ProbabilisticActor, ValueOperator
        from torchrl.objectives import ClipPPOLoss

        torch.set_num_threads(settings.threads)
        torch.manual_seed(seed)
        self.settings = settings
        self.device = torch.device(settings.device)
        self.n_agents, self.action_sizes = n_agents, tuple(action_sizes)
        dist = type("FactoredCategorical", (_dist_class(),), {"sizes": self.action_sizes})

        def mlp(out: int) -> Any:
            return MultiAgentMLP(n_agent_inputs=2, n_agent_outputs=out, n_agents=n_agents,
                                 centralized=False, share_params=False, device=self.device,
                                 num_cells=list(settings.hidden), activation_class=torch.nn.Tanh)

        self.actor = ProbabilisticActor(
            TensorDictModule(mlp(sum(self.action_sizes)), in_keys=[("agents", "observation")],
                             out_keys=[("agents", "logits")]),
            in_keys={"logits": ("agents", "logits")}, out_keys=[("agents", "action")],
            distribution_class=dist, return_log_prob=True,
            log_prob_key=("agents", "sample_log_prob"))
        self.critic = ValueOperator(mlp(1), in_keys=[("agents", "observation")],
                                    out_keys=[("agents", "state_value")])
        self.loss = ClipPPOLoss(actor_network=self.actor, critic_network=self.critic,
                                clip_epsilon=settings.clip_epsilon,
                                entropy_coeff=settings.entropy_coef,
                                critic_coeff=settings.critic_coef, loss_critic_type="l2",
                                normalize_advantage=True)
        self.loss.set_keys(advantage=("agents", "advantage"),
                           value_target=("agents", "value_target"),
                           action=("agents", "action"),
                           sample_log_prob=("agents", "sample_log_prob"),
                           value=("agents", "state_value"), reward=("agents", "reward"),
                           done=("agents", "done"), terminated=("agents", "terminated"))
        self.optim = torch.optim.Adam(self.loss.parameters(), lr=settings.lr, foreach=True)
        self.scaler = RunningStd()
        self.episodes_done = 0

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, *, mode: str = "sample") -> tuple[np.ndarray, Any]:
        """Actions ``[..., N, 2]`` for observations ``[..., N, 2]`` and the filled tensordict."""
        import torch
        from tensordict import TensorDict
        from torchrl.envs.utils import ExplorationType, set_exploration_type

        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        td = TensorDict({("agents", "observation"): o}, batch_size=o.shape[:-2])
        kind = ExplorationType.RANDOM if mode == "sample" else ExplorationType.DETERMINISTIC
        with torch.no_grad(), set_exploration_type(kind):
            self.actor(td)
        return td["agents", "action"].cpu().numpy(), td

    # ------------------------------------------------------------------ learning
    def update(self, td: Any, rewards: np.ndarray, *, seed: int) -> dict[str, float]:
        """One PPO update on an episode ``td`` (batch ``[L]``) with slot rewards ``[L]``."""
        import torch
        from torchrl.objectives.value.functional import generalized_advantage_estimate

        st = self.settings
        L, N = td.batch_size[0], self.n_agents
        ret, returns = 0.0, []
        for r in rewards:
            ret = st.gamma * ret + float(r)
            returns.append(ret)
        self.scaler.update(np.array(returns))
        scaled = torch.as_tensor(rewards / self.scaler.std, dtype=torch.float32,
                                 device=self.device)
        with torch.no_grad():
            self.critic(td)
            v = td["agents", "state_value"]                      # [L, N, 1]
        nxt = torch.cat([v[1:], torch.zeros_like(v[:1])], 0)
        done = torch.zeros(L, N, 1, dtype=torch.bool, device=self.device)
        done[-1] = True
        rew = scaled.view(L, 1, 1).expand(L, N, 1)

        def tmaj(t: torch.Tensor) -> torch.Tensor:  # GAE wants time second: [N, L, 1]
            return t.transpose(0, 1)

        adv, target = generalized_advantage_estimate(
            st.gamma, st.gae_lambda, tmaj(v), tmaj(nxt), tmaj(rew), tmaj(done), tmaj(done))
        td.set(("agents", "advantage"), tmaj(adv))
        td.set(("agents", "value_target"), tmaj(target))
        gen = torch.Generator().manual_seed(seed)
        stats: dict[str, float] = {}
        for _ in range(st.epochs):
            perm = torch.randperm(L, generator=gen)
            for start in range(0, L, st.minibatch):
                batch = td[perm[start:start + st.minibatch].to(self.device)]
                with warnings.catch_warnings():
                    # one shared reward: advantages are normalised over slots and agents together
                    warnings.filterwarnings("ignore", message="You requested advantage normal")
                    out = self.loss(batch)
                total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
                self.optim.zero_grad()
                total.backward()
                torch.nn.utils.clip_grad_norm_(self.loss.parameters(), st.max_grad_norm)
                self.optim.step()
                stats = {"entropy": float(out["entropy"].detach()),
                         "loss_objective": float(out["loss_objective"].detach()),
                         "loss_critic": float(out["loss_critic"].detach())}
        self.episodes_done += 1
        return stats

    # ------------------------------------------------------------------ save / load
    def state(self) -> dict[str, Any]:
        return {"schema": "his-opt/ippo/1", "n_agents": self.n_agents,
                "action_sizes": list(self.action_sizes),
                "hidden": list(self.settings.hidden),
                "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "optim": self.optim.state_dict(),
                "scaler": [self.scaler.count, self.scaler.mean, self.scaler.m2],
                "episodes_done": self.episodes_done}

    def save(self, path: str | Path, **extra: Any) -> None:
        """Write the agents (and ``extra`` bookkeeping) atomically with ``torch.save``."""
        import torch

        with atomic_path(path) as tmp:
            torch.save({**self.state(), **extra}, tmp)

    def load_state(self, data: dict[str, Any]) -> None:
        if (data.get("n_agents") != self.n_agents
                or list(data.get("action_sizes", [])) != list(self.action_sizes)
                or list(data.get("hidden", [])) != list(self.settings.hidden)):
            raise ValueError(
                f"saved policy has {data.get('n_agents')} agents, actions "
                f"{data.get('action_sizes')} and hidden {data.get('hidden')}; this run needs "
                f"{self.n_agents}, {list(self.action_sizes)} and {list(self.settings.hidden)}")
        self.actor.load_state_dict(data["actor"])
        self.critic.load_state_dict(data["critic"])
        self.optim.load_state_dict(data["optim"])
        self.scaler = RunningStd(*data["scaler"])
        self.episodes_done = int(data["episodes_done"])

    @staticmethod
    def read(path: str | Path) -> dict[str, Any]:
        import torch

        return torch.load(path, map_location="cpu", weights_only=False)


def run_episode(agents: IppoAgents, env: PaperEnv, episode: int, slots: int, *,
                seed: int) -> dict[str, float]:
    """Roll out one training episode (all slots in one batched forward), then update."""
    import torch

    torch.manual_seed(int(np.random.SeedSequence([seed, 7, episode]).generate_state(1)[0]))
    builder = env.builder
    lays = [env.layout(builder.draw(episode, t, "train")) for t in range(slots)]
    actions, td = agents.act(np.stack([lay.obs for lay in lays]), mode="sample")
    scores = [env.score(lay, a) for lay, a in zip(lays, actions, strict=True)]
    rewards = np.array([s["reward"] for s in scores])
    stats = agents.update(td, rewards, seed=episode)
    mean = {k: float(np.mean([s[k] for s in scores]))
            for k in ("reward", "objective", "quality", "delay_s", "energy_j", "gpu_s")}
    return {"episode": episode, **mean, **stats}


def train_ippo(agents: IppoAgents, env: PaperEnv, settings: IppoSettings, *, seed: int,
               on_episode: Callable[[dict[str, float]], None] | None = None) -> IppoAgents:
    """Train from ``agents.episodes_done`` to ``settings.episodes``; ``on_episode`` gets each
    episode's means (it writes the log and the checkpoint)."""
    for episode in range(agents.episodes_done, settings.episodes):
        row = run_episode(agents, env, episode, settings.slots_per_episode, seed=seed)
        if on_episode is not None:
            on_episode(row)
    return agents
