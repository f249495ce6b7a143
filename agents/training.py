"""Training runs for any env × any registered agent, as ``scripts/train.py`` drives them.

* Hyperparameters come from ``agents/hyperparams/<agent>.yml``, keyed by env id as in RL Zoo; the
  ``default`` entry applies to every env and the env's own entry overrides it key by key.
* Each run gets ``runs/{env}__{agent}__{seed}__{unix_time}/`` with ``config.json``, ``progress.csv`` (one row
  per episode), TensorBoard events (``tb/``; SB3's own losses in ``sb3/``), ``checkpoints/`` (``last.*`` and
  ``state.json``) and, at the end, ``model.npz``/``model.pt`` and ``eval.json``. Every file but the logs is
  written atomically in the checkpoint envelope (:mod:`perceptgym.supervised.checkpoint`).
* Ctrl-C (``KeyboardInterrupt``) saves a checkpoint; ``train_run(resume=run_dir)`` continues from it. A
  tabular run interrupted between episodes resumes exactly (Q tables, episode counter and the agent's and
  env's RNG states are saved), so it ends with the same Q table as an uninterrupted run. SB3 runs resume
  from the model (and DQN's replay buffer when it is small), with fresh env episodes.
"""

from __future__ import annotations

import csv
import importlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from perceptgym.agents.env_factory import build_env
from perceptgym.agents.loop import Episode, EvalResult, evaluate, train
from perceptgym.agents.registry import agent_entry, load_agent, make_agent, make_config
from perceptgym.supervised.checkpoint import load_json, save_json

HYPERPARAMS_DIR = Path(__file__).parent / "hyperparams"
RUN_KEYS: dict[str, str] = {
    "n_episodes": "training episodes (step learners; training stops at n_episodes or n_timesteps)",
    "n_timesteps": "training env steps",
    "env_kwargs": "keyword arguments for the env constructor / gym.make",
    "max_episode_steps": "time limit (None: the env's registered one)",
    "env_wrappers": "list of 'module:Wrapper' or {'module:Wrapper': {kwargs}} applied in order",
    "obs_bins": "cells per dimension to discretise Box observations (tabular)",
    "obs_low": "lower bounds to clip Box observations to before discretising (tabular)",
    "obs_high": "upper bounds to clip Box observations to before discretising (tabular)",
    "eval_episodes": "greedy evaluation episodes at the end of the run",
    "checkpoint_every": "save a checkpoint every N episodes (step learners) or N env steps (SB3)",
}
DEFAULT_EVAL_EPISODES = 100
RUN_CONFIG_FORMAT, RUN_STATE_FORMAT, EVAL_FORMAT = "perceptgym.run_config", "perceptgym.run_state", "perceptgym.eval"
RUN_FILES_VERSION = 1
REPLAY_BUFFER_SAVE_LIMIT = 200 * 2**20  # bytes; larger DQN replay buffers are not kept for resuming


def load_hyperparams(agent: str, env_id: str, directory: str | Path = HYPERPARAMS_DIR) -> dict[str, Any]:
    """``default`` merged with the ``env_id`` entry of ``<directory>/<agent>.yml`` ({} without a file)."""
    path = Path(directory) / f"{agent}.yml"
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) or v is None for v in data.values()):
        raise ValueError(f"{path}: expected a mapping of env id -> settings (with an optional 'default')")
    return {**(data.get("default") or {}), **(data.get(env_id) or {})}


def split_hyperparams(agent: str, hyperparams: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """Splits merged hyperparameters into run settings and the agent's validated config object."""
    run = {k: v for k, v in hyperparams.items() if k in RUN_KEYS}
    rest = {k: v for k, v in hyperparams.items() if k not in RUN_KEYS}
    try:
        config = make_config(agent, rest)
    except (ValueError, TypeError) as e:
        raise ValueError(f"bad hyperparameters for {agent!r}: {e}; run settings: {sorted(RUN_KEYS)}") from e
    return run, config


def import_plugins(modules: Sequence[str]) -> None:
    """Imports user modules that register agents (``register_agent``) or envs, with a clear error."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(f"plugin module {module!r} cannot be imported: {e}") from e


def _run_name(env_id: str, agent: str, seed: int) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in env_id)
    return f"{safe}__{agent}__{seed}__{int(time.time())}"


def _seeds(seed: int) -> tuple[int, int, int]:
    """Independent agent, env and evaluation seeds from the run's one seed."""
    agent_ss, env_ss, eval_ss = np.random.SeedSequence(seed).spawn(3)
    return tuple(int(s.generate_state(1)[0]) for s in (agent_ss, env_ss, eval_ss))  # type: ignore[return-value]


class RunLogger:
    """One row per episode to ``progress.csv``, scalars to TensorBoard, and a tqdm progress bar."""

    FIELDS = ("episode", "global_step", "return", "length", "success")

    def __init__(
        self,
        run_dir: Path,
        *,
        total: int,
        unit: str,
        initial: int,
        progress: bool,
        tensorboard: bool,
        agent: Any = None,
    ):
        path = run_dir / "progress.csv"
        new = not path.exists()
        self._file = path.open("a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(self.FIELDS)
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(run_dir / "tb"))
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, initial=initial, unit=unit, disable=not progress, dynamic_ncols=True)
        self._by_steps = unit == "step"
        self._agent = agent
        self._recent: list[float] = []

    def __call__(self, ep: Episode) -> None:
        self._csv.writerow((ep.index, ep.global_step, ep.ep_return, ep.length, int(ep.success)))
        if self._writer is not None:
            self._writer.add_scalar("charts/episodic_return", ep.ep_return, ep.global_step)
            self._writer.add_scalar("charts/episodic_length", ep.length, ep.global_step)
            epsilon = getattr(self._agent, "epsilon", None)
            if epsilon is not None:
                self._writer.add_scalar("charts/epsilon", epsilon, ep.global_step)
        self._recent.append(ep.ep_return)
        self._bar.update(ep.global_step - self._bar.n if self._by_steps else 1)
        if len(self._recent) >= 100:
            self._bar.set_postfix(ret=f"{np.mean(self._recent):.2f}", refresh=False)
            self._recent.clear()

    def close(self) -> None:
        self._bar.close()
        self._file.close()
        if self._writer is not None:
            self._writer.close()


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    interrupted: bool
    global_step: int
    episodes: int
    eval: EvalResult | None


def _write_state(run_dir: Path, state: dict[str, Any]) -> None:
    save_json(run_dir / "checkpoints" / "state.json", RUN_STATE_FORMAT, RUN_FILES_VERSION, state)


def train_run(
    env_id: str | None = None,
    agent: str | None = None,
    *,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
    runs_dir: str | Path = "runs",
    resume: str | Path | None = None,
    progress: bool = True,
    tensorboard: bool = True,
    on_episode: Callable[[Episode], Any] | None = None,
    hyperparams_dir: str | Path = HYPERPARAMS_DIR,
    plugins: Sequence[str] = (),
    trust_checkpoint: bool = False,
) -> RunResult:
    """Trains ``agent`` on ``env_id`` in a new run directory, or continues the run in ``resume``.

    Args:
        env_id: a Gymnasium id, ``"perceptgym:perceptgym/..."`` or ``"module:Class"``.
        agent: a registered agent name (see :func:`perceptgym.agents.registry.agent_names`).
        seed: the run's one seed (agent, env and evaluation streams are derived from it).
        overrides: hyperparameters that replace the YAML ones (also when resuming, e.g. a longer budget).
        resume: a run directory to continue (``env_id``, ``agent`` and ``seed`` then come from it).
        on_episode: called after each logged episode (tests raise ``KeyboardInterrupt`` from it).
        plugins: modules to import first (they may register agents or envs); recorded in ``config.json`` so
            that resuming, evaluating and watching import them too.
        trust_checkpoint: let ``resume`` load an SB3 ``.zip`` written before perceptgym's safe format (SB3
            unpickles it, which can run code from the file).
    """
    if resume is not None:
        run_dir = Path(resume)
        saved = load_json(run_dir / "config.json", RUN_CONFIG_FORMAT, RUN_FILES_VERSION, headerless=True)
        env_id, agent, seed = saved["env_id"], saved["agent"], saved["seed"]
        plugins = [*saved.get("plugins", []), *(p for p in plugins if p not in saved.get("plugins", []))]
        hyperparams = {**saved["hyperparams"], **(overrides or {})}
        state = load_json(run_dir / "checkpoints" / "state.json", RUN_STATE_FORMAT, RUN_FILES_VERSION, headerless=True)
    else:
        if env_id is None or agent is None:
            raise ValueError("train_run needs env_id and agent (or resume=<run dir>)")
        hyperparams = {**load_hyperparams(agent, env_id, hyperparams_dir), **(overrides or {})}
        state = None
    import_plugins(plugins)
    entry = agent_entry(agent)
    run, config = split_hyperparams(agent, hyperparams)
    if resume is None:
        run_dir = Path(runs_dir) / _run_name(env_id, agent, seed)
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=False)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_json(
        run_dir / "config.json",
        RUN_CONFIG_FORMAT,
        RUN_FILES_VERSION,
        {
            "env_id": env_id,
            "agent": agent,
            "seed": seed,
            "kind": entry.kind,
            "hyperparams": hyperparams,
            "run_settings": run,
            "agent_config": asdict(config),
            "argv": sys.argv,
            "plugins": list(plugins),
        },
        libraries=("numpy", "gymnasium", "stable-baselines3", "torch"),
    )
    runner = _train_sb3 if entry.kind == "sb3" else _train_steps
    args = (env_id, agent, entry.kind, seed, run, config, run_dir, state, progress, tensorboard, on_episode)
    return runner(*args, trust_checkpoint=trust_checkpoint)


def _logger_callback(logger: RunLogger, on_episode: Callable[[Episode], Any] | None) -> Callable[[Episode], Any]:
    def callback(ep: Episode) -> None:
        logger(ep)
        if on_episode is not None:
            on_episode(ep)

    return callback


def _finish(run_dir: Path, agent: Any, env_id: str, run: dict, kind: str, eval_seed: int) -> EvalResult | None:
    agent.save(run_dir / "model")
    n = int(run.get("eval_episodes", DEFAULT_EVAL_EPISODES))
    if n <= 0:
        return None
    env = build_env(env_id, run, tabular=kind == "tabular")
    # a greedy policy can loop forever in an env without a time limit (CliffWalking): cap the episodes
    result = evaluate(agent, env, n, seed=eval_seed, max_steps=int(run.get("max_episode_steps") or 10_000))
    env.close()
    save_json(
        run_dir / "eval.json",
        EVAL_FORMAT,
        RUN_FILES_VERSION,
        {
            "mean_return": result.mean_return,
            "std_return": result.std_return,
            "success_rate": result.success_rate,
            "mean_length": result.mean_length,
            "n_episodes": n,
        },
    )
    return result


def _train_steps(
    env_id: str,
    name: str,
    kind: str,
    seed: int,
    run: dict,
    config: Any,
    run_dir: Path,
    state: dict | None,
    progress: bool,
    tensorboard: bool,
    on_episode: Callable[[Episode], Any] | None,
    trust_checkpoint: bool = False,
) -> RunResult:
    """Tabular and bandit agents: :func:`perceptgym.agents.loop.train`, one episode at a time."""
    agent_seed, env_seed, eval_seed = _seeds(seed)
    n_episodes, n_timesteps = run.get("n_episodes"), run.get("n_timesteps")
    if n_episodes is None and n_timesteps is None:
        raise ValueError(f"{name} on {env_id}: set n_episodes or n_timesteps in the hyperparameters")
    env = build_env(env_id, run, tabular=kind == "tabular")
    if state is None:
        agent = make_agent(name, env.observation_space, env.action_space, config, seed=agent_seed)
        global_step, reset_seed = 0, env_seed
    else:
        agent = load_agent(run_dir / "checkpoints" / state["checkpoint"], env.observation_space, env.action_space)
        global_step, reset_seed = int(state["global_step"]), None
        env.unwrapped.np_random = np.random.Generator(np.random.PCG64())
        env.unwrapped.np_random.bit_generator.state = state["env_rng_state"]
    episode = int(getattr(agent, "episode", state["episode"] if state else 0))
    by_episodes = n_episodes is not None
    logger = RunLogger(
        run_dir,
        total=int(n_episodes if by_episodes else n_timesteps),
        unit="ep" if by_episodes else "step",
        initial=episode if by_episodes else global_step,
        progress=progress,
        tensorboard=tensorboard,
        agent=agent,
    )
    every = int(run.get("checkpoint_every", 0) or 0)
    counter = {"episode": episode, "global_step": global_step}

    def save_checkpoint(finished: bool = False) -> None:
        path = agent.save(run_dir / "checkpoints" / "last")
        _write_state(
            run_dir,
            {
                "checkpoint": path.name,
                "episode": counter["episode"],
                "global_step": counter["global_step"],
                "finished": finished,
                "env_rng_state": env.unwrapped.np_random.bit_generator.state,
            },
        )

    log = _logger_callback(logger, on_episode)

    def callback(ep: Episode) -> None:
        counter["episode"], counter["global_step"] = ep.index + 1, ep.global_step
        log(ep)
        if every and counter["episode"] % every == 0:
            save_checkpoint()

    interrupted = False
    try:
        train(
            env,
            agent,
            n_episodes=n_episodes,
            total_timesteps=n_timesteps,
            seed=reset_seed,
            callback=callback,
            start_step=global_step,
        )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        logger.close()
    save_checkpoint(finished=not interrupted)
    if interrupted:
        print(f"\ninterrupted: checkpoint saved; continue with --resume {run_dir}", file=sys.stderr)
        return RunResult(run_dir, True, counter["global_step"], counter["episode"], None)
    result = _finish(run_dir, agent, env_id, run, kind, eval_seed)
    env.close()
    return RunResult(run_dir, False, counter["global_step"], counter["episode"], result)


def _train_sb3(
    env_id: str,
    name: str,
    kind: str,
    seed: int,
    run: dict,
    config: Any,
    run_dir: Path,
    state: dict | None,
    progress: bool,
    tensorboard: bool,
    on_episode: Callable[[Episode], Any] | None,
    trust_checkpoint: bool = False,
) -> RunResult:
    """SB3 agents: ``model.learn`` on ``n_envs`` envs, with callbacks for logging and checkpoints."""
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList
    from stable_baselines3.common.logger import configure

    from perceptgym.agents.sb3 import EpisodeCallback_
    from perceptgym.agents.vec_env import make_sb3_vec_env

    agent_seed, env_seed, eval_seed = _seeds(seed)
    n_timesteps = run.get("n_timesteps")
    if n_timesteps is None:
        raise ValueError(f"{name} on {env_id}: set n_timesteps in the hyperparameters")
    vec = make_sb3_vec_env(env_id, config.n_envs, seed=env_seed, settings=run)  # native vector env if it has one
    if state is None:
        agent = make_agent(name, vec.observation_space, vec.action_space, config, seed=agent_seed)
        episode = 0
    else:
        agent = load_agent(
            run_dir / "checkpoints" / state["checkpoint"],
            vec.observation_space,
            vec.action_space,
            trust_checkpoint=trust_checkpoint,
        )
        episode = int(state["episode"])
    formats = ["csv", "tensorboard"] if tensorboard else ["csv"]
    agent.model.set_logger(configure(str(run_dir / "sb3"), formats))
    logger = RunLogger(
        run_dir,
        total=int(n_timesteps),
        unit="step",
        initial=agent.num_timesteps,
        progress=progress,
        tensorboard=tensorboard,
    )
    every = int(run.get("checkpoint_every", 0) or 0)
    episodes = EpisodeCallback_(_logger_callback(logger, on_episode), start_episode=episode)

    def save_checkpoint(finished: bool = False) -> None:
        model = agent.model
        buffer = getattr(model, "replay_buffer", None)
        small = (
            buffer is not None
            and sum(
                getattr(buffer, k).nbytes
                for k in ("observations", "next_observations", "actions", "rewards")
                if isinstance(getattr(buffer, k, None), np.ndarray)
            )
            <= REPLAY_BUFFER_SAVE_LIMIT
        )
        path = agent.save(run_dir / "checkpoints" / "last", replay_buffer=small)
        _write_state(
            run_dir,
            {
                "checkpoint": path.name,
                "episode": episodes.episode,
                "global_step": agent.num_timesteps,
                "finished": finished,
            },
        )

    class Checkpoints(BaseCallback):
        def _on_step(self) -> bool:
            before = self.num_timesteps - self.training_env.num_envs
            if every and self.num_timesteps // every != before // every:
                save_checkpoint()
            return True

    remaining = int(n_timesteps) - agent.num_timesteps
    interrupted = False
    try:
        if remaining > 0:
            agent.learn(
                vec,
                remaining,
                seed=env_seed if state is None else None,
                callback=CallbackList([episodes, Checkpoints()]),
                reset_num_timesteps=state is None,
            )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        logger.close()
    save_checkpoint(finished=not interrupted)
    vec.close()
    if interrupted:
        print(f"\ninterrupted: checkpoint saved; continue with --resume {run_dir}", file=sys.stderr)
        return RunResult(run_dir, True, agent.num_timesteps, episodes.episode, None)
    result = _finish(run_dir, agent, env_id, run, kind, eval_seed)
    return RunResult(run_dir, False, agent.num_timesteps, episodes.episode, result)
