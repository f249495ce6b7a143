"""Training runs for any env × any registered agent, as ``scripts/train.py`` drives them.

* Hyperparameters come from ``agents/hyperparams/<agent>.yml``, keyed by env id as in RL Zoo; the
  ``default`` entry applies to every env and the env's own entry overrides it key by key. The run's own
  settings (budgets, env, evaluation, checkpoints) are a validated :class:`RunSettings`; the rest is the
  agent's validated config. Everything is checked, and the env and agent are built, before anything is
  written, so a bad setting leaves nothing on disk.
* Each run gets ``runs/{env}__{agent}__{seed}__{unix_time}/`` (``-2``, ``-3``... appended when two runs start in
  the same second) with ``config.json``, ``progress.csv`` (one row per episode), TensorBoard events (``tb/``,
  rows aggregated over up to 100 episodes or 5 s; SB3's own losses in ``sb3/``), ``checkpoints/`` (the
  agent, the env's state and ``state.json``, which names them) and, at the end, ``model.npz``/``model.pt``
  and ``eval.json``. Every file but the logs is written atomically in the checkpoint envelope
  (:mod:`perceptgym.supervised.checkpoint`).
* Checkpoints: one at the start, then every ``checkpoint_every`` episodes (SB3: env steps) and whenever
  ``checkpoint_seconds`` (60) have passed, and on Ctrl-C. A checkpoint's files are written first and
  ``state.json`` last, so a run killed at any moment (SIGKILL, power loss) has a complete checkpoint that
  ``train_run(resume=run_dir)`` continues from; ``progress.csv`` and TensorBoard are cut back to it.
* Ctrl-C is deferred to the end of the episode (step learners) or of the env step (SB3): the loop saves
  a checkpoint there and stops. A second Ctrl-C stops at once and keeps the previous checkpoint.
* **Exact resume** for step learners (tabular and bandit agents): the agent (tables, rng, counters), the
  env's RNG and, for envs that have one (DigitBandit), the env's own state (``get_resume_state``) are saved
  at an episode boundary, so an interrupted and resumed run ends with the same agent as an uninterrupted
  one. Envs whose episodes depend on the past only through ``np_random`` (Taxi, GridDriving) need nothing
  more. **SB3 runs** resume from the model as of its last completed update (policy, optimiser,
  ``num_timesteps``, DQN's replay buffer when small): the envs start fresh episodes and a partly
  collected rollout is dropped, so a resumed run is not identical to an uninterrupted one; no env step
  or episode is counted twice.
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from perceptgym.agents.env_factory import ImportPolicy, build_env, import_plugins
from perceptgym.agents.loop import Episode, EvalResult, evaluate, train
from perceptgym.agents.registry import agent_entry, load_agent, make_agent, make_config
from perceptgym.agents.run_settings import RunSettings
from perceptgym.supervised.checkpoint import (
    CheckpointError,
    DeferredInterrupt,
    atomic_write,
    load_json,
    load_npz,
    save_json,
    save_npz,
)

__all__ = [
    "HYPERPARAMS_DIR",
    "RUN_KEYS",
    "RunLogger",
    "RunResult",
    "RunSettings",
    "import_plugins",
    "load_hyperparams",
    "new_run_dir",
    "run_hyperparams",
    "split_hyperparams",
    "train_run",
]

HYPERPARAMS_DIR = Path(__file__).parent / "hyperparams"
RUN_KEYS: tuple[str, ...] = RunSettings.names()
"""the hyperparameters that are run settings (:class:`RunSettings`), not the agent's"""
RUN_CONFIG_FORMAT, RUN_STATE_FORMAT, EVAL_FORMAT = "perceptgym.run_config", "perceptgym.run_state", "perceptgym.eval"
ENV_STATE_FORMAT = "perceptgym.env_state"
RUN_FILES_VERSION = 1
REPLAY_BUFFER_SAVE_LIMIT = 200 * 2**20  # bytes; larger DQN replay buffers are not kept for resuming
TENSORBOARD_EPISODES, TENSORBOARD_SECONDS = 100, 5.0
"""a TensorBoard row aggregates up to this many episodes, or the episodes of this many seconds"""


def load_hyperparams(agent: str, env_id: str, directory: str | Path = HYPERPARAMS_DIR) -> dict[str, Any]:
    """``default`` merged with the ``env_id`` entry of ``<directory>/<agent>.yml`` ({} without a file)."""
    path = Path(directory) / f"{agent}.yml"
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid YAML ({_one_line(e)})") from e
    if not isinstance(data, dict) or not all(isinstance(v, dict) or v is None for v in data.values()):
        raise ValueError(f"{path}: expected a mapping of env id -> settings (with an optional 'default')")
    return {**(data.get("default") or {}), **(data.get(env_id) or {})}


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def run_hyperparams(
    agent: str,
    env_id: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    resume: str | Path | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    hyperparams_dir: str | Path = HYPERPARAMS_DIR,
) -> dict[str, Any]:
    """The hyperparameters a run trains with, before they are checked (:func:`split_hyperparams`).

    ``agent``'s YAML recipe for ``env_id`` (resuming: the ones the run in ``resume`` saved in its
    ``config.json``), then ``overrides`` key by key, then ``env_kwargs`` key by key into the result's
    ``env_kwargs`` (an ``env_kwargs`` override replaces the recipe's whole mapping; this updates it).
    """
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ValueError(f"overrides must be a mapping of settings, got {overrides!r}")
    if resume is not None:
        base = _read_run_config(Path(resume))["hyperparams"]
    else:
        base = load_hyperparams(agent, env_id, hyperparams_dir)
    hyperparams = {**base, **(overrides or {})}
    if env_kwargs:
        hyperparams["env_kwargs"] = {**(hyperparams.get("env_kwargs") or {}), **env_kwargs}
    return hyperparams


def split_hyperparams(agent: str, hyperparams: Mapping[str, Any]) -> tuple[RunSettings, Any]:
    """Splits merged hyperparameters into the validated run settings and the agent's validated config."""
    if not isinstance(hyperparams, Mapping):
        raise ValueError(f"hyperparameters must be a mapping of settings, got {hyperparams!r}")
    run = {k: v for k, v in hyperparams.items() if k in RUN_KEYS}
    rest = {k: v for k, v in hyperparams.items() if k not in RUN_KEYS}
    agent_keys = [f.name for f in fields(agent_entry(agent).resolve_config_class())]
    unknown = sorted(set(rest) - set(agent_keys))
    if unknown:
        raise ValueError(
            f"bad hyperparameters for {agent!r}: unknown setting(s) {unknown}; valid settings: {sorted(agent_keys)}"
            f" (the agent's); run settings: {sorted(RUN_KEYS)}"
        )
    try:
        config = make_config(agent, rest)
    except (ValueError, TypeError) as e:
        raise ValueError(f"bad hyperparameters for {agent!r}: {e}") from e
    try:
        settings = RunSettings.from_mapping(run)
    except (ValueError, TypeError) as e:
        raise ValueError(f"bad run settings: {e}") from e
    return settings, config


def new_run_dir(parent: str | Path, stem: str) -> Path:
    """Creates ``parent/stem`` (``stem-2``, ``stem-3``... if taken): ``mkdir`` is atomic, so runs never share one."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = parent / (stem if n == 1 else f"{stem}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise OSError(f"{parent}: no free run directory name for {stem!r}")


def _run_name(env_id: str, agent: str, seed: int) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in env_id)
    return f"{safe}__{agent}__{seed}__{int(time.time())}"


def _seeds(seed: int) -> tuple[int, int, int]:
    """Independent agent, env and evaluation seeds from the run's one seed."""
    agent_ss, env_ss, eval_ss = np.random.SeedSequence(seed).spawn(3)
    return tuple(int(s.generate_state(1)[0]) for s in (agent_ss, env_ss, eval_ss))  # type: ignore[return-value]


# ---- logs ----------------------------------------------------------------------------------------------------
def truncate_progress(run_dir: Path, episodes: int) -> None:
    """Keeps the header and the rows of the first ``episodes`` episodes of ``progress.csv`` (a resume after a kill).

    Rows written after the checkpoint would be written again by the resumed run; a row cut short by the kill
    is dropped with them.
    """
    path = run_dir / "progress.csv"
    if not path.is_file():
        return
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != RunLogger.FIELDS:
        raise CheckpointError(f"{path}: not a progress.csv of this run (header {rows[0] if rows else None})")
    kept = [rows[0]]
    for row in rows[1:]:
        if len(row) != len(RunLogger.FIELDS) or not row[0].isdigit() or int(row[0]) != len(kept) - 1:
            break
        if int(row[0]) >= episodes:
            break
        kept.append(row)

    def write(f) -> None:
        text = "".join(",".join(row) + "\r\n" for row in kept)  # csv.writer's line ends
        f.write(text.encode())

    atomic_write(path, write)


class RunLogger:
    """One row per episode to ``progress.csv``, aggregated TensorBoard rows, and a tqdm progress bar.

    A TensorBoard row holds the mean return, length and success rate of up to :data:`TENSORBOARD_EPISODES`
    episodes, or of those of the last :data:`TENSORBOARD_SECONDS` (a row per episode made GridDriving
    Q-learning 2.5x slower). ``purge_step`` (on resume) hides events written after the checkpoint.
    """

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
        purge_step: int | None = None,
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

            self._writer = SummaryWriter(str(run_dir / "tb"), purge_step=purge_step)
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, initial=initial, unit=unit, disable=not progress, dynamic_ncols=True)
        self._by_steps = unit == "step"
        self._agent = agent
        self._recent: list[float] = []
        self._window: list[Episode] = []
        self._window_start = time.monotonic()

    def __call__(self, ep: Episode) -> None:
        self._csv.writerow((ep.index, ep.global_step, ep.ep_return, ep.length, int(ep.success)))
        if self._writer is not None:
            self._window.append(ep)
            now = time.monotonic()
            if len(self._window) >= TENSORBOARD_EPISODES or now - self._window_start >= TENSORBOARD_SECONDS:
                self._write_tensorboard()
                self._window_start = now
        self._recent.append(ep.ep_return)
        self._bar.update(ep.global_step - self._bar.n if self._by_steps else 1)
        if len(self._recent) >= 100:
            self._bar.set_postfix(ret=f"{np.mean(self._recent):.2f}", refresh=False)
            self._recent.clear()

    def _write_tensorboard(self) -> None:
        if not self._window:
            return
        step = self._window[-1].global_step
        self._writer.add_scalar("charts/episodic_return", np.mean([e.ep_return for e in self._window]), step)
        self._writer.add_scalar("charts/episodic_length", np.mean([e.length for e in self._window]), step)
        self._writer.add_scalar("charts/success_rate", np.mean([e.success for e in self._window]), step)
        epsilon = getattr(self._agent, "epsilon", None)
        if epsilon is not None:
            self._writer.add_scalar("charts/epsilon", epsilon, step)
        self._window.clear()

    def flush(self) -> None:
        """Puts every row logged so far on disk (before a checkpoint: its rows must survive a kill)."""
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        self._bar.close()
        self._file.close()
        if self._writer is not None:
            self._write_tensorboard()
            self._writer.close()


# ---- checkpoints ---------------------------------------------------------------------------------------------
class _Checkpoints:
    """A run's ``checkpoints/`` folder: each checkpoint's files under new names, then ``state.json`` naming them.

    ``state.json`` is written last and atomically, so at every moment it names a complete checkpoint; the
    files of older checkpoints are deleted after it.
    """

    def __init__(self, run_dir: Path):
        self.folder = run_dir / "checkpoints"
        self.count = 0

    def save(self, agent: Any, state: dict[str, Any], env: Any = None, **save_kwargs: Any) -> None:
        self.count += 1
        stem = f"last-{time.time_ns():x}-{self.count}"  # unique, even for two saves in the same nanosecond tick
        path = agent.save(self.folder / stem, **save_kwargs)
        state = {**state, "checkpoint": path.name, "env_state": None}
        env_state = _env_resume_state(env)
        if env_state is not None:
            meta, arrays = env_state
            state["env_state"] = save_npz(self.folder / f"{stem}.env.npz", ENV_STATE_FORMAT, 1, meta, arrays).name
        save_json(self.folder / "state.json", RUN_STATE_FORMAT, RUN_FILES_VERSION, state)
        for old in self.folder.iterdir():  # what older checkpoints left (agent, env state, replay buffers)
            if old.name != "state.json" and not old.name.startswith(f"{stem}.") and old.is_file():
                old.unlink(missing_ok=True)


def _env_resume_state(env: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    get = getattr(getattr(env, "unwrapped", None), "get_resume_state", None)
    return get() if callable(get) else None


def _read_state(run_dir: Path) -> dict[str, Any]:
    """The run's ``checkpoints/state.json``, checked: a clear error for a missing, corrupt or incomplete one."""
    path = run_dir / "checkpoints" / "state.json"
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no checkpoint to resume from (the run stopped before its first checkpoint); start it again"
        )
    state = load_json(path, RUN_STATE_FORMAT, RUN_FILES_VERSION, headerless=True)
    for key, kind in (("checkpoint", str), ("episode", int), ("global_step", int)):
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, kind) or (kind is int and value < 0):
            raise CheckpointError(f"{path}: {key}={value!r} is missing or invalid; the file is damaged")
    checkpoint = path.parent / state["checkpoint"]
    if Path(state["checkpoint"]).name != state["checkpoint"] or not checkpoint.is_file():
        raise CheckpointError(f"{path}: names the checkpoint {state['checkpoint']!r}, which is not in {path.parent}")
    return state


def _read_run_config(run_dir: Path) -> dict[str, Any]:
    """A run directory's ``config.json``, checked for what resuming needs."""
    if not run_dir.exists():
        raise ValueError(f"--resume {run_dir}: no such run directory")
    if not run_dir.is_dir():
        raise ValueError(f"--resume {run_dir}: not a directory (give the run directory, not a file in it)")
    path = run_dir / "config.json"
    if not path.is_file():
        raise ValueError(f"--resume {run_dir}: no config.json in it (not a run directory?)")
    config = load_json(path, RUN_CONFIG_FORMAT, RUN_FILES_VERSION, headerless=True)
    check_run_config(config, path)
    return config


def check_run_config(config: Any, path: Path) -> None:
    """Refuses a ``config.json`` without the keys a run needs (or with wrong types), naming the file."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(config).__name__}")
    for key, kind in (("env_id", str), ("agent", str), ("seed", int), ("hyperparams", dict)):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise CheckpointError(f"{path}: {key}={value!r} is missing or invalid")
    plugins = config.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise CheckpointError(f"{path}: plugins={plugins!r} must be a list of module names")


# ---- the run -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    interrupted: bool
    global_step: int
    episodes: int
    eval: EvalResult | None


@dataclass
class _Plan:
    """Everything a run needs, validated and built before anything is written."""

    env_id: str
    agent_name: str
    kind: str
    seed: int
    hyperparams: dict[str, Any]
    settings: RunSettings
    config: Any
    plugins: list[str]
    policy: ImportPolicy | None
    run_dir: Path | None
    state: dict[str, Any] | None


def train_run(
    env_id: str | None = None,
    agent: str | None = None,
    *,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    runs_dir: str | Path = "runs",
    resume: str | Path | None = None,
    progress: bool = True,
    tensorboard: bool = True,
    on_episode: Callable[[Episode], Any] | None = None,
    hyperparams_dir: str | Path = HYPERPARAMS_DIR,
    plugins: Sequence[str] = (),
    trust_checkpoint: bool = False,
    trust_plugins: bool = False,
) -> RunResult:
    """Trains ``agent`` on ``env_id`` in a new run directory, or continues the run in ``resume``.

    Args:
        env_id: a Gymnasium id, ``"perceptgym:perceptgym/..."`` or ``"module:Class"``.
        agent: a registered agent name (see :func:`perceptgym.agents.registry.agent_names`).
        seed: the run's one seed (agent, env and evaluation streams are derived from it).
        overrides: hyperparameters that replace the YAML ones (also when resuming, e.g. a longer budget).
        env_kwargs: env settings that update the hyperparameters' ``env_kwargs`` key by key (see
            :func:`run_hyperparams`).
        resume: a run directory to continue (``env_id``, ``agent`` and ``seed`` then come from it).
        on_episode: called after each logged episode (tests raise ``KeyboardInterrupt`` from it).
        plugins: modules to import first (they may register agents or envs); recorded in ``config.json`` so
            that resuming, evaluating and watching import them too.
        trust_checkpoint: let ``resume`` load an SB3 ``.zip`` written before perceptgym's safe format (SB3
            unpickles it, which can run code from the file).
        trust_plugins: let ``resume`` import the modules the run's ``config.json`` names (plug-ins, env and
            wrapper modules) beyond perceptgym's, Gymnasium's and those given in ``plugins``.
    """
    plan = _plan(env_id, agent, seed, overrides, env_kwargs, resume, hyperparams_dir, plugins, trust_plugins)
    runner = _train_sb3 if plan.kind == "sb3" else _train_steps
    return runner(plan, runs_dir, progress, tensorboard, on_episode, trust_checkpoint)


def _plan(
    env_id: str | None,
    agent: str | None,
    seed: int,
    overrides: Mapping[str, Any] | None,
    env_kwargs: Mapping[str, Any] | None,
    resume: str | Path | None,
    hyperparams_dir: str | Path,
    plugins: Sequence[str],
    trust_plugins: bool,
) -> _Plan:
    import_plugins(list(plugins))  # the caller's own: imported as asked
    if resume is not None:
        run_dir = Path(resume)
        saved = _read_run_config(run_dir)
        state = _read_state(run_dir)
        policy = ImportPolicy(run_dir / "config.json", trust=trust_plugins, allowed=frozenset(plugins), run_dir=run_dir)
        env_id, agent, seed = saved["env_id"], saved["agent"], saved["seed"]
        saved_plugins = saved.get("plugins", [])
        import_plugins(saved_plugins, policy)
        plugins = [*saved_plugins, *(p for p in plugins if p not in saved_plugins)]
    else:
        if env_id is None or agent is None:
            raise ValueError("train_run needs env_id and agent (or resume=<run dir>)")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed={seed!r} must be an integer >= 0")
        run_dir, state, policy = None, None, None
    hyperparams = run_hyperparams(
        agent, env_id, overrides, resume=run_dir, env_kwargs=env_kwargs, hyperparams_dir=hyperparams_dir
    )
    entry = agent_entry(agent)
    settings, config = split_hyperparams(agent, hyperparams)
    if entry.kind == "sb3":
        if settings.n_episodes is not None:
            raise ValueError(
                f"n_episodes={settings.n_episodes}: {agent} (an SB3 agent) trains for a number of env steps; "
                "set n_timesteps instead"
            )
        if settings.n_timesteps is None:
            raise ValueError(f"{agent} on {env_id}: set n_timesteps in the hyperparameters")
    elif settings.n_episodes is None and settings.n_timesteps is None:
        raise ValueError(f"{agent} on {env_id}: set n_episodes or n_timesteps in the hyperparameters")
    return _Plan(env_id, agent, entry.kind, seed, hyperparams, settings, config, list(plugins), policy, run_dir, state)


def _start(plan: _Plan, runs_dir: str | Path) -> Path:
    """The run directory, with ``config.json``: created (a new run) or updated (a resumed one)."""
    run_dir = plan.run_dir or new_run_dir(runs_dir, _run_name(plan.env_id, plan.agent_name, plan.seed))
    save_json(
        run_dir / "config.json",
        RUN_CONFIG_FORMAT,
        RUN_FILES_VERSION,
        {
            "env_id": plan.env_id,
            "agent": plan.agent_name,
            "seed": plan.seed,
            "kind": plan.kind,
            "hyperparams": plan.hyperparams,
            "run_settings": plan.settings.as_dict(),
            "agent_config": asdict(plan.config),
            "argv": sys.argv,
            "plugins": plan.plugins,
        },
        libraries=("numpy", "gymnasium", "stable-baselines3", "torch"),
    )
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    if plan.state is not None:
        truncate_progress(run_dir, plan.state["episode"])
    return run_dir


def _logger_callback(logger: RunLogger, on_episode: Callable[[Episode], Any] | None) -> Callable[[Episode], Any]:
    def callback(ep: Episode) -> None:
        logger(ep)
        if on_episode is not None:
            on_episode(ep)

    return callback


class _Clock:
    """When a checkpoint is due: every ``every`` units (episodes or steps) and every ``seconds`` seconds."""

    def __init__(self, every: int, seconds: float):
        self.every, self.seconds = every, seconds
        self.last = time.monotonic()

    def due(self, before: int, now: int) -> bool:
        by_count = bool(self.every) and now // self.every != before // self.every
        by_time = bool(self.seconds) and time.monotonic() - self.last >= self.seconds
        return by_count or by_time

    def reset(self) -> None:
        self.last = time.monotonic()


def _finish(run_dir: Path, agent: Any, plan: _Plan, eval_seed: int) -> EvalResult | None:
    agent.save(run_dir / "model")
    n = plan.settings.eval_episodes
    if n == 0:
        return None
    env = build_env(plan.env_id, plan.settings.env_settings(), tabular=plan.kind == "tabular", policy=plan.policy)
    # bounded: the env's time limit, max_episode_steps, or loop.DEFAULT_STEP_LIMIT for an env without one
    result = evaluate(agent, env, n, seed=eval_seed, max_steps=plan.settings.max_episode_steps)
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


class _Interrupted(Exception):
    """Raised by the episode callback at an episode boundary after a (deferred) Ctrl-C."""


def _restore_env(env: Any, run_dir: Path, state: dict[str, Any]) -> None:
    path = run_dir / "checkpoints" / "state.json"
    try:
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = state["env_rng_state"]
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: env_rng_state is missing or invalid ({_one_line(e)})") from e
    env.unwrapped.np_random = rng
    if state.get("env_state"):
        meta, arrays = load_npz(path.parent / state["env_state"], ENV_STATE_FORMAT, 1)
        setter = getattr(env.unwrapped, "set_resume_state", None)
        if setter is None:
            raise CheckpointError(f"{path}: holds an env state, but {type(env.unwrapped).__name__} cannot take one")
        try:
            setter(meta, arrays)
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path.parent / state['env_state']}: not this env's state ({e})") from e


def _train_steps(
    plan: _Plan,
    runs_dir: str | Path,
    progress: bool,
    tensorboard: bool,
    on_episode: Callable[[Episode], Any] | None,
    trust_checkpoint: bool = False,
) -> RunResult:
    """Tabular and bandit agents: :func:`perceptgym.agents.loop.train`, one episode at a time."""
    settings, state = plan.settings, plan.state
    agent_seed, env_seed, eval_seed = _seeds(plan.seed)
    env = build_env(plan.env_id, settings.training_env_settings(), tabular=plan.kind == "tabular", policy=plan.policy)
    if state is None:
        agent = make_agent(plan.agent_name, env.observation_space, env.action_space, plan.config, seed=agent_seed)
        global_step, episode, reset_seed = 0, 0, env_seed
    else:
        agent = load_agent(plan.run_dir / "checkpoints" / state["checkpoint"], env.observation_space, env.action_space)
        _restore_env(env, plan.run_dir, state)
        global_step, episode, reset_seed = state["global_step"], state["episode"], None
    run_dir = _start(plan, runs_dir)
    n_episodes, n_timesteps = settings.n_episodes, settings.n_timesteps
    by_episodes = n_episodes is not None
    logger = RunLogger(
        run_dir,
        total=int(n_episodes if by_episodes else n_timesteps),
        unit="ep" if by_episodes else "step",
        initial=episode if by_episodes else global_step,
        progress=progress,
        tensorboard=tensorboard,
        agent=agent,
        purge_step=global_step if state is not None else None,
    )
    checkpoints, clock = _Checkpoints(run_dir), _Clock(settings.checkpoint_every, settings.checkpoint_seconds)
    counter = {"episode": episode, "global_step": global_step}

    def save_checkpoint(finished: bool = False) -> None:
        logger.flush()
        state = {
            "episode": counter["episode"],
            "global_step": counter["global_step"],
            "finished": finished,
            "env_rng_state": env.unwrapped.np_random.bit_generator.state,
        }
        checkpoints.save(agent, state, env)
        clock.reset()

    log = _logger_callback(logger, on_episode)
    consistent = True  # False after a second Ctrl-C, which can land mid-episode

    def callback(ep: Episode) -> None:
        before = counter["episode"]
        counter["episode"], counter["global_step"] = ep.index + 1, ep.global_step
        try:
            log(ep)
        except KeyboardInterrupt:  # raised by on_episode: still an episode boundary
            raise _Interrupted from None
        if clock.due(before, counter["episode"]):
            save_checkpoint()
        if interrupt.requested:
            raise _Interrupted

    interrupted = False
    with DeferredInterrupt() as interrupt:
        try:
            if state is None:
                save_checkpoint()  # a run killed at once can still be resumed
            train(
                env,
                agent,
                n_episodes=n_episodes,
                total_timesteps=n_timesteps,
                seed=reset_seed,
                callback=callback,
                start_step=global_step,
                start_episode=episode,
            )
        except _Interrupted:
            interrupted = True
        except KeyboardInterrupt:
            interrupted, consistent = True, False
        finally:
            logger.close()
        if consistent:
            save_checkpoint(finished=not interrupted)
    if interrupted:
        _say_interrupted(run_dir, consistent)
        env.close()
        return RunResult(run_dir, True, counter["global_step"], counter["episode"], None)
    env.close()
    result = _finish(run_dir, agent, plan, eval_seed)
    return RunResult(run_dir, False, counter["global_step"], counter["episode"], result)


def _say_interrupted(run_dir: Path, consistent: bool) -> None:
    if consistent:
        print(f"\ninterrupted: checkpoint saved; continue with --resume {run_dir}", file=sys.stderr)
    else:
        print(
            f"\ninterrupted mid-step: the last checkpoint is kept; continue from it with --resume {run_dir}",
            file=sys.stderr,
        )


def _sb3_logger(run_dir: Path, tensorboard: bool, resumed_at: int | None) -> Any:
    """SB3's own logs in ``sb3/``; a resumed run appends a CSV of its own (SB3 truncates its CSV on open)."""
    from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat

    folder = run_dir / "sb3"
    folder.mkdir(exist_ok=True)
    name = "progress.csv" if resumed_at is None else f"progress.resumed-at-{resumed_at}.csv"
    formats: list[Any] = [CSVOutputFormat(str(folder / name))]
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        board = TensorBoardOutputFormat(str(folder))
        if resumed_at is not None:  # hide what was logged after the checkpoint
            board.writer.close()
            board.writer = SummaryWriter(log_dir=str(folder), purge_step=resumed_at)
        formats.append(board)
    return Logger(str(folder), formats)


def _train_sb3(
    plan: _Plan,
    runs_dir: str | Path,
    progress: bool,
    tensorboard: bool,
    on_episode: Callable[[Episode], Any] | None,
    trust_checkpoint: bool = False,
) -> RunResult:
    """SB3 agents: ``model.learn`` on ``n_envs`` envs, with callbacks for logging and checkpoints."""
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList

    from perceptgym.agents.sb3 import EpisodeCallback_
    from perceptgym.agents.vec_env import make_sb3_vec_env

    settings, state, config = plan.settings, plan.state, plan.config
    agent_seed, env_seed, eval_seed = _seeds(plan.seed)
    n_timesteps = int(settings.n_timesteps)
    # the native vector env where the id has one (perceptgym.agents.vec_env), else DummyVecEnv of build_env
    vec = make_sb3_vec_env(
        plan.env_id, config.n_envs, seed=env_seed, settings=settings.training_env_settings(), policy=plan.policy
    )
    try:
        if state is None:
            agent = make_agent(plan.agent_name, vec.observation_space, vec.action_space, config, seed=agent_seed)
            episode = 0
        else:
            agent = load_agent(
                plan.run_dir / "checkpoints" / state["checkpoint"],
                vec.observation_space,
                vec.action_space,
                trust_checkpoint=trust_checkpoint,
            )
            episode = state["episode"]
    except BaseException:
        vec.close()
        raise
    run_dir = _start(plan, runs_dir)
    resumed_at = agent.num_timesteps if state is not None else None
    agent.model.set_logger(_sb3_logger(run_dir, tensorboard, resumed_at))
    logger = RunLogger(
        run_dir,
        total=n_timesteps,
        unit="step",
        initial=agent.num_timesteps,
        progress=progress,
        tensorboard=tensorboard,
        purge_step=resumed_at,
    )
    checkpoints, clock = _Checkpoints(run_dir), _Clock(settings.checkpoint_every, settings.checkpoint_seconds)
    stop = {"requested": False}

    def on_ep(ep: Episode) -> None:
        try:
            _logger_callback(logger, on_episode)(ep)
        except KeyboardInterrupt:  # from on_episode, at a step boundary
            stop["requested"] = True

    episodes = EpisodeCallback_(on_ep, start_episode=episode)

    def save_checkpoint(finished: bool = False) -> None:
        logger.flush()
        buffer = getattr(agent.model, "replay_buffer", None)
        small = (
            buffer is not None
            and sum(
                getattr(buffer, k).nbytes
                for k in ("observations", "next_observations", "actions", "rewards")
                if isinstance(getattr(buffer, k, None), np.ndarray)
            )
            <= REPLAY_BUFFER_SAVE_LIMIT
        )
        state = {"episode": episodes.episode, "global_step": agent.num_timesteps, "finished": finished}
        checkpoints.save(agent, state, replay_buffer=small)
        clock.reset()

    class Checkpoints(BaseCallback):
        def _on_step(self) -> bool:
            before = self.num_timesteps - self.training_env.num_envs
            if clock.due(before, self.num_timesteps):
                save_checkpoint()
            # a deferred Ctrl-C (or on_episode's KeyboardInterrupt) stops learn() cleanly after this step
            return not (interrupt.requested or stop["requested"])

    remaining = n_timesteps - agent.num_timesteps
    interrupted, consistent = False, True
    with DeferredInterrupt() as interrupt:
        try:
            if state is None:
                save_checkpoint()
            if remaining > 0:
                agent.learn(
                    vec,
                    remaining,
                    seed=env_seed if state is None else None,
                    callback=CallbackList([episodes, Checkpoints()]),
                    reset_num_timesteps=state is None,
                )
            interrupted = interrupt.requested or stop["requested"]
        except KeyboardInterrupt:
            interrupted, consistent = True, False
        finally:
            logger.close()
            vec.close()
        if consistent:
            save_checkpoint(finished=not interrupted and agent.num_timesteps >= n_timesteps)
    if interrupted:
        _say_interrupted(run_dir, consistent)
        return RunResult(run_dir, True, agent.num_timesteps, episodes.episode, None)
    result = _finish(run_dir, agent, plan, eval_seed)
    return RunResult(run_dir, False, agent.num_timesteps, episodes.episode, result)
