"""Plug in your own agent: implement act / update / save / load, register it, and every tool can use it.

Run it: ``python -m perceptgym.examples.my_agent``. From the command line:
``python -m perceptgym.train --plugin perceptgym.examples.my_agent --agent monte_carlo --env FrozenLake-v1``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from perceptgym.agents.base import SpaceMismatchError, Transition, check_spaces, describe_space
from perceptgym.agents.registry import register_agent
from perceptgym.supervised.checkpoint import load_npz, save_npz


@dataclass(frozen=True)
class MonteCarloConfig:
    epsilon: float = 0.1
    """exploration rate"""
    gamma: float = 1.0
    """discount"""

    def __post_init__(self) -> None:
        for name in ("epsilon", "gamma"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be in [0, 1]")


class MonteCarloAgent:
    """Every-visit Monte Carlo control with an ε-greedy policy (Sutton & Barto 2018, section 5.4)."""

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: MonteCarloConfig | None = None,
        rng: np.random.Generator | None = None,
    ):
        if not isinstance(observation_space, gym.spaces.Discrete) or not isinstance(action_space, gym.spaces.Discrete):
            raise TypeError("MonteCarloAgent needs Discrete observation and action spaces")
        self.observation_space, self.action_space = observation_space, action_space
        self.config = config or MonteCarloConfig()
        self.rng = rng or np.random.default_rng()
        self.q = np.zeros((observation_space.n, action_space.n))
        self.visits = np.zeros_like(self.q)
        self._episode: list[tuple[int, int, float]] = []

    def act(self, obs: int, *, explore: bool = True) -> int:
        if explore and self.rng.random() < self.config.epsilon:
            return int(self.rng.integers(self.action_space.n))
        return int(np.argmax(self.q[obs]))

    def update(self, t: Transition) -> None:
        """Collects the episode; at its end, moves Q towards the observed returns."""
        self._episode.append((int(t.obs), int(t.action), float(t.reward)))
        if not (t.terminated or t.truncated):
            return
        g = 0.0
        for obs, action, reward in reversed(self._episode):
            g = reward + self.config.gamma * g
            self.visits[obs, action] += 1
            self.q[obs, action] += (g - self.q[obs, action]) / self.visits[obs, action]
        self._episode.clear()

    def save(self, path: str | Path) -> Path:
        # perceptgym's checkpoint envelope: written atomically, with format, version and library versions.
        # The registry finds the agent by the "agent" entry of the JSON meta.
        meta = {
            "agent": "monte_carlo",
            "config": asdict(self.config),
            "observation_space": describe_space(self.observation_space),
            "action_space": describe_space(self.action_space),
        }
        return save_npz(Path(path).with_suffix(".npz"), "monte_carlo", 1, meta, {"q": self.q, "visits": self.visits})

    @classmethod
    def load(
        cls, path: str | Path, observation_space: gym.Space | None = None, action_space: gym.Space | None = None
    ) -> MonteCarloAgent:
        meta, arrays = load_npz(path, "monte_carlo", 1)  # refuses other formats, newer versions, NaN/Inf
        q, visits = arrays["q"], arrays["visits"]
        check_spaces(meta, observation_space, action_space, path)  # raises SpaceMismatchError
        agent = cls(
            observation_space or gym.spaces.Discrete(q.shape[0]),
            action_space or gym.spaces.Discrete(q.shape[1]),
            MonteCarloConfig(**meta["config"]),
        )
        agent.q, agent.visits = q, visits
        return agent


# kind="tabular": train_run gives it Discrete observations (encoding or discretising others).
register_agent("monte_carlo", MonteCarloAgent, MonteCarloConfig, kind="tabular")


if __name__ == "__main__":
    import tempfile

    from perceptgym.agents.playback import load_run
    from perceptgym.agents.training import train_run

    with tempfile.TemporaryDirectory() as runs:
        result = train_run(
            "perceptgym.examples.my_env:CorridorEnv",
            "monte_carlo",
            seed=0,
            runs_dir=runs,
            overrides={"n_episodes": 300, "max_episode_steps": 100, "eval_episodes": 20, "epsilon": 0.2},
            plugins=["perceptgym.examples.my_agent"],
            progress=False,
            tensorboard=False,
        )
        print(f"monte_carlo on CorridorEnv: {result.eval}")
        assert result.eval is not None and result.eval.success_rate == 1.0
        run = load_run(result.run_dir)  # the saved agent comes back through the registry
        try:
            MonteCarloAgent.load(run.checkpoint, gym.spaces.Discrete(3), run.env.action_space)
        except SpaceMismatchError as e:
            print(f"refused as expected: {e}")
