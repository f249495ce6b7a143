"""The sweep's trials as Ray Tune trials (this module imports Ray: only :func:`run` below reaches it).

* One Tune trial = one :func:`perceptgym.agents.training.train_run` in ``<out>/runs/<trial key>/``. The key
  comes from the trial's content, so a trial started again (a retry after its worker died, or ``--resume``)
  continues its own run from the run's last checkpoint, and a trial whose run already finished reports the
  saved evaluation instead of training again.
* Grids use Tune's ``BasicVariantGenerator`` over the explicit list of trials still to run; searches use
  ``OptunaSearch`` (seeded) wrapped in ``Repeater`` (one suggestion = the same config on every seed), one
  Tuner per env × agent. ASHA stops trials early on ``score``, reported at every 5% of a trial's budget.
* Resuming does not use Tune's own restore, which unpickles the experiment state (Ray's docs: restoring
  from an untrusted folder runs arbitrary code); the JSON ledger (``results.json``) says which trials are
  done, and a search is warm-started by giving Optuna the configs it had already suggested, in order.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import BasicVariantGenerator, Repeater
from ray.tune.search.repeater import TRIAL_INDEX

from perceptgym.agents.loop import Episode
from perceptgym.agents.sweep.report import DONE, METRIC_KEYS, Ledger
from perceptgym.agents.sweep.spec import DEFAULT_NUM_SAMPLES, Distribution, SweepSpec, Trial, config_label

REPORTS = 20
"""intermediate reports per trial (at every 5% of its training budget); ASHA's time axis is ``budget_pct``"""
ATTEMPTS = "attempts.json"


class TrialInterrupted(RuntimeError):
    """train_run stopped on KeyboardInterrupt inside the trial (Ctrl-C reached the worker): resumable."""


@dataclass(frozen=True)
class Job:
    """What every trial of one Tuner needs; sent to the workers with ``tune.with_parameters``."""

    out: str
    seeds: tuple[int, ...]
    fixed: dict[str, Any]
    metric: str
    tensorboard: bool
    plugins: tuple[str, ...]
    env: str | None = None  # search studies: one env × agent per Tuner
    agent: str | None = None
    names: tuple[str, ...] = ()  # search studies: the settings the config holds, in sweep-file order
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    """trial key -> final result, for trials a resumed search suggests again (reported, not trained)"""

    def trial(self, config: Mapping[str, Any]) -> Trial:
        if "trial" in config:  # grid: the whole trial is the config
            t = config["trial"]
            return Trial(t["env"], t["agent"], dict(t["config"]), int(t["seed"]), self.fixed)
        values = {name: config[name] for name in self.names}
        return Trial(self.env, self.agent, values, self.seeds[int(config[TRIAL_INDEX])], self.fixed)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- in the workers


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def _existing_run(folder: Path) -> Path | None:
    """The trial's run directory if a checkpoint was saved; partial runs without one are removed."""
    runs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    resumable = [p for p in runs if (p / "checkpoints" / "state.json").is_file()]
    for p in runs:
        if p not in resumable[-1:]:  # died before its first checkpoint: nothing to continue from
            shutil.rmtree(p, ignore_errors=True)
    return resumable[-1] if resumable else None


def _final_result(run_dir: Path, metric: str, train: Mapping[str, float]) -> dict[str, Any]:
    state = json.loads((run_dir / "checkpoints" / "state.json").read_text())
    ev = json.loads((run_dir / "eval.json").read_text()) if (run_dir / "eval.json").is_file() else None
    key = METRIC_KEYS[metric][0]
    result = {
        "budget_pct": 100,
        "episode": int(state["episode"]),
        "global_step": int(state["global_step"]),
        **train,
        "finished": 1,
    }
    if ev is not None:
        result.update(
            eval_return=ev["mean_return"],
            eval_std_return=ev["std_return"],
            eval_success=ev["success_rate"],
            eval_length=ev["mean_length"],
            eval_episodes=ev["n_episodes"],
        )
        result["score"] = ev[key]
    else:  # eval_episodes: 0 — judge by the last training window
        result["score"] = train.get(f"train_{metric}", float("nan"))
    return result


class _Reporter:
    """``on_episode`` callback: reports the moving return and success to Tune at each 5% of the budget."""

    def __init__(self, hyperparams: Mapping[str, Any], metric: str):
        self.n_episodes = hyperparams.get("n_episodes")
        self.n_timesteps = hyperparams.get("n_timesteps")
        self.metric = metric
        self.returns: list[float] = []
        self.successes: list[float] = []
        self.next_pct: int | None = None
        self.last: dict[str, float] = {}

    def progress(self, ep: Episode) -> float:
        done = [ep.global_step / self.n_timesteps] if self.n_timesteps else []
        done += [(ep.index + 1) / self.n_episodes] if self.n_episodes else []
        return max(done, default=0.0)

    def __call__(self, ep: Episode) -> None:
        self.returns.append(ep.ep_return)
        self.successes.append(float(ep.success))
        pct = int(100 * self.progress(ep))
        if self.next_pct is None:  # the first episode (also after a resume): report from the next step on
            self.next_pct = (pct // (100 // REPORTS) + 1) * (100 // REPORTS)
        if pct < self.next_pct:
            return
        self.last = {
            "train_return": float(sum(self.returns) / len(self.returns)),
            "train_success": float(sum(self.successes) / len(self.successes)),
        }
        self.returns.clear()
        self.successes.clear()
        self.next_pct = (pct // (100 // REPORTS) + 1) * (100 // REPORTS)
        if pct >= 100:  # the final report (with the greedy evaluation) comes after train_run returns
            return
        tune.report(
            {
                "budget_pct": pct,
                "episode": ep.index + 1,
                "global_step": ep.global_step,
                **self.last,
                "score": self.last[f"train_{self.metric}"],
            }
        )


@contextmanager
def _one_torch_thread(kind: str):
    """Deep agents use one torch thread per trial (one trial per CPU); restored afterwards."""
    if kind != "sb3":
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def perceptgym_trial(config: dict[str, Any], job: Job) -> None:
    """One trial: a train_run (new, continued from its checkpoint, or already done) reported to Tune."""
    started = time.perf_counter()
    trial = job.trial(config)
    if trial.key in job.done:  # a resumed search suggested it again: it already ran
        tune.report(job.done[trial.key])
        return
    folder = Path(job.out) / "runs" / trial.key
    folder.mkdir(parents=True, exist_ok=True)
    with _trial_lock(folder):
        _run_trial(trial, job, folder, started)


@contextmanager
def _trial_lock(folder: Path):
    """One attempt at a time per trial folder: a search may suggest the same config twice at once; the
    second waits, then reports the first's result. The lock goes with its process (a killed worker)."""
    import fcntl

    with (folder / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run_trial(trial: Trial, job: Job, folder: Path, started: float) -> None:
    from perceptgym.agents.registry import agent_entry
    from perceptgym.agents.training import import_plugins, run_hyperparams, train_run

    run_dir = _existing_run(folder)
    attempts = json.loads((folder / ATTEMPTS).read_text()) if (folder / ATTEMPTS).is_file() else []
    attempts.append({"pid": os.getpid(), "started": time.time(), "resumed": None if run_dir is None else run_dir.name})
    _write_json(folder / ATTEMPTS, attempts)
    if run_dir is not None and (run_dir / "eval.json").is_file():
        # finished and evaluated before (the sweep stopped before it heard): never train twice. A run that
        # finished training but not its evaluation is continued below: train_run only evaluates it.
        tune.report(_final_result(run_dir, job.metric, {}))
        return
    import_plugins(job.plugins)
    hyperparams = run_hyperparams(trial.agent, trial.env, trial.overrides, resume=run_dir)
    reporter = _Reporter(hyperparams, job.metric)
    with _one_torch_thread(agent_entry(trial.agent).kind):
        result = train_run(
            trial.env,
            trial.agent,
            seed=trial.seed,
            overrides=trial.overrides,
            runs_dir=folder,
            resume=run_dir,
            progress=False,
            tensorboard=job.tensorboard,
            on_episode=reporter,
            plugins=job.plugins,
        )
    if result.interrupted:
        raise TrialInterrupted(f"interrupted; the run continues from its checkpoint in {result.run_dir}")
    tune.report({**_final_result(result.run_dir, job.metric, reporter.last), "trial_s": time.perf_counter() - started})


# ----------------------------------------------------------------------------------------------- in the driver


class _RecordingASHA(ASHAScheduler):
    """ASHA that remembers which trials it stopped (so that a stop by the time budget is not counted)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.stopped: set[str] = set()

    def on_trial_result(self, tune_controller, trial, result):
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and not result.get("finished"):
            self.stopped.add(trial.trial_id)
        return action


def _error_message(trial: Any) -> str:
    """The original exception's last line from Tune's ``error.txt`` (a text traceback)."""
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if not line.startswith(("File ", "^", "~")) and ":" in line:
            return line[:2000]
    return lines[-1][:2000] if lines else "the trial failed (no error message)"


def _metrics(result: Mapping[str, Any]) -> dict[str, Any]:
    keys = {
        "eval_return": "mean_return",
        "eval_std_return": "std_return",
        "eval_success": "success_rate",
        "eval_length": "mean_length",
        "eval_episodes": "eval_episodes",
        "train_return": "train_return",
        "train_success": "train_success",
        "episode": "episodes",
        "global_step": "global_step",
        "budget_pct": "budget_pct",
        "score": "score",
        "trial_s": "time_s",  # this attempt's wall time in the worker (Tune's time_total_s spans reused actors)
    }
    return {new: result[old] for old, new in keys.items() if old in result}


class _LedgerCallback(tune.Callback):
    """Streams trial outcomes into the ledger (``results.json``) and prints one line per finished trial."""

    def __init__(self, ledger: Ledger, job: Job, scheduler: _RecordingASHA | None, total: int, show: bool):
        self.ledger, self.job, self.scheduler, self.total, self.show = ledger, job, scheduler, total, show
        self.count = 0

    def _trial(self, trial: Any) -> Trial | None:
        t = self.job.trial(trial.config)
        return None if t.key in self.job.done else t  # replays of done trials change nothing

    def _run_dir(self, t: Trial) -> str | None:
        folder = Path(self.job.out) / "runs" / t.key
        runs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        return str(runs[-1]) if runs else None

    def _attempts(self, t: Trial) -> int:
        path = Path(self.job.out) / "runs" / t.key / ATTEMPTS
        try:
            return len(json.loads(path.read_text()))
        except (OSError, ValueError):
            return 0

    def _print(self, t: Trial, text: str) -> None:
        self.count += 1
        if self.show:
            print(
                f"[{self.count}/{self.total}] {t.env} · {t.agent} · {config_label(t.config)} · seed {t.seed}: {text}",
                flush=True,
            )

    def on_trial_start(self, iteration, trials, trial, **info):
        t = self._trial(trial)
        if t is not None:
            self.ledger.update(t, status="running", tune_trial=trial.trial_id)

    def on_trial_recover(self, iteration, trials, trial, **info):
        t = self._trial(trial)
        if t is not None:
            self.ledger.update(t, status="retrying", error=_error_message(trial))
            if self.show:
                print(
                    f"  retrying {t.env} · {t.agent} · {config_label(t.config)} · seed {t.seed}: "
                    f"{_error_message(trial)}",
                    flush=True,
                )

    def on_trial_complete(self, iteration, trials, trial, **info):
        t = self._trial(trial)
        if t is None:
            return
        result = trial.last_result or {}
        if result.get("finished"):
            status = "finished"
        elif self.scheduler is not None and trial.trial_id in self.scheduler.stopped:
            status = "stopped"
        else:  # stopped by the time budget or the interrupt: continue it on --resume
            status = "unfinished"
        metrics = _metrics(result)
        self.ledger.update(
            t, status=status, metrics=metrics, run_dir=self._run_dir(t), attempts=self._attempts(t), error=None
        )
        if status == "finished":
            key = METRIC_KEYS[self.job.metric][0]
            self._print(
                t,
                f"{self.job.metric} {metrics.get(key, float('nan')):.3f} "
                f"({metrics.get('episodes', 0)} episodes, "
                + (f"{metrics['time_s']:.1f} s)" if "time_s" in metrics else "trained before)"),
            )
        elif status == "stopped":
            self._print(t, f"stopped early at {metrics.get('budget_pct')}% (score {metrics.get('score', 0):.3f})")

    def on_trial_error(self, iteration, trials, trial, **info):
        t = self._trial(trial)
        if t is None:
            return
        message = _error_message(trial)
        if TrialInterrupted.__name__ in message:
            self.ledger.update(t, status="unfinished", run_dir=self._run_dir(t), attempts=self._attempts(t))
            return
        self.ledger.update(
            t,
            status="error",
            error=message,
            error_file=getattr(trial, "error_file", None),
            run_dir=self._run_dir(t),
            attempts=self._attempts(t),
        )
        self._print(t, f"ERROR {message}")


def _domain(dist: Distribution):
    a = dist.args
    return {
        "uniform": lambda: tune.uniform(a[0], a[1]),
        "loguniform": lambda: tune.loguniform(a[0], a[1]),
        "quniform": lambda: tune.quniform(a[0], a[1], a[2]),
        "randint": lambda: tune.randint(a[0], a[1] + 1),  # Tune's upper bound is exclusive; ours is included
        "lograndint": lambda: tune.lograndint(a[0], a[1] + 1),
        "choice": lambda: tune.choice(list(a)),
    }[dist.kind]()


@dataclass(frozen=True)
class RunSettings:
    address: str | None = None
    """None: a local Ray for this sweep; ``HOST:PORT`` or ``auto``: an existing cluster"""
    num_samples: int | None = None
    max_concurrent: int | None = None
    time_budget_s: float | None = None
    tensorboard: bool = False
    num_cpus: int | None = None
    """CPUs of the local Ray (None: all of this machine's)"""
    progress: bool = True


@dataclass
class Outcome:
    interrupted: bool = False
    out_of_time: bool = False
    unfinished: int = 0
    """trials of the sweep not done yet (started or not)"""


#: Tune's loggers that repeat what our lines say (a failed trial's traceback: its error.txt has it) or name
#: Tune's own resume (``Tuner.restore``) instead of ours
_TUNE_LOGGERS = {
    "ray.tune.tune": logging.CRITICAL,
    "ray.tune.analysis.experiment_analysis": logging.CRITICAL,
    "ray.tune.execution.tune_controller": logging.CRITICAL,
    "optuna": logging.WARNING,  # not "A new study created in memory" per Tuner
}


# Ctrl-C, and SIGTERM (what `kill`, a job scheduler or a container stop sends a sweep started in the
# background, where Ctrl-C cannot reach it): both stop the sweep the same way, results written, resumable.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _quiet_tune():
    """Only our progress lines and our Ctrl-C: Tune's legacy reporter at verbose=0 is silent (the new one
    still prints a header), its hints about ``Tuner.restore`` are hidden (ours is ``--resume DIR``), and
    Ctrl-C (or SIGTERM) raises KeyboardInterrupt here instead of Tune's handler ending the run as if it were
    done. Tune's own
    per-trial CSV/JSON/TensorBoardX loggers are off: results.json and each run's progress.csv hold the same
    numbers, and TensorBoardX's exit hook could hang the program after a Ctrl-C (its writer thread joined at
    exit waits on a queue that nobody feeds any more; seen in the Ctrl-C test)."""
    env = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_SIGINT_HANDLER": "1", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}
    before = {name: os.environ.get(name) for name in env}
    levels = {name: logging.getLogger(name).level for name in _TUNE_LOGGERS}
    main = threading.current_thread() is threading.main_thread()  # only there can handlers change
    handlers = {sig: signal.getsignal(sig) for sig in (*_STOP_SIGNALS, signal.SIGUSR1)} if main else {}
    caught: list[int] = []  # Ctrl-C seen, even where Tune's loop catches the KeyboardInterrupt and returns

    def on_stop(signum: int, frame: Any) -> None:
        caught.append(signum)
        raise KeyboardInterrupt

    if main:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, on_stop)
    os.environ.update(env)
    for name, level in _TUNE_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield caught
    finally:
        for sig, handler in handlers.items():  # Tune leaves its own installed
            signal.signal(sig, handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _trial_dirname(trial: Any) -> str:
    return trial.trial_id  # Tune's default spells out the whole config; results.json maps id -> trial


@contextmanager
def _ray(settings: RunSettings):
    if ray.is_initialized():  # the caller's own Ray session: use it, leave it running
        yield
        return
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if settings.address is None:
        ray.init(address="local", num_cpus=settings.num_cpus or os.cpu_count(), include_dashboard=False, **kwargs)
    else:
        try:
            ray.init(address=settings.address, **kwargs)
        except (ConnectionError, ray.exceptions.AuthenticationError) as e:
            raise RuntimeError(
                f"--address {settings.address}: cannot connect to a Ray cluster: {e} (a cluster with token "
                "authentication needs RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN or ~/.ray/auth_token)"
            ) from e
    try:
        yield
    finally:
        ray.shutdown()


def run(spec: SweepSpec, ledger: Ledger, settings: RunSettings, say: Callable[[str], None] = print) -> Outcome:
    """Runs every trial of ``spec`` that ``ledger`` does not have as done. Ctrl-C stops it cleanly."""
    start = time.time()
    outcome = Outcome()
    budget = settings.time_budget_s
    studies = list(_studies(spec, ledger, settings))
    if not studies:
        say("sweep: every trial is done already")
        ledger.close_unfinished()
        return outcome
    with _ray(settings):
        cpus = int(ray.cluster_resources().get("CPU", 1))
        where = "local Ray" if settings.address is None else f"Ray cluster at {settings.address}"
        say(
            f"sweep: {where} ({cpus} CPUs, up to {min(settings.max_concurrent or cpus, cpus)} trials at a time); "
            f"results in {ledger.out}"
        )
        for study in studies:
            left = None if budget is None else budget - (time.time() - start)
            if left is not None and left <= 0:
                outcome.out_of_time = True
                break
            callback = _LedgerCallback(ledger, study.job, study.scheduler, study.total, settings.progress)
            say(f"{study.name}: {study.total} trials")
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(perceptgym_trial, job=study.job), {"cpu": 1}),
                param_space=study.param_space,
                tune_config=tune.TuneConfig(
                    metric="score",
                    mode="max",
                    search_alg=study.search_alg,
                    scheduler=study.scheduler,
                    num_samples=study.num_samples,
                    max_concurrent_trials=None
                    if isinstance(study.search_alg, BasicVariantGenerator)
                    else settings.max_concurrent,
                    time_budget_s=left,
                    trial_dirname_creator=_trial_dirname,
                    reuse_actors=True,  # a worker keeps perceptgym imported from one trial to the next
                ),
                run_config=tune.RunConfig(
                    name=f"{study.name}-{int(start)}",
                    storage_path=str(Path(ledger.out).resolve() / "tune"),
                    verbose=0,
                    callbacks=[callback],
                    failure_config=tune.FailureConfig(max_failures=1),  # a killed worker's trial: one retry
                    log_to_file=True,
                ),
            )
            try:
                with _quiet_tune() as caught:
                    tuner.fit()
            except KeyboardInterrupt:  # Ctrl-C: done trials are in the ledger; leaving Ray ends the running ones
                caught = [signal.SIGINT]
            if caught:  # also when Tune caught the KeyboardInterrupt itself and fit() returned
                outcome.interrupted = True
                break
            if not study.complete(ledger) and budget is not None and time.time() - start >= budget - 1:
                outcome.out_of_time = True  # (a search that suggested a config twice is complete all the same)
                break
    ledger.elapsed_s += time.time() - start
    ledger.close_unfinished()
    planned = (
        len(spec.grid_trials())
        if not spec.is_search
        else (settings.num_samples or spec.num_samples or DEFAULT_NUM_SAMPLES)
        * len(spec.seeds)
        * len(spec.envs)
        * len(spec.agents)
    )
    outcome.unfinished = planned - sum(e["status"] in DONE for e in ledger.trials.values())
    return outcome


@dataclass
class _Study:
    """One Tuner: a grid's remaining trials, or one env × agent's search."""

    name: str
    param_space: dict[str, Any]
    search_alg: Any
    scheduler: _RecordingASHA | None
    num_samples: int
    job: Job
    total: int
    """trials it will run (replays of done trials not counted)"""

    keys: tuple[str, ...] = ()
    """a grid's trials (a search's are known as it goes)"""

    def complete(self, ledger: Ledger) -> bool:
        """Whether every trial of this Tuner is done in the ledger (Tune also returns on Ctrl-C and timeout)."""
        if self.keys:
            return all(ledger.status(k) in DONE for k in self.keys)
        job = self.job
        done = [e for e in ledger.trials.values() if (e["env"], e["agent"]) == (job.env, job.agent)]
        return sum(e["status"] in DONE for e in done) >= self.num_samples


def _asha(spec: SweepSpec) -> _RecordingASHA | None:
    es = spec.early_stopping
    if es is None:
        return None
    return _RecordingASHA(
        time_attr="budget_pct",
        max_t=100,
        grace_period=max(1, int(100 * es.grace)),
        reduction_factor=es.reduction_factor,
    )


def _studies(spec: SweepSpec, ledger: Ledger, settings: RunSettings):
    common = {
        "out": str(Path(ledger.out).resolve()),
        "seeds": spec.seeds,
        "fixed": spec.fixed,
        "metric": spec.metric,
        "tensorboard": settings.tensorboard,
        "plugins": spec.plugins,
    }
    pairs = [(env, agent) for env in spec.envs for agent in spec.agents]
    if not spec.is_search:
        trials = [t for t in spec.grid_trials() if ledger.status(t.key) not in DONE]
        # without early stopping one Tuner runs everything; ASHA must compare trials of one env × agent only
        groups = (
            [("grid", trials)]
            if spec.early_stopping is None
            else [(_name(e, a), [t for t in trials if (t.env, t.agent) == (e, a)]) for e, a in pairs]
        )
        for name, group in groups:
            if group:
                rows = [{"env": t.env, "agent": t.agent, "config": t.config, "seed": t.seed} for t in group]
                yield _Study(
                    name,
                    {"trial": tune.grid_search(rows)},
                    # Tune ignores max_concurrent_trials for a BasicVariantGenerator it did not make itself
                    BasicVariantGenerator(max_concurrent=settings.max_concurrent or 0),
                    _asha(spec),
                    1,
                    Job(**common),
                    len(group),
                    tuple(t.key for t in group),
                )
        return
    from ray.tune.search.optuna import OptunaSearch

    num_samples = settings.num_samples or spec.num_samples or DEFAULT_NUM_SAMPLES
    space = {
        **{k: tune.choice(list(v)) for k, v in spec.grid.items()},
        **{k: _domain(d) for k, d in spec.search.items()},
    }
    for env, agent in pairs:
        seen = [e for e in ledger.trials.values() if (e["env"], e["agent"]) == (env, agent)]
        done = {e["key"]: _stored_result(e) for e in seen if e["status"] in DONE}
        if len(done) >= num_samples * len(spec.seeds):
            continue
        points: list[dict[str, Any]] = []
        for e in seen:  # the configs suggested before, in order: Optuna suggests them again first
            if e["config"] not in points:
                points.append(e["config"])
        # A seeded sampler in a new process repeats its draws: on resume, after replaying the configs it had
        # suggested, it would suggest the first of them again. Another seed per resumed state avoids that.
        searcher = OptunaSearch(points_to_evaluate=points or None, seed=spec.search_seed + len(points))
        yield _Study(
            _name(env, agent),
            space,
            Repeater(searcher, repeat=len(spec.seeds)),
            _asha(spec),
            num_samples * len(spec.seeds),
            Job(**common, env=env, agent=agent, names=(*spec.grid, *spec.search), done=done),
            num_samples * len(spec.seeds) - len(done),
        )


def _name(env: str, agent: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{env}__{agent}")


def _stored_result(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What a done trial reports when a resumed search suggests it again (score NaN for errors)."""
    m = entry.get("metrics") or {}
    return {
        "budget_pct": m.get("budget_pct", 100),
        "score": m.get("score", float("nan")),
        **({"finished": 1} if entry["status"] == "finished" else {}),
    }
