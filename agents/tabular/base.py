"""What every tabular agent shares: the Q table, ε-greedy acting, schedules, and the .npz checkpoint.

The Q table lives in Python lists of floats, not in a numpy array: the per-step work of a TD update is a
handful of scalar reads and writes on one row, where ``max(list)`` costs ~0.1 µs and ``ndarray.max()`` ~1.5 µs
(numpy's per-call overhead). That is what keeps the training loop within the issue's speed floor on Taxi.
``agent.q`` gives the table as a (read-only) numpy array; checkpoints store it as one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from perceptgym.agents.base import CheckpointError, Transition, check_spaces, checkpoint_file, describe_space
from perceptgym.agents.config import check_choice, check_positive_int, check_range, config_from_dict
from perceptgym.agents.schedules import SCHEDULE_KINDS, Schedule
from perceptgym.supervised.checkpoint import load_npz, save_npz

FORMAT = "perceptgym.tabular"
FORMAT_VERSION = 1
_BUFFER = 4096  # uniforms drawn from the Generator per batch (one Generator call per ~4000 steps)


@dataclass(frozen=True)
class TabularConfig:
    """Settings shared by the tabular agents. Rates are decayed per episode."""

    alpha: float = 0.1
    """step size α in (0, 1] at episode 0"""
    alpha_end: float | None = None
    """α after ``alpha_decay_episodes`` (None: keep ``alpha``)"""
    alpha_schedule: str = "constant"
    """constant | linear | exponential"""
    alpha_decay_episodes: int = 1000
    """episodes to go from ``alpha`` to ``alpha_end``"""
    gamma: float = 0.99
    """discount γ in [0, 1]"""
    epsilon: float = 0.1
    """exploration rate ε in [0, 1] at episode 0"""
    epsilon_end: float | None = None
    """ε after ``epsilon_decay_episodes`` (None: keep ``epsilon``)"""
    epsilon_schedule: str = "constant"
    """constant | linear | exponential"""
    epsilon_decay_episodes: int = 1000
    """episodes to go from ``epsilon`` to ``epsilon_end``"""
    initial_q: float = 0.0
    """initial value of every Q(s, a); above the best return it is optimistic and drives exploration"""

    def __post_init__(self) -> None:
        check_range("alpha", self.alpha, 0.0, 1.0, low_open=True)
        check_range("gamma", self.gamma, 0.0, 1.0)
        check_range("epsilon", self.epsilon, 0.0, 1.0)
        if self.alpha_end is not None:
            check_range("alpha_end", self.alpha_end, 0.0, 1.0, low_open=True)
        if self.epsilon_end is not None:
            check_range("epsilon_end", self.epsilon_end, 0.0, 1.0)
        check_choice("alpha_schedule", self.alpha_schedule, SCHEDULE_KINDS)
        check_choice("epsilon_schedule", self.epsilon_schedule, SCHEDULE_KINDS)
        check_positive_int("alpha_decay_episodes", self.alpha_decay_episodes)
        check_positive_int("epsilon_decay_episodes", self.epsilon_decay_episodes)
        if not np.isfinite(self.initial_q):
            raise ValueError(f"initial_q={self.initial_q!r} must be a finite number")

    @property
    def alpha_by_episode(self) -> Schedule:
        end = self.alpha if self.alpha_end is None else self.alpha_end
        return Schedule(self.alpha_schedule, self.alpha, end, self.alpha_decay_episodes)

    @property
    def epsilon_by_episode(self) -> Schedule:
        end = self.epsilon if self.epsilon_end is None else self.epsilon_end
        return Schedule(self.epsilon_schedule, self.epsilon, end, self.epsilon_decay_episodes)


def _discrete(space: gym.Space, what: str, agent: str) -> tuple[int, int]:
    if not isinstance(space, gym.spaces.Discrete):
        hint = " (wrap the env with perceptgym.agents.spaces.make_tabular_env)" if what == "observation" else ""
        raise TypeError(f"{agent} needs a Discrete {what} space, got {space}{hint}")
    return int(space.n), int(space.start)


class TabularAgent:
    """ε-greedy agent over one (or more) Q tables; subclasses define ``update_step``.

    Args:
        observation_space: ``Discrete`` (see :mod:`perceptgym.agents.spaces` for other spaces).
        action_space: ``Discrete``.
        config: a :class:`TabularConfig` or a dict of its fields.
        rng: a ``np.random.Generator`` (or a seed) for exploration; same seed, same run.
    """

    name: ClassVar[str] = "tabular"
    config_class: ClassVar[type] = TabularConfig
    n_tables: ClassVar[int] = 1
    on_policy: ClassVar[bool] = False
    """True when the TD target uses the next action actually taken (SARSA): the loop picks it first."""

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: TabularConfig | dict | None = None,
        rng: np.random.Generator | int | None = None,
    ):
        self.n_states, self._obs_start = _discrete(observation_space, "observation", type(self).__name__)
        self.n_actions, self._act_start = _discrete(action_space, "action", type(self).__name__)
        self.observation_space, self.action_space = observation_space, action_space
        self.config = config_from_dict(self.config_class, config)
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        init = float(self.config.initial_q)
        self._tables = [[[init] * self.n_actions for _ in range(self.n_states)] for _ in range(self.n_tables)]
        self._q = self._tables[0]
        self._epsilon_schedule = self.config.epsilon_by_episode
        self._alpha_schedule = self.config.alpha_by_episode
        self.gamma = float(self.config.gamma)
        self._buffer: list[float] = []
        self._buffer_i = 0
        self.episode = 0
        self._set_rates()

    # ---- acting ------------------------------------------------------------------------------------------
    def _uniform(self) -> float:
        i = self._buffer_i
        if i >= len(self._buffer):
            self._buffer = self.rng.random(_BUFFER).tolist()
            i = 0
        self._buffer_i = i + 1
        return self._buffer[i]

    def _values(self, s: int) -> list[float]:
        """Action values used to act greedily in state index ``s``."""
        return self._q[s]

    def act(self, obs: Any, *, explore: bool = True) -> int:
        """ε-greedy action when ``explore``, else greedy.

        Ties between greedy actions are broken at random while exploring (with a zero-initialised table,
        always taking the first action would make FrozenLake's agent walk into the wall) and go to the
        lowest action otherwise, so evaluation is deterministic.
        """
        if explore and self._uniform() < self.epsilon:
            return int(self._uniform() * self.n_actions) + self._act_start
        row = self._values(int(obs) - self._obs_start)
        best = max(row)
        if explore and row.count(best) > 1:
            ties = [i for i, v in enumerate(row) if v == best]
            return ties[int(self._uniform() * len(ties))] + self._act_start
        return row.index(best) + self._act_start

    # ---- learning ----------------------------------------------------------------------------------------
    def update_step(
        self, obs: Any, action: Any, reward: float, next_obs: Any, terminated: bool, next_action: Any = None
    ) -> None:
        """One TD update: Q(s,a) ← Q(s,a) + α[target − Q(s,a)].

        The target is ``reward`` when ``terminated`` and ``reward + γ·next_value`` otherwise (also after a
        truncation: the episode was cut, the state still has a value).
        """
        row = self._q[obs - self._obs_start]
        a = action - self._act_start
        if terminated:
            target = reward
        else:
            target = reward + self.gamma * self._next_value(next_obs - self._obs_start, next_obs, next_action)
        row[a] += self.alpha * (target - row[a])

    def _next_value(self, s2: int, next_obs: Any, next_action: Any) -> float:
        """The algorithm's estimate of the value of state index ``s2`` (the part after γ in the target)."""
        raise NotImplementedError

    def update(self, t: Transition) -> None:
        """The :class:`perceptgym.agents.base.StepLearner` entry point (the loop calls ``update_step`` directly)."""
        self.update_step(t.obs, t.action, t.reward, t.next_obs, t.terminated, t.next_action)

    def end_episode(self) -> None:
        """Advances the episode counter that drives the ε and α schedules."""
        self.episode += 1
        self._set_rates()

    def _set_rates(self) -> None:
        self.epsilon = float(self._epsilon_schedule(self.episode))
        self.alpha = float(self._alpha_schedule(self.episode))

    def learn(self, env: gym.Env, total_timesteps: int, *, seed: int | None = None, callback: Any = None) -> Any:
        """Trains for ``total_timesteps`` env steps (see :func:`perceptgym.agents.loop.train`)."""
        from perceptgym.agents.loop import train

        return train(env, self, total_timesteps=total_timesteps, seed=seed, callback=callback)

    # ---- tables ------------------------------------------------------------------------------------------
    @property
    def q(self) -> np.ndarray:
        """The action-value table as a read-only (n_states, n_actions) array (a copy)."""
        q = np.array(self._q, dtype=np.float64)
        q.flags.writeable = False
        return q

    def tables(self) -> list[np.ndarray]:
        """All Q tables (Double Q-learning has two) as arrays."""
        return [np.array(t, dtype=np.float64) for t in self._tables]

    def set_tables(self, tables: list[np.ndarray]) -> None:
        """Replaces the Q tables (shape-checked)."""
        if len(tables) != self.n_tables:
            raise ValueError(f"{self.name} has {self.n_tables} Q table(s), got {len(tables)}")
        for table in tables:
            if np.shape(table) != (self.n_states, self.n_actions) or not np.all(np.isfinite(table)):
                raise ValueError(
                    f"expected a finite Q table of shape {(self.n_states, self.n_actions)}, got {np.shape(table)}"
                )
        self._tables = [np.asarray(t, dtype=np.float64).tolist() for t in tables]
        self._q = self._tables[0]

    # ---- checkpoints -------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Writes ``path`` (.npz): the Q table(s), the config, the spaces and the training state."""
        meta = {
            "agent": self.name,
            "config": asdict(self.config),
            "observation_space": describe_space(self.observation_space),
            "action_space": describe_space(self.action_space),
            "n_states": self.n_states,
            "n_actions": self.n_actions,
            "obs_start": self._obs_start,
            "act_start": self._act_start,
            "episode": self.episode,
            "rng_state": self.rng.bit_generator.state,
        }
        tables = self.tables()
        arrays = {"q": tables[0], **{f"q{i}": t for i, t in enumerate(tables[1:], start=1)}}
        buffer = np.asarray(self._buffer[self._buffer_i :], dtype=np.float64)
        return save_npz(
            checkpoint_file(path, ".npz"),
            FORMAT,
            FORMAT_VERSION,
            meta,
            {"uniform_buffer": buffer, **arrays},
            libraries=("numpy", "gymnasium"),
            compress=True,
        )

    @classmethod
    def load(
        cls, path: str | Path, observation_space: gym.Space | None = None, action_space: gym.Space | None = None
    ) -> TabularAgent:
        """Reads a checkpoint written by :meth:`save`; refuses other spaces, formats and newer versions."""
        meta, arrays = read_tabular_checkpoint(path)
        agent_cls = _tabular_class(meta["agent"], path)
        if cls is not TabularAgent and agent_cls is not cls:
            raise CheckpointError(f"{path}: checkpoint holds a {meta['agent']!r} agent, not {cls.name!r}")
        check_spaces(meta, observation_space, action_space, path)
        obs_space = observation_space or gym.spaces.Discrete(meta["n_states"], start=meta["obs_start"])
        act_space = action_space or gym.spaces.Discrete(meta["n_actions"], start=meta["act_start"])
        agent = agent_cls(obs_space, act_space, meta["config"])
        try:
            agent.set_tables([arrays["q"]] + [arrays[f"q{i}"] for i in range(1, agent.n_tables)])
            agent.rng.bit_generator.state = meta["rng_state"]
            agent.episode = int(meta["episode"])
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"{path}: inconsistent tabular checkpoint: {e}") from e
        agent._buffer, agent._buffer_i = arrays["uniform_buffer"].tolist(), 0
        agent._set_rates()
        return agent


def read_tabular_checkpoint(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Reads and validates the envelope of a tabular checkpoint: (meta, arrays)."""
    meta, arrays = load_npz(path, FORMAT, FORMAT_VERSION)
    missing = {
        "agent",
        "config",
        "n_states",
        "n_actions",
        "obs_start",
        "act_start",
        "episode",
        "rng_state",
        "observation_space",
        "action_space",
    } - set(meta)
    if missing or "q" not in arrays or "uniform_buffer" not in arrays:
        raise CheckpointError(f"{path}: tabular checkpoint lacks {sorted(missing) or ['q/uniform_buffer']}")
    return meta, arrays


def _tabular_class(name: str, path: str | Path) -> type[TabularAgent]:
    from perceptgym.agents.tabular import TABULAR_AGENTS

    if name not in TABULAR_AGENTS:
        raise CheckpointError(f"{path}: unknown tabular agent {name!r}; known: {sorted(TABULAR_AGENTS)}")
    return TABULAR_AGENTS[name]
