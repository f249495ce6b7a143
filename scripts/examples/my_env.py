"""Plug in your own env: any ``gymnasium.Env`` whose spaces an agent supports can be trained on.

Run it: ``python -m perceptgym.examples.my_env``. From the command line the same env is
``--env perceptgym.examples.my_env:CorridorEnv``.
"""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym


class CorridorEnv(gym.Env[int, int]):
    """Walk to the right end of a corridor of ``length`` cells: +1 there, −0.01 per step elsewhere.

    Actions: 0 = left, 1 = right. Observation: the cell index. Starts in the left half.
    """

    metadata: ClassVar[dict] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, length: int = 8, render_mode: str | None = None):
        if length < 2:
            raise ValueError(f"length={length} must be >= 2")
        self.length = length
        self.observation_space = gym.spaces.Discrete(length)
        self.action_space = gym.spaces.Discrete(2)
        self.render_mode = render_mode
        self._cell = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._cell = int(self.np_random.integers(0, self.length // 2))
        return self._cell, {}

    def step(self, action: int):
        self._cell = min(max(self._cell + (1 if action == 1 else -1), 0), self.length - 1)
        terminated = self._cell == self.length - 1
        reward = 1.0 if terminated else -0.01
        return self._cell, reward, terminated, False, {"is_success": terminated}

    def render(self) -> str:
        return "".join("A" if i == self._cell else "." for i in range(self.length))


if __name__ == "__main__":
    from perceptgym.agents.env_factory import make_env
    from perceptgym.agents.loop import evaluate, train
    from perceptgym.agents.registry import make_agent

    # "module:Class" works wherever an env id does (scripts/train.py --env, train_run, make_env).
    env = make_env("perceptgym.examples.my_env:CorridorEnv", {"length": 8}, max_episode_steps=100)
    agent = make_agent(
        "q_learning", env.observation_space, env.action_space, {"alpha": 0.5, "epsilon": 0.2, "gamma": 0.99}, seed=0
    )
    train(env, agent, n_episodes=200, seed=0)
    result = evaluate(agent, env, n_episodes=20, seed=1)
    print(f"q_learning on CorridorEnv: {result}")
    assert result.success_rate == 1.0
