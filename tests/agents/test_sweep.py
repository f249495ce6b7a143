"""``perceptgym sweep``: sweep files, statistics over seeds, and real sweeps on a real local Ray cluster.

The cluster tests start ``ray start --head --num-cpus 2`` on 127.0.0.1 (with a token of their own) and stop it
at the end, also when a test fails. They stop it by its process id, not with ``ray stop``: ``ray stop`` kills
every Ray process on the machine by name, including a user's own clusters.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from perceptgym.agents.sweep import SweepFileError, parse_sweep
from perceptgym.agents.sweep.spec import check_settings
from perceptgym.agents.sweep.stats import best_by_lower_bound, bootstrap_ci, iqm, summarize

EXAMPLE = {
    "env": "FrozenLake-v1",
    "agent": "q_learning",
    "seeds": [0, 1],
    "grid": {"alpha": [0.1, 0.5]},
    "set": {"n_episodes": 300},
}


# ------------------------------------------------------------------------------------------- no Ray needed


def test_import_perceptgym_and_the_sweep_library_stays_free_of_ray():
    code = (
        "import sys, perceptgym, perceptgym.agents, perceptgym.cli, perceptgym.sweep, perceptgym.agents.sweep as s; "
        "spec = s.parse_sweep({'env': 'FrozenLake-v1', 'agent': 'q_learning', 'seeds': 2}); s.summarize([1.0, 2.0]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'optuna')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_issue_example_is_two_configs_times_two_seeds():
    spec = parse_sweep(EXAMPLE)
    trials = spec.grid_trials()
    assert [(t.config, t.seed) for t in trials] == [
        ({"alpha": 0.1}, 0),
        ({"alpha": 0.1}, 1),
        ({"alpha": 0.5}, 0),
        ({"alpha": 0.5}, 1),
    ]
    assert all(t.overrides["n_episodes"] == 300 for t in trials)
    assert len({t.key for t in trials}) == 4 and len({t.config_key for t in trials}) == 2
    assert parse_sweep(spec.to_dict()) == spec  # what results.json saves is what --resume reads back
    assert [t.key for t in parse_sweep(spec.to_dict()).grid_trials()] == [t.key for t in trials]


def test_search_and_early_stopping_are_parsed_with_their_defaults():
    spec = parse_sweep(
        {
            "envs": ["FrozenLake-v1", "Taxi-v4"],
            "agents": ["q_learning", "sarsa"],
            "seeds": 3,
            "search": {"alpha": {"loguniform": [0.01, 1.0]}, "epsilon_decay_episodes": {"randint": [100, 1000]}},
            "grid": {"gamma": [0.9, 0.99]},
            "num_samples": 4,
        }
    )
    assert spec.seeds == (0, 1, 2) and spec.is_search and spec.num_samples == 4
    assert spec.early_stopping is not None and spec.early_stopping.grace == 0.25  # on by default for a search
    assert parse_sweep(EXAMPLE).early_stopping is None  # off for a grid: every seed of every config finishes
    assert parse_sweep({**EXAMPLE, "early_stopping": {"grace": 0.5}}).early_stopping.grace == 0.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grdi": {"alpha": [0.1]}}, "unknown key(s) ['grdi']"),
        ({"envs": ["Taxi-v4"]}, "exactly one of 'env' or 'envs'"),
        ({"seeds": None}, "'seeds' is missing"),
        ({"seeds": []}, "'seeds' must be a non-empty list"),
        ({"seeds": [0, 0]}, "lists a seed twice"),
        ({"grid": {"alpha": []}}, "grid.alpha: expected a non-empty list"),
        ({"grid": {"alpha": 0.1}}, "grid.alpha: expected a non-empty list"),
        ({"search": {"gamma": {"normal": [0, 1]}}}, "search.gamma: unknown distribution 'normal'"),
        ({"search": {"gamma": {"uniform": [0.9]}}}, "search.gamma: uniform takes a list of 2 numbers"),
        ({"search": {"gamma": {"uniform": [0.99, 0.9]}}}, "search.gamma: uniform needs low < high"),
        ({"search": {"gamma": {"loguniform": [0, 1]}}}, "search.gamma: loguniform needs low > 0"),
        ({"search": {"n_episodes": {"randint": [1.5, 9]}}}, "search.n_episodes: randint takes integer bounds"),
        ({"search": {"gamma": {"choice": []}}}, "search.gamma: choice takes a non-empty list"),
        ({"search": {"gamma": 0.9}}, "search.gamma: expected one distribution"),
        ({"set": {"n_episodes": 300, "alpha": 0.2}}, "['alpha'] appear in both 'grid' and 'set'"),
        ({"num_samples": 5}, "'num_samples' needs 'search'"),
        ({"metric": "reward"}, "'metric' must be one of ['return', 'success']"),
        ({"early_stopping": {"patience": 3}}, "early_stopping: unknown key(s) ['patience']"),
        ({"early_stopping": {"grace": 2}}, "early_stopping.grace must be a fraction"),
    ],
)
def test_bad_sweep_files_are_refused_naming_the_key(change, message):
    data = {**EXAMPLE, **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(SweepFileError) as e:
        parse_sweep(data, where="s.yml")
    assert str(e.value).startswith("s.yml: ") and message in str(e.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grid": {"alpah": [0.1]}}, "grid.alpah: not a setting of agent 'q_learning'"),
        ({"agent": "q_learnin"}, "unknown agent 'q_learnin'"),
        ({"env": "FrozenLak-v1"}, "env 'FrozenLak-v1'"),
    ],
)
def test_sweep_files_naming_unknown_agents_settings_or_envs_are_refused(change, message):
    with pytest.raises(SweepFileError, match=r"s\.yml: ") as e:
        check_settings(parse_sweep({**EXAMPLE, **change}), where="s.yml")
    assert message in str(e.value)


TRIALS = {
    "trials": [
        {"env": "FrozenLake-v1", "agent": "q_learning", "seed": 1, "set": {"n_episodes": 300}},
        {"env": "Taxi-v4", "agent": "sarsa", "seed": 0, "set": {"n_episodes": 200, "alpha": 0.5}},
        {"env": "FrozenLake-v1", "agent": "q_learning", "seed": 0, "set": {"n_episodes": 300}},
    ]
}


def test_an_explicit_trial_list_runs_as_listed_and_round_trips_through_its_results_file():
    spec = parse_sweep(TRIALS, where="s.yml")
    check_settings(spec, where="s.yml")
    assert [(t.env, t.agent, t.seed, t.overrides) for t in spec.grid_trials()] == [
        (e["env"], e["agent"], e["seed"], e["set"]) for e in TRIALS["trials"]
    ]
    assert spec.envs == ("FrozenLake-v1", "Taxi-v4") and spec.agents == ("q_learning", "sarsa") and spec.seeds == (0, 1)
    assert not spec.is_search and spec.early_stopping is None
    assert parse_sweep(spec.to_dict()) == spec  # what a resume reads back from results.json


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grid": {"alpha": [0.1]}}, "'grid' and 'trials' exclude each other"),
        ({"agent": "q_learning"}, "'agent' and 'trials' exclude each other"),
        ({"trials": []}, "'trials' must be a non-empty list"),
        ({"trials": [{"env": "Taxi-v4", "agent": "sarsa"}]}, "trials[0]: expected a mapping of env, agent, seed"),
        ({"trials": [{"env": "Taxi-v4", "agent": "sarsa", "seed": 0, "sett": {}}]}, "trials[0]: expected"),
        ({"trials": [{"env": "Taxi-v4", "agent": "sarsa", "seed": True}]}, "trials[0]: seed must be an integer"),
        ({"trials": [{"env": "Taxi-v4", "agent": "", "seed": 0}]}, "trials[0]: env and agent must be names"),
        ({"trials": [{"env": "Taxi-v4", "agent": "sarsa", "seed": 0, "set": [1]}]}, "trials[0]: 'set' must be"),
        ({"trials": TRIALS["trials"] + TRIALS["trials"][:1]}, "lists the same run twice"),
        ({"seeds": [0, 2]}, "'seeds' is not what 'trials' lists"),
        ({"early_stopping": True}, "'early_stopping' needs a grid or search"),
        ({"plugins": "my.module"}, "'plugins' must be a list"),
    ],
)
def test_bad_trial_lists_are_refused_naming_the_key(change, message):
    with pytest.raises(SweepFileError) as e:
        parse_sweep({**TRIALS, **change}, where="s.yml")
    assert str(e.value).startswith("s.yml: ") and message in str(e.value)


def test_a_trial_setting_its_agent_does_not_take_is_refused():
    data = {"trials": [*TRIALS["trials"], {"env": "Taxi-v4", "agent": "sarsa", "seed": 1, "set": {"alpah": 1}}]}
    with pytest.raises(SweepFileError, match=r"s\.yml: trials\[3\]\.set\.alpah: not a setting of agent 'sarsa'"):
        check_settings(parse_sweep(data), where="s.yml")


def test_the_program_reports_a_bad_sweep_file_in_one_line_with_exit_code_2(tmp_path, capsys):
    from perceptgym.sweep import main

    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({**EXAMPLE, "grid": {"alpha": []}}))
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("perceptgym sweep: error: ") and "grid.alpha" in err
    assert not (tmp_path / "out").exists()
    assert main(["--resume", str(tmp_path / "nothing")]) == 2
    assert "no sweep there" in capsys.readouterr().err
    assert main([]) == 2
    assert "give a sweep FILE and --out DIR" in capsys.readouterr().err
    assert main([str(path), "--out", str(tmp_path / "o"), "--max-concurrent", "0"]) == 2
    assert "--max-concurrent must be >= 1" in capsys.readouterr().err


def test_shipped_sweep_files_are_valid():
    from perceptgym.agents.sweep import SWEEPS_DIR, load_sweep

    files = sorted(SWEEPS_DIR.glob("*.yml"))
    assert len(files) >= 5
    for path in files:
        load_sweep(path)


def test_iqm_drops_the_lowest_and_highest_quarter():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert iqm([100.0, 0.0, 1.0, 2.0]) == pytest.approx(1.5)  # unsorted; the outlier is cut
    assert iqm([1.0, 3.0]) == pytest.approx(2.0)  # fewer than 4 values: nothing to cut
    x = np.random.default_rng(0).normal(size=(7, 13))
    lo, hi = int(0.25 * 13), 13 - int(0.25 * 13)
    assert np.allclose(iqm(x, axis=1), np.sort(x, axis=1)[:, lo:hi].mean(axis=1))


def test_bootstrap_ci_is_deterministic_brackets_the_estimate_and_narrows_with_more_seeds():
    rng = np.random.default_rng(1)
    few, many = rng.normal(0.5, 0.1, size=5), rng.normal(0.5, 0.1, size=80)
    low, high = bootstrap_ci(few)
    assert low < few.mean() < high and few.min() <= low and high <= few.max()
    assert bootstrap_ci(few) == (low, high)  # its own Generator: same answer every time
    state = np.random.get_state()[1].copy()
    bootstrap_ci(few, "iqm")
    assert np.array_equal(np.random.get_state()[1], state)  # the global numpy RNG is untouched
    many_low, many_high = bootstrap_ci(many)
    assert many_high - many_low < (high - low) / 2
    low_iqm, high_iqm = bootstrap_ci(few, "iqm")
    assert low_iqm <= iqm(few) <= high_iqm
    with pytest.raises(ValueError, match="statistic"):
        bootstrap_ci(few, "median")
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])


def test_bootstrap_ci_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(2)
    covered = 0
    for i in range(300):
        x = rng.normal(1.0, 2.0, size=20)
        low, high = bootstrap_ci(x, resamples=2000, seed=i)
        covered += low <= 1.0 <= high
    assert 0.89 <= covered / 300 <= 0.99  # percentile bootstrap undercovers a little at n = 20


def test_best_config_is_chosen_by_its_lower_bound_not_its_luckiest_seed():
    steady = [0.70, 0.71, 0.69, 0.70, 0.72]
    lucky = [0.99, 0.98, 0.30, 0.35, 0.97]  # a higher mean and the best single seed, but unreliable
    assert np.mean(lucky) > np.mean(steady) and max(lucky) > max(steady)
    summaries = {"steady": summarize(steady), "lucky": summarize(lucky)}
    assert best_by_lower_bound(summaries) == "steady"
    assert best_by_lower_bound({}) is None
    s = summaries["lucky"]
    assert s.n == 5 and s.min == 0.30 and s.max == 0.99 and s.mean_ci[0] < s.mean < s.mean_ci[1]


# --------------------------------------------------------------------------------- a real local Ray cluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """``ray start --head --num-cpus 2`` on 127.0.0.1; yields (address, env for the sweep processes)."""
    ray_exe = Path(sys.executable).with_name("ray")
    temp = Path(tempfile.mkdtemp(prefix="pgray", dir="/tmp"))  # Ray's unix sockets need a short path
    port = _free_port()
    env = {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # Ray's node address: 127.0.0.1, not the machine's
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    log = (temp / "ray-start.log").open("w")
    command = [str(ray_exe), "start", "--head", "--block", "--num-cpus", "2", "--node-ip-address", "127.0.0.1"]
    command += ["--port", str(port), "--temp-dir", str(temp), "--include-dashboard", "false"]
    command += ["--disable-usage-stats"]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300  # ~10 s on an idle 2-core machine, minutes on an overloaded one
        while "Ray runtime started" not in (temp / "ray-start.log").read_text():
            assert proc.poll() is None, (temp / "ray-start.log").read_text()[-3000:]
            assert time.time() < deadline, (
                "ray start: not up in 300 s:\n" + (temp / "ray-start.log").read_text()[-3000:]
            )
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", env
    finally:
        proc.terminate()  # `ray start --block` stops its cluster on SIGTERM
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything of its own that is left (its session, by id)
        except ProcessLookupError:
            pass
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _sweep(args: list[str], env: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "perceptgym.cli", "sweep", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_a_small_sweep_through_address_on_a_real_cluster(ray_cluster, tmp_path):
    address, env = ray_cluster
    out = tmp_path / "sweep"
    args = [str(_write(tmp_path / "s.yml", EXAMPLE)), "--out", str(out), "--address", address, "--max-concurrent", "1"]
    proc = _sweep(args, env)
    text, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, text[-4000:]
    assert f"Ray cluster at {address} (2 CPUs, up to 1 trials at a time)" in text
    data = _results(out)
    assert len(data["trials"]) == 4 and all(t["status"] == "finished" for t in data["trials"])
    assert sorted((t["config"]["alpha"], t["seed"]) for t in data["trials"]) == [(0.1, 0), (0.1, 1), (0.5, 0), (0.5, 1)]
    for t in data["trials"]:
        run_dir = Path(t["run_dir"])
        config = json.loads((run_dir / "config.json").read_text())
        # an ordinary run: the YAML defaults for FrozenLake, then `set`, then the grid's value
        assert config["hyperparams"]["n_episodes"] == 300 and config["hyperparams"]["alpha"] == t["config"]["alpha"]
        assert config["hyperparams"]["eval_episodes"] == 2000 and config["seed"] == t["seed"]
        assert json.loads((run_dir / "eval.json").read_text())["mean_return"] == t["metrics"]["mean_return"]
        assert t["metrics"]["episodes"] == 300 and t["attempts"] == 1
    spans = sorted(
        (
            json.loads((Path(t["run_dir"]).parent / "attempts.json").read_text())[0]["started"],
            (Path(t["run_dir"]) / "eval.json").stat().st_mtime,
        )
        for t in data["trials"]
    )
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))  # one at a time
    assert len(data["configs"]) == 2
    for c in data["configs"]:
        returns = [t["metrics"]["mean_return"] for t in data["trials"] if t["config"] == c["config"]]
        r = c["return"]
        assert r["n"] == 2 and r["mean"] == pytest.approx(np.mean(returns))
        assert r["mean_ci"][0] <= r["mean"] <= r["mean_ci"][1] and r["iqm_ci"][0] <= r["iqm"] <= r["iqm_ci"][1]
    (best,) = data["best"]
    assert best["mean_ci"][0] == max(c["return"]["mean_ci"][0] for c in data["configs"])
    table = (out / "results.md").read_text()
    assert table.count("| alpha=") == 2 and "**(best)**" in table and "2/2" in table
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_crashing_trial_is_reported_and_a_killed_worker_is_retried_once(ray_cluster, tmp_path):
    address, env = ray_cluster
    sweep = {
        "env": "FrozenLake-v1",
        "agent": "q_learning",
        "seeds": [0],
        "grid": {"alpha": [0.5, 2.0]},  # alpha 2.0 is out of range: that trial fails at its start
        "set": {"n_episodes": 20000, "checkpoint_every": 2000, "eval_episodes": 200},
    }
    out = tmp_path / "sweep"
    proc = _sweep([str(_write(tmp_path / "s.yml", sweep)), "--out", str(out), "--address", address], env)
    good = parse_sweep(sweep).grid_trials()[0]
    folder = out / "runs" / good.key
    deadline = time.time() + 300
    while not list(folder.glob("*/checkpoints/state.json")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-4000:]
        time.sleep(0.2)
    (first,) = json.loads((folder / "attempts.json").read_text())
    os.kill(first["pid"], signal.SIGKILL)  # the Ray worker running that trial (its pid, as the trial wrote it)
    text, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, text[-4000:]  # done, with a failed trial
    data = _results(out)
    by_alpha = {t["config"]["alpha"]: t for t in data["trials"]}
    assert by_alpha[2.0]["status"] == "error" and "alpha=2.0 is out of range" in by_alpha[2.0]["error"]
    assert "alpha=2.0 is out of range" in text
    ok = by_alpha[0.5]
    assert ok["status"] == "finished" and ok["attempts"] == 2 and ok["metrics"]["episodes"] == 20000
    attempts = json.loads((folder / "attempts.json").read_text())
    assert attempts[1]["resumed"] is not None  # the retry continued the run from its checkpoint
    assert len([p for p in folder.iterdir() if p.is_dir()]) == 1


@pytest.mark.slow(seconds=30)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_then_resume_finishes_every_trial_exactly_once(ray_cluster, tmp_path, stop):
    """Ctrl-C (SIGINT) or a kill (SIGTERM: a sweep started in the background) stops the sweep resumably."""
    address, env = ray_cluster
    sweep = {**EXAMPLE, "set": {"n_episodes": 12000, "checkpoint_every": 1000, "eval_episodes": 200}}
    out = tmp_path / "sweep"
    proc = _sweep([str(_write(tmp_path / "s.yml", sweep)), "--out", str(out), "--address", address], env)
    deadline = time.time() + 300
    while not (out / "results.json").is_file() or not any(t["status"] == "finished" for t in _results(out)["trials"]):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-4000:]
        time.sleep(0.2)
    proc.send_signal(stop)
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, text[-4000:]
    assert f"perceptgym sweep --resume {out}" in text
    assert (out / "results.md").is_file()
    before = _results(out)
    finished = {t["key"] for t in before["trials"] if t["status"] == "finished"}
    assert 1 <= len(finished) < 4
    evaluated = {p.parents[0].parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/*/eval.json")}
    assert finished <= set(evaluated)

    proc = _sweep(["--resume", str(out), "--address", address], env)
    text, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, text[-4000:]
    after = _results(out)
    assert len(after["trials"]) == 4 and all(t["status"] == "finished" for t in after["trials"])
    for key, mtime in evaluated.items():  # evaluated before the interrupt: not trained or evaluated again
        assert next(out.glob(f"runs/{key}/*/eval.json")).stat().st_mtime_ns == mtime
    for key in finished:
        assert len(json.loads((out / "runs" / key / "attempts.json").read_text())) == 1  # not even restarted
    for t in after["trials"]:
        runs = [p for p in (out / "runs" / t["key"]).iterdir() if p.is_dir()]
        assert len(runs) == 1 and t["metrics"]["episodes"] == 12000
        episodes = np.loadtxt(runs[0] / "progress.csv", delimiter=",", skiprows=1, usecols=0, dtype=int)
        assert episodes.max() == 11999 and set(episodes) == set(range(12000))
    rest = 4 - len(finished)
    assert len(re.findall(rf"^\[\d/{rest}\] .*: return ", text, flags=re.M)) == rest  # one line per trial run


@pytest.mark.slow
def test_a_search_on_a_local_ray_uses_optuna_seeds_as_repeats_and_asha(tmp_path):
    from perceptgym.agents.sweep import run_sweep

    spec = parse_sweep(
        {
            "env": "FrozenLake-v1",
            "agent": "q_learning",
            "seeds": [0, 1],
            "search": {"alpha": {"loguniform": [0.05, 1.0]}, "epsilon_decay_episodes": {"randint": [50, 400]}},
            "set": {"n_episodes": 400, "eval_episodes": 100},
            "num_samples": 3,
            "early_stopping": {"grace": 0.5, "reduction_factor": 2},
        }
    )
    result = run_sweep(spec, tmp_path / "sweep", num_cpus=2, progress=False)
    assert not result.interrupted and result.unfinished == 0 and result.errors == 0
    trials = result.results["trials"]
    configs = {json.dumps(t["config"], sort_keys=True) for t in trials}
    assert len(trials) == 6 and len(configs) == 3  # 3 suggestions, each on both seeds
    for t in trials:
        assert 0.05 <= t["config"]["alpha"] <= 1.0 and 50 <= t["config"]["epsilon_decay_episodes"] <= 400
        assert isinstance(t["config"]["epsilon_decay_episodes"], int)
        assert t["status"] in ("finished", "stopped")
        # ASHA's one rung is at 50% of the budget (grace 0.5, reduction factor 2, max 100%)
        assert t["metrics"]["budget_pct"] == {"finished": 100, "stopped": 50}[t["status"]]
        # a stopped trial really stopped: no evaluation, and its log ends near half the budget
        assert (Path(t["run_dir"]) / "eval.json").is_file() == (t["status"] == "finished")
        rows = (Path(t["run_dir"]) / "progress.csv").read_text().count("\n") - 1
        assert rows == 400 if t["status"] == "finished" else 200 <= rows < 300
    assert sorted(t["seed"] for t in trials) == [0, 0, 0, 1, 1, 1]
    complete = {c["config_key"] for c in result.results["configs"] if c["complete"]}
    assert {b["config_key"] for b in result.results["best"]} <= complete
    assert len(result.results["best"]) == min(1, len(complete))


@pytest.mark.slow
def test_a_search_resumed_after_ctrl_c_suggests_its_configs_again_then_new_ones(ray_cluster, tmp_path):
    address, env = ray_cluster
    sweep = {
        "env": "FrozenLake-v1",
        "agent": "q_learning",
        "seeds": [0, 1],
        "num_samples": 3,
        "search": {"alpha": {"loguniform": [0.05, 1.0]}},
        "set": {"n_episodes": 8000, "checkpoint_every": 1000, "eval_episodes": 200},
        "early_stopping": False,
    }
    out = tmp_path / "sweep"
    proc = _sweep([str(_write(tmp_path / "s.yml", sweep)), "--out", str(out), "--address", address], env)
    deadline = time.time() + 300
    while not (out / "results.json").is_file() or not any(t["status"] == "finished" for t in _results(out)["trials"]):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-4000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, text[-4000:]
    seen = {t["config"]["alpha"] for t in _results(out)["trials"]}

    proc = _sweep(["--resume", str(out), "--address", address], env)
    text, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, text[-4000:]
    trials = _results(out)["trials"]
    alphas = {t["config"]["alpha"] for t in trials}
    assert seen <= alphas and len(alphas) == 3  # the configs suggested before, then new ones up to num_samples
    assert sorted((t["config"]["alpha"], t["seed"]) for t in trials) == sorted((a, s) for a in alphas for s in (0, 1))
    assert all(t["status"] == "finished" and t["metrics"]["episodes"] == 8000 for t in trials)
    assert all(len([p for p in (out / "runs" / t["key"]).iterdir() if p.is_dir()]) == 1 for t in trials)
    assert len(list((out / "runs").iterdir())) == 6


# ---- perceptgym ladder --sweep ---------------------------------------------------------------------------------
def test_ladder_sweep_settings_and_an_earlier_sweep_folder_are_refused(tmp_path):
    from perceptgym.agents.experiments.ladder import LadderSettings, run_ladder, sweep_folder

    for kwargs in ({"address": "auto"}, {"max_concurrent": 2}):
        with pytest.raises(ValueError, match="settings of --sweep"):
            LadderSettings(**kwargs)
    with pytest.raises(ValueError, match="max_concurrent=0"):
        LadderSettings(sweep=True, max_concurrent=0)
    sweep_folder(tmp_path).mkdir(parents=True)  # a second ladder into the same --out
    settings = LadderSettings(seeds=[0], episodes=10, pixels_steps=0, out=tmp_path, progress=False, sweep=True)
    with pytest.raises(ValueError, match="holds the sweep of an earlier ladder"):
        run_ladder(settings)


@pytest.mark.slow(seconds=92)
def test_ladder_sweep_is_the_ladder_with_its_rungs_and_seeds_as_trials(tmp_path):
    from perceptgym.agents.experiments.ladder import (
        PROTOCOL_KEYS,
        RUNGS,
        LadderSettings,
        budgets,
        markdown_table,
        run_ladder,
        rungs_to_run,
        sweep_folder,
        sweep_trials,
    )

    settings = LadderSettings(quick=True, seeds=[0, 1], out=tmp_path / "swept", progress=False, sweep=True)
    summary = run_ladder(settings)
    assert json.loads((tmp_path / "swept" / "ladder.json").read_text()) == summary
    rungs = rungs_to_run(settings, budgets(settings))
    listed = sweep_trials(rungs, budgets(settings), settings.seeds)
    assert list(summary["rungs"]) == [r.name for r in rungs] and "pixels (PPO)" in summary["rungs"]
    assert set(summary["protocol"]) == set(summary["rungs"])
    for rung in rungs:
        rows = summary["rungs"][rung.name]
        assert [r["seed"] for r in rows] == [0, 1]
        for row in rows:
            assert set(summary["protocol"][rung.name]) == set(PROTOCOL_KEYS)
            assert row["eval_episodes"] == 50
            owner = rung.shares_agent_with or rung.name
            own = next(r for r in RUNGS if r.name == owner)
            # each agent is a run directory of a sweep trial, trained on its rung's observations
            assert Path(row["run_dir"]).is_relative_to(sweep_folder(settings.out).resolve() / "runs")
            config = json.loads((Path(row["run_dir"]) / "config.json").read_text())
            assert config["run_settings"]["env_kwargs"] == own.env_kwargs and config["seed"] == row["seed"]
            if rung.shares_agent_with:
                assert row["train_env_steps"] == 0 and row["train_seconds"] == 0.0
            else:
                assert row["train_env_steps"] >= (2_048 if rung.deep else 3_000)
                assert row["train_seconds"] > 0
    # one sweep, every rung's trials in one queue, the longest rungs first
    trials = json.loads((sweep_folder(settings.out) / "results.json").read_text())["trials"]
    own = [r for r in rungs if not r.shares_agent_with]
    assert len(trials) == len(listed) == len(own) * 2 and all(t["status"] == "finished" for t in trials)
    assert {t["key"] for t in trials} == {trial.key for _, trial in listed}
    # the longest rung's trials (PPO's) are the first two to start; the Q-learning ones, the shortest, come last
    assert [rung.name for rung, _ in listed][:2] == ["pixels (PPO)"] * 2
    started = {
        t["key"]: json.loads((Path(t["run_dir"]).parent / "attempts.json").read_text())[0]["started"] for t in trials
    }
    first = [started[trial.key] for rung, trial in listed if rung.name == "pixels (PPO)"]
    tabular = [started[trial.key] for rung, trial in listed if not rung.deep]
    assert max(first) < min(tabular)
    assert (tmp_path / "swept" / "ladder.md").read_text().strip() == markdown_table(summary)
    # the same seed trains the same agent with or without --sweep
    plain = run_ladder(LadderSettings(quick=True, seeds=[0], pixels_steps=0, out=tmp_path / "plain", progress=False))
    for name, (row,) in plain["rungs"].items():
        swept = summary["rungs"][name][0]
        for key in ("mean_return", "success_rate", "wrong_stop_rate", "train_env_steps", "normalised_score"):
            assert swept[key] == row[key], (name, key)


# ---- perceptgym bench sweep ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bench_sweep_times_the_loop_and_each_concurrency_and_writes_json(tmp_path, capsys):
    from perceptgym import benchmark_sweep

    out = tmp_path / "bench.json"
    assert benchmark_sweep.main(["--trials", "2", "--episodes", "300", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert set(data["median_wall_s"]) == {"loop", "sweep x1", "sweep x2"} and data["ray_cpus"] == 2
    wall = data["median_wall_s"]
    assert data["speedup"]["sweep x2"] == pytest.approx(wall["sweep x1"] / wall["sweep x2"])
    assert data["overhead_per_trial_s"] == pytest.approx((wall["sweep x1"] - wall["loop"]) / 2)
    assert all(v > 0 for v in wall.values())
    assert "speed-up 2 vs 1 at a time:" in text and "Ray's overhead per trial" in text
