"""The paper's learned policy learns: on a fixed seed and a small setting its reward after
training is clearly above its untrained (random-action) reward and above IIS; saved agents load
back to the same actions."""

from __future__ import annotations

import numpy as np
import pytest

from his_opt.simulate import (
    BaselinePolicy,
    IppoAgents,
    IppoSettings,
    PaperEnv,
    load_sim_config,
    prepare,
    train_ippo,
)
from tests._simulate_fixtures import EXAMPLES, pool_similarity, write_config

N = 12
# small networks and a larger step than the paper's 5e-4 so that 60 short episodes suffice
SETTINGS = IppoSettings(episodes=60, slots_per_episode=32, minibatch=32, epochs=2,
                        hidden=(32, 32), lr=2e-3)


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ippo")
    cfg = load_sim_config(write_config(folder, arrivals=f"{{mode: fixed, users_per_round: {N}}}",
                                       policies="[ippo, iis]"))
    setup = prepare(cfg, similarity=pool_similarity(str(EXAMPLES / "users_paper.csv")))
    env = PaperEnv(setup.builder, N)
    rounds = [setup.builder.draw(0, r) for r in range(24)]
    return setup, env, rounds


def _mean_objective(env, agents, rounds, mode):
    lays = [env.layout(r) for r in rounds]
    acts, _ = agents.act(np.stack([lay.obs for lay in lays]), mode=mode)
    return float(np.mean([env.score(lay, a)["objective"] for lay, a in zip(lays, acts,
                                                                            strict=True)]))


def test_ippo_learns_beyond_random_and_iis(setting, tmp_path):
    import torch

    setup, env, rounds = setting
    agents = IppoAgents(N, env.action_sizes, SETTINGS, seed=0)
    torch.manual_seed(1)
    untrained = _mean_objective(env, agents, rounds, "sample")
    train_ippo(agents, env, SETTINGS, seed=0)
    trained = _mean_objective(env, agents, rounds, "mode")
    iis = BaselinePolicy("iis", setup.cfg)
    iis_mean = float(np.mean([_objective(setup, r, iis) for r in rounds]))
    scale = abs(iis_mean)
    assert trained > untrained + 0.5 * scale, (trained, untrained, iis_mean)
    assert trained > iis_mean + 0.1 * scale, (trained, untrained, iis_mean)

    path = tmp_path / "agents.pt"
    agents.save(path)
    again = IppoAgents(N, env.action_sizes, SETTINGS, seed=5)
    again.load_state(IppoAgents.read(path))
    obs = np.stack([env.layout(r).obs for r in rounds])
    assert np.array_equal(agents.act(obs, mode="mode")[0], again.act(obs, mode="mode")[0])
    other = IppoAgents(N + 1, env.action_sizes, SETTINGS)
    with pytest.raises(ValueError, match="saved policy has 12 agents"):
        other.load_state(IppoAgents.read(path))


def _objective(setup, rnd, policy):
    from his_opt.allocation import evaluate

    inst = setup.builder.instance(rnd)
    return evaluate(inst, policy.decide(rnd, inst).plan).objective
