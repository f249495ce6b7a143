"""Sweep files: what to run (envs × agents × configs × seeds), parsed and checked before anything starts.

A sweep file is YAML::

    env: FrozenLake-v1            # or envs: [FrozenLake-v1, Taxi-v4]
    agent: q_learning             # or agents: [q_learning, sarsa]
    seeds: [0, 1, 2]              # or a count: seeds: 5 (seeds 0..4)
    grid:                         # setting -> list of values: every combination is a config
      alpha: [0.1, 0.5]
    search:                       # setting -> distribution, sampled by Optuna (num_samples configs)
      epsilon_decay_episodes: {randint: [1000, 20000]}
    set:                          # fixed settings for every trial (over the agent's YAML hyperparameters)
      n_episodes: 300
    metric: return                # or success: what the search, early stopping and "best" use
    num_samples: 10               # configs the search tries (search only; --num-samples overrides)
    early_stopping: {grace: 0.25, reduction_factor: 3}   # ASHA; default on with search, off for grids
    search_seed: 0                # the search's sampler seed
    plugins: [my_package.agents]  # modules to import first (they register agents or envs)

Or, instead of env/agent/seeds/grid/search/set, an explicit list of runs, each with its own settings (the
ladder's rungs, whose recipes differ in more than a grid's values), run in the order listed::

    trials:
      - {env: FrozenLake-v1, agent: q_learning, seed: 0, set: {n_episodes: 300}}
      - {env: Taxi-v4, agent: sarsa, seed: 0, set: {n_episodes: 2000, alpha: 0.5}}

Distributions: ``{uniform: [low, high]}``, ``{loguniform: [low, high]}``, ``{quniform: [low, high, q]}``,
``{randint: [low, high]}`` and ``{lograndint: [low, high]}`` (integers, both ends included) and
``{choice: [a, b, ...]}``. Each trial is one :func:`perceptgym.agents.training.train_run` with the agent's
YAML hyperparameters for the env, then ``set``, then the trial's grid and search values on top.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

KEYS = (
    "env",
    "envs",
    "agent",
    "agents",
    "seeds",
    "grid",
    "search",
    "set",
    "metric",
    "num_samples",
    "early_stopping",
    "search_seed",
    "plugins",
    "trials",
)
TRIAL_KEYS = ("env", "agent", "seed", "set")
EXCLUSIVE = ("env", "agent", "grid", "search", "set", "num_samples")
"""keys an explicit ``trials`` list replaces (``envs``, ``agents`` and ``seeds`` may only repeat what it lists)"""
#: distribution name -> number of arguments (None: a non-empty list)
DISTRIBUTIONS: dict[str, int | None] = {
    "uniform": 2,
    "loguniform": 2,
    "quniform": 3,
    "randint": 2,
    "lograndint": 2,
    "choice": None,
}
METRICS = ("return", "success")
DEFAULT_NUM_SAMPLES = 10


class SweepFileError(ValueError):
    """A sweep file that cannot be run; the message names the file and the key."""


@dataclass(frozen=True)
class Distribution:
    kind: str
    args: tuple[Any, ...]

    def to_dict(self) -> dict[str, list]:
        return {self.kind: list(self.args)}


@dataclass(frozen=True)
class EarlyStopping:
    """ASHA: trials are compared at ``grace``, ``grace·rf``, ... of their training budget; the worst stop."""

    grace: float = 0.25
    """fraction of the training budget before a trial can be stopped"""
    reduction_factor: float = 3.0
    """1/reduction_factor of the trials go on at each rung"""


@dataclass(frozen=True)
class Trial:
    """One training run of the sweep: an env, an agent, the config's values and a seed."""

    env: str
    agent: str
    config: dict[str, Any]
    """the values the sweep chose (grid and search); ``set`` is applied under them"""
    seed: int
    fixed: dict[str, Any] = field(default_factory=dict)

    @property
    def overrides(self) -> dict[str, Any]:
        return {**self.fixed, **self.config}

    @property
    def key(self) -> str:
        """Stable id from the trial's content: the same trial has the same key (and run folder) on resume."""
        content = json.dumps([self.env, self.agent, self.overrides, self.seed], sort_keys=True, default=str)
        return hashlib.sha256(content.encode()).hexdigest()[:12]

    @property
    def config_key(self) -> str:
        content = json.dumps([self.env, self.agent, self.config], sort_keys=True, default=str)
        return hashlib.sha256(content.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class SweepSpec:
    envs: tuple[str, ...]
    agents: tuple[str, ...]
    seeds: tuple[int, ...]
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    search: dict[str, Distribution] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    metric: str = "return"
    num_samples: int | None = None
    early_stopping: EarlyStopping | None = None
    search_seed: int = 0
    plugins: tuple[str, ...] = ()
    trials: tuple[Trial, ...] = ()
    """an explicit list of runs (each its settings as its ``config``); envs, agents and seeds are theirs"""

    @classmethod
    def of_trials(cls, trials: list[Trial], metric: str = "return", plugins: tuple[str, ...] = ()) -> SweepSpec:
        """A sweep that runs ``trials`` as listed (their ``config`` holds all their settings)."""
        return cls(
            envs=tuple(dict.fromkeys(t.env for t in trials)),
            agents=tuple(dict.fromkeys(t.agent for t in trials)),
            seeds=tuple(sorted({t.seed for t in trials})),
            metric=metric,
            plugins=plugins,
            trials=tuple(trials),
        )

    @property
    def is_search(self) -> bool:
        return bool(self.search)

    def grid_configs(self) -> list[dict[str, Any]]:
        """Every combination of the grid's values, in file order ([{}] without a grid)."""
        names = list(self.grid)
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*self.grid.values())]

    def grid_trials(self) -> list[Trial]:
        """env × agent × grid config × seed, for sweeps without ``search`` (or the explicit trials, in order)."""
        if self.trials:
            return list(self.trials)
        return [
            Trial(env, agent, config, seed, self.fixed)
            for env in self.envs
            for agent in self.agents
            for config in self.grid_configs()
            for seed in self.seeds
        ]

    def to_dict(self) -> dict[str, Any]:
        """The sweep as a sweep file would say it (plural keys): ``parse_sweep(spec.to_dict())`` == spec."""
        d: dict[str, Any] = {"envs": list(self.envs), "agents": list(self.agents), "seeds": list(self.seeds)}
        if self.trials:
            d["trials"] = [{"env": t.env, "agent": t.agent, "seed": t.seed, "set": dict(t.config)} for t in self.trials]
        if self.grid:
            d["grid"] = {k: list(v) for k, v in self.grid.items()}
        if self.search:
            d["search"] = {k: v.to_dict() for k, v in self.search.items()}
        if self.fixed:
            d["set"] = dict(self.fixed)
        d["metric"] = self.metric
        if self.num_samples is not None:
            d["num_samples"] = self.num_samples
        d["early_stopping"] = (
            False
            if self.early_stopping is None
            else {"grace": self.early_stopping.grace, "reduction_factor": self.early_stopping.reduction_factor}
        )
        d["search_seed"] = self.search_seed
        if self.plugins:
            d["plugins"] = list(self.plugins)
        return d


LABEL_CHARS = 100
"""longer labels (an explicit trial's whole recipe) are cut there with "...": results.json has the config"""


def config_label(config: Mapping[str, Any]) -> str:
    """``{"alpha": 0.1, "gamma": 0.9}`` -> ``"alpha=0.1 gamma=0.9"`` (``"(defaults)"`` for {})."""
    label = " ".join(f"{k}={_short(v)}" for k, v in config.items()) or "(defaults)"
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 3] + "..."


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _names(data: Mapping[str, Any], single: str, plural: str, where: str) -> tuple[str, ...]:
    if (single in data) == (plural in data):
        raise SweepFileError(f"{where}: give exactly one of {single!r} or {plural!r}")
    if single in data:
        value = data[single]
        if not isinstance(value, str) or not value:
            raise SweepFileError(f"{where}: {single!r} must be a name, got {value!r}")
        return (value,)
    values = data[plural]
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise SweepFileError(f"{where}: {plural!r} must be a non-empty list of names, got {values!r}")
    if len(set(values)) != len(values):
        raise SweepFileError(f"{where}: {plural!r} lists a name twice: {values!r}")
    return tuple(values)


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise SweepFileError(f"{where}: 'seeds' as a count must be >= 1, got {value}")
        return tuple(range(value))
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    ):
        raise SweepFileError(f"{where}: 'seeds' must be a non-empty list of integers or a count, got {value!r}")
    if len(set(value)) != len(value):
        raise SweepFileError(f"{where}: 'seeds' lists a seed twice: {value!r}")
    return tuple(value)


def _mapping(data: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise SweepFileError(f"{where}: {key!r} must be a mapping of setting -> value, got {value!r}")
    return dict(value)


def _distribution(name: str, value: Any, where: str) -> Distribution:
    at = f"{where}: search.{name}"
    if not isinstance(value, dict) or len(value) != 1:
        raise SweepFileError(f"{at}: expected one distribution such as {{loguniform: [0.01, 1]}}, got {value!r}")
    ((kind, args),) = value.items()
    if kind not in DISTRIBUTIONS:
        raise SweepFileError(f"{at}: unknown distribution {kind!r}; use one of {sorted(DISTRIBUTIONS)}")
    arity = DISTRIBUTIONS[kind]
    if not isinstance(args, list) or (arity is None and not args) or (arity is not None and len(args) != arity):
        wanted = "a non-empty list of values" if arity is None else f"a list of {arity} numbers"
        raise SweepFileError(f"{at}: {kind} takes {wanted}, got {args!r}")
    if kind == "choice":
        if not all(v is None or isinstance(v, (bool, int, float, str)) for v in args):
            raise SweepFileError(f"{at}: choice values must be numbers, strings, booleans or null, got {args!r}")
        return Distribution(kind, tuple(args))
    if not all(_number(a) for a in args):
        raise SweepFileError(f"{at}: {kind} takes numbers, got {args!r}")
    low, high = args[0], args[1]
    if not low < high:
        raise SweepFileError(f"{at}: {kind} needs low < high, got [{low}, {high}]")
    if kind in ("randint", "lograndint") and not all(isinstance(a, int) for a in args):
        raise SweepFileError(f"{at}: {kind} takes integer bounds, got {args!r}")
    if kind in ("loguniform", "lograndint") and low <= 0:
        raise SweepFileError(f"{at}: {kind} needs low > 0, got {low}")
    if kind == "quniform" and not args[2] > 0:
        raise SweepFileError(f"{at}: quniform needs a step q > 0, got {args[2]}")
    return Distribution(kind, tuple(args))


def _early_stopping(value: Any, is_search: bool, where: str) -> EarlyStopping | None:
    if value is None:
        return EarlyStopping() if is_search else None
    if value is False:
        return None
    if value is True:
        return EarlyStopping()
    if not isinstance(value, dict):
        raise SweepFileError(f"{where}: 'early_stopping' must be true, false or {{grace: .., reduction_factor: ..}}")
    unknown = sorted(set(value) - {f.name for f in fields(EarlyStopping)})
    if unknown:
        raise SweepFileError(f"{where}: early_stopping: unknown key(s) {unknown}; keys: grace, reduction_factor")
    es = EarlyStopping(**value)
    if not (_number(es.grace) and 0 < es.grace <= 1):
        raise SweepFileError(f"{where}: early_stopping.grace must be a fraction in (0, 1], got {es.grace!r}")
    if not (_number(es.reduction_factor) and es.reduction_factor > 1):
        raise SweepFileError(
            f"{where}: early_stopping.reduction_factor must be a number > 1, got {es.reduction_factor!r}"
        )
    return es


def parse_sweep(data: Any, where: str = "sweep") -> SweepSpec:
    """Checks a sweep file's content (see the module docstring) and returns the sweep; errors name the key."""
    if not isinstance(data, dict):
        raise SweepFileError(f"{where}: expected a mapping of sweep keys, got {type(data).__name__}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise SweepFileError(f"{where}: unknown key(s) {unknown}; sweep keys: {', '.join(KEYS)}")
    if "trials" in data:
        return _explicit(data, where)
    envs = _names(data, "env", "envs", where)
    agents = _names(data, "agent", "agents", where)
    if "seeds" not in data:
        raise SweepFileError(f"{where}: 'seeds' is missing (a list of seeds, or a count)")
    seeds = _seeds(data["seeds"], where)
    grid = {}
    for name, values in _mapping(data, "grid", where).items():
        if not isinstance(values, list) or not values:
            raise SweepFileError(f"{where}: grid.{name}: expected a non-empty list of values, got {values!r}")
        grid[name] = tuple(values)
    search = {name: _distribution(name, v, where) for name, v in _mapping(data, "search", where).items()}
    fixed = _mapping(data, "set", where)
    sections = {"grid": grid, "search": search, "set": fixed}
    for a, b in (("grid", "search"), ("grid", "set"), ("search", "set")):
        both = sorted(set(sections[a]) & set(sections[b]))
        if both:
            raise SweepFileError(f"{where}: {both} appear in both {a!r} and {b!r}; give each setting once")
    if search:
        for name, values in grid.items():  # the search treats grid settings as categorical choices
            if not all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
                raise SweepFileError(
                    f"{where}: grid.{name}: with 'search', grid values must be numbers, strings or booleans "
                    f"(they become a categorical choice of the search), got {list(values)!r}"
                )
    metric = _metric(data, where)
    num_samples = data.get("num_samples")
    if num_samples is not None:
        if not search:
            raise SweepFileError(f"{where}: 'num_samples' needs 'search' (a grid runs each of its configs once)")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise SweepFileError(f"{where}: 'num_samples' must be an integer >= 1, got {num_samples!r}")
    search_seed = data.get("search_seed", 0)
    if isinstance(search_seed, bool) or not isinstance(search_seed, int):
        raise SweepFileError(f"{where}: 'search_seed' must be an integer, got {search_seed!r}")
    plugins = _plugins(data, where)
    return SweepSpec(
        envs=envs,
        agents=agents,
        seeds=seeds,
        grid=grid,
        search=search,
        fixed=fixed,
        metric=metric,
        num_samples=num_samples,
        early_stopping=_early_stopping(data.get("early_stopping"), bool(search), where),
        search_seed=search_seed,
        plugins=tuple(plugins),
    )


def _metric(data: Mapping[str, Any], where: str) -> str:
    metric = data.get("metric", "return")
    if metric not in METRICS:
        raise SweepFileError(f"{where}: 'metric' must be one of {list(METRICS)}, got {metric!r}")
    return metric


def _plugins(data: Mapping[str, Any], where: str) -> list[str]:
    plugins = data.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) and p for p in plugins):
        raise SweepFileError(f"{where}: 'plugins' must be a list of module names, got {plugins!r}")
    return plugins


def _explicit(data: Mapping[str, Any], where: str) -> SweepSpec:
    """A sweep of listed trials; ``envs``/``agents``/``seeds`` (as ``to_dict`` writes them) must be theirs."""
    for key in EXCLUSIVE:
        if key in data:
            raise SweepFileError(f"{where}: {key!r} and 'trials' exclude each other (each trial has its own settings)")
    listed = data["trials"]
    if not isinstance(listed, list) or not listed:
        raise SweepFileError(f"{where}: 'trials' must be a non-empty list of {{env, agent, seed, set}}, got {listed!r}")
    trials = []
    for i, entry in enumerate(listed):
        at = f"{where}: trials[{i}]"
        if not isinstance(entry, dict) or set(entry) - set(TRIAL_KEYS) or not {"env", "agent", "seed"} <= set(entry):
            raise SweepFileError(f"{at}: expected a mapping of env, agent, seed and optionally set, got {entry!r}")
        env, agent, seed = entry["env"], entry["agent"], entry["seed"]
        if not (isinstance(env, str) and env and isinstance(agent, str) and agent):
            raise SweepFileError(f"{at}: env and agent must be names, got {env!r} and {agent!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise SweepFileError(f"{at}: seed must be an integer, got {seed!r}")
        trials.append(Trial(env, agent, _mapping(entry, "set", at), seed))
    keys = [t.key for t in trials]
    if len(set(keys)) != len(keys):
        raise SweepFileError(f"{where}: 'trials' lists the same run twice")
    metric = _metric(data, where)
    if data.get("early_stopping") not in (None, False):
        raise SweepFileError(f"{where}: 'early_stopping' needs a grid or search (trials run as listed)")
    plugins = _plugins(data, where)
    spec = SweepSpec.of_trials(trials, metric, tuple(plugins))
    for key in ("envs", "agents", "seeds"):
        if key in data and (not isinstance(data[key], list) or tuple(data[key]) != getattr(spec, key)):
            raise SweepFileError(f"{where}: {key!r} is not what 'trials' lists: {data[key]!r}")
    return spec


def load_sweep(path: str | Path) -> SweepSpec:
    """Reads and checks a sweep file, including that its agents exist and take the settings it names."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SweepFileError(f"sweep file {path}: {e.strerror or e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SweepFileError(f"sweep file {path}: not valid YAML: {e}") from e
    spec = parse_sweep(data, where=str(path))
    check_settings(spec, where=str(path))
    return spec


def check_settings(spec: SweepSpec, where: str = "sweep") -> None:
    """Each agent exists and every grid/search/set name is one of its settings (values are checked per trial)."""
    from perceptgym.agents.registry import agent_entry
    from perceptgym.agents.training import RUN_KEYS, import_plugins

    import_plugins(spec.plugins)
    for agent in spec.agents:
        try:
            entry = agent_entry(agent)
        except ValueError as e:
            raise SweepFileError(f"{where}: {e}") from e
        valid = set(RUN_KEYS) | {f.name for f in fields(entry.resolve_config_class())}
        sections = [("grid", spec.grid), ("search", spec.search), ("set", spec.fixed)]
        sections += [(f"trials[{i}].set", t.config) for i, t in enumerate(spec.trials) if t.agent == agent]
        for section, names in sections:
            for name in names:
                if name not in valid:
                    raise SweepFileError(
                        f"{where}: {section}.{name}: not a setting of agent {agent!r}; settings: {sorted(valid)}"
                    )
    _check_envs(spec.envs, where)


def _check_envs(envs: tuple[str, ...], where: str) -> None:
    import gymnasium as gym

    import perceptgym.envs  # noqa: F401  (registers the perceptgym ids)

    for env in envs:
        if ":" in env:  # "module:Class" or "module:id": importable only at make time
            continue
        try:
            gym.spec(env)
        except gym.error.Error as e:
            raise SweepFileError(f"{where}: env {env!r}: {e}") from e
