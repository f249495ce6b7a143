"""The main job as one function: from real MNIST to an agent that reads handwritten digits to drive.

:func:`run_demo` gets MNIST; loads the shipped CNN reader and GAN (or retrains them); trains Q-learning on
GridDriving in ``perceived`` mode (the trip card and the stop signs are read by the CNN) and, for comparison,
in ``symbolic`` mode (true digits), with the recipe of ``q_learning.yml``; evaluates both greedily on unseen
handwriting (MNIST test digits) against the exact optimum from value iteration; runs bandit agents on
DigitBandit; and writes a report folder: ``report.md`` (the numbers), ``report.json`` (the same numbers,
machine-readable), learning and regret curves, the confusion matrix, a GAN sample grid, a recorded
GridDriving episode (``episode.mp4`` and a smaller ``episode.gif``) and the two agents' run directories
(``runs/symbolic/...``, ``runs/perceived/...``) for ``perceptgym evaluate`` and ``perceptgym watch``.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perceptgym.agents.config import check_settings
from perceptgym.agents.experiments.curves import moving_average, read_progress
from perceptgym.agents.experiments.driving import evaluate_run, optimal_return, recipe, train_driving
from perceptgym.agents.experiments.files import save_figure, subplots, write_atomic, write_json, write_text
from perceptgym.envs.viewer import check_window_size, set_window_size

DRIVING_AGENT = "q_learning"
MODES = ("symbolic", "perceived")
BANDIT_AGENTS = ("uniform", "linucb", "neural", "perception_prior")
BANDIT_ROUNDS = 5_000
QUICK = {"episodes": 20_000, "eval_episodes": 100, "rounds": 500}
"""the budgets of ``--quick`` (CI): the recipe stays the YAML's"""
EVAL_SEED_OFFSET, RECORD_SEED_OFFSET = 10_000, 20_000
"""evaluation starts from reset(seed=seed + 10,000), the recorded episode from seed + 20,000"""
GIF_SIZE = (640, 360)  # [px] the GIF is for pages and chats: a quarter of the MP4's pixels
END_HOLD = 1.5  # [s] the recorded episode's last frame (how it ended) stays this long

Log = Callable[[str], Any]


@dataclass
class DemoSettings:
    quick: bool = False
    """reduced budgets (CI): fewer episodes and rounds, smaller evaluations"""
    retrain: bool = False
    """retrain the classifier and the GAN instead of using the shipped checkpoints"""
    out: Path = Path("reports/demo")
    """report folder (replaced if it exists)"""
    seed: int = 0
    """one seed for everything (env, agents, retraining)"""
    episodes: int | None = None
    """GridDriving training episodes per mode (default: q_learning.yml, 140,000; quick 20,000)"""
    eval_episodes: int | None = None
    """greedy evaluation episodes per mode (default: q_learning.yml, 1,000; quick 100)"""
    rounds: int | None = None
    """DigitBandit rounds per agent (default 5,000; quick 500)"""
    progress: bool = True
    """show progress bars"""
    window_size: tuple[int, int] | None = None
    """WIDTH HEIGHT [px] of the recorded episode.mp4 and of the --render human window (default 1280 720)"""

    def __post_init__(self) -> None:
        check_settings(self, at_least={"seed": 0, "episodes": 1, "eval_episodes": 1, "rounds": 1})
        check_window_size(self.window_size, "window_size")

    def budget(self, name: str) -> int:
        """``episodes``, ``eval_episodes`` or ``rounds``: the setting, else quick's, else the recipe's."""
        value = getattr(self, name)
        if value is not None:
            return value
        if self.quick:
            return QUICK[name]
        if name == "rounds":
            return BANDIT_ROUNDS
        return recipe(DRIVING_AGENT)["n_episodes" if name == "episodes" else "eval_episodes"]


def _quiet(_msg: str) -> None:
    pass


# ---- perception --------------------------------------------------------------------------------------


def perception(settings: DemoSettings, out: Path, log: Log = _quiet) -> dict[str, Any]:
    """The reader (CNN) and the world's handwriting (GAN): shipped, or retrained with ``retrain``."""
    from perceptgym.supervised.classifier import evaluate as evaluate_classifier
    from perceptgym.supervised.classifier import load_classifier, save_classifier
    from perceptgym.supervised.classifier import recipe as classifier_recipe
    from perceptgym.supervised.classifier import train as train_classifier
    from perceptgym.supervised.data import load_mnist
    from perceptgym.supervised.perception import SHIPPED
    from perceptgym.supervised.plots import plot_confusion

    log("MNIST: loading (the first run fetches and verifies it, ~3 s)")
    data = load_mnist()
    log(f"MNIST: {len(data.train_labels):,} training and {len(data.test_labels):,} test digits")
    if settings.retrain:
        models = out / "models"
        models.mkdir(parents=True, exist_ok=True)
        model_cfg, train_cfg = classifier_recipe("cnn")
        train_cfg = dataclasses.replace(train_cfg, seed=settings.seed, epochs=1 if settings.quick else train_cfg.epochs)
        log(f"classifier: retraining the CNN ({train_cfg.epochs} epochs)")
        result = train_classifier(
            model_cfg, train_cfg, data.train_images, data.train_labels, progress=settings.progress
        )
        cnn_path = save_classifier(models / "cnn.pt", result.model, train_args={"recipe": "cnn", "demo": True})
        from perceptgym.supervised import gan as gan_lib

        log("GAN: retraining (quick: a few hundred steps; full: the shipped recipe)")
        gan_path = gan_lib.retrain_for_demo(models / "gan.pt", seed=settings.seed, quick=settings.quick)
        # the runs name the retrained reader by its absolute path, so they open from any directory
        reader = str(Path(cnn_path).resolve())
    else:
        cnn_path, gan_path, reader = SHIPPED["cnn"], SHIPPED["gan"], "cnn"
    loaded = load_classifier(cnn_path)
    metrics = evaluate_classifier(loaded.model, loaded.preprocess, data.test_images, data.test_labels)
    plot_confusion(metrics.confusion, out / "confusion_matrix.png", title="CNN reader on MNIST test,")
    log(f"classifier: {metrics.accuracy:.2%} on the 10,000 official test digits ({cnn_path})")

    gan: dict[str, Any] = {"checkpoint": str(gan_path)}
    if Path(gan_path).is_file():
        from perceptgym.supervised.perception import DigitReader, make_source
        from perceptgym.supervised.plots import save_digit_grid

        source = make_source(f"gan:{gan_path}")
        labels = np.repeat(np.arange(10), 10)
        save_digit_grid(source(labels, np.random.default_rng(settings.seed)), out / "gan_samples.png", ncols=10)
        many = np.repeat(np.arange(10), 100)
        read, _ = DigitReader(cnn_path)(source(many, np.random.default_rng(settings.seed + 1)))
        gan["label_accuracy"] = float((read == many).mean())
        log(f"GAN: the CNN reads {gan['label_accuracy']:.1%} of 1,000 generated digits as the digit asked for")
    else:
        log(f"GAN: no checkpoint at {gan_path}; the GAN parts are skipped")
    return {
        "classifier": {"checkpoint": str(cnn_path), "test_accuracy": metrics.accuracy, "per_class": metrics.per_class},
        "gan": gan,
        "reader": reader,
    }


# ---- GridDriving ---------------------------------------------------------------------------------------


def driving(settings: DemoSettings, out: Path, reader: str, log: Log = _quiet) -> dict[str, Any]:
    """Q-learning on GridDriving, perceived (``reader`` reads the digits) and symbolic (true digits)."""
    n_episodes, n_eval = settings.budget("episodes"), settings.budget("eval_episodes")
    results: dict[str, Any] = {}
    curves: dict[str, np.ndarray] = {}
    for mode in MODES:
        log(f"GridDriving/{mode}: Q-learning for {n_episodes:,} episodes on MNIST training digits")
        start = time.perf_counter()
        run = train_driving(
            DRIVING_AGENT,
            {"obs_mode": mode, "digit_source": "mnist-train", "reader": reader},
            seed=settings.seed,
            runs_dir=out / "runs" / mode,
            budget=n_episodes,
            progress=settings.progress,
        )
        seconds = time.perf_counter() - start
        curves[mode] = read_progress(run.run_dir)[2]
        # Greedy evaluation on unseen handwriting: MNIST test digits, read by the same reader.
        res = evaluate_run(run.run_dir, "mnist-test", n_eval, seed=settings.seed + EVAL_SEED_OFFSET)
        results[mode] = {
            "train_episodes": run.episodes,
            "train_seconds": seconds,
            "eval_episodes": n_eval,
            **res,
            "steps_per_second": int(run.global_step / seconds),
            "run_dir": str(run.run_dir),
        }
        log(
            f"GridDriving/{mode}: greedy return {res['mean_return']:.3f} ± {res['std_return']:.3f}, success "
            f"{res['success_rate']:.1%}, wrong stops {res['wrong_stop_rate']:.1%} ({n_eval} episodes; "
            f"run {run.run_dir})"
        )
    optimum = optimal_return()
    results["optimal_return"] = optimum
    plot_learning(curves, optimum, out / "learning_curves.png")

    results["recorded_episode"] = record_demo_episode(
        results["perceived"]["run_dir"], out, settings.seed + RECORD_SEED_OFFSET, settings.window_size
    )
    rec = results["recorded_episode"]
    log(f"GridDriving: recorded one perceived-mode episode ({rec['steps']} steps, return {rec['return']:.2f})")
    return results


def record_demo_episode(
    run_dir: str | Path, out: Path, seed: int, window_size: tuple[int, int] | None = None
) -> dict[str, Any]:
    """The trained agent's episode on unseen handwriting: ``episode.mp4``, a smaller ``episode.gif``, ``viewer.png``.

    Both videos are drawn at their own size (the same episode: same seed, deterministic agent), and the last
    frame, showing how the trip ended, is held for END_HOLD seconds.
    """
    from PIL import Image

    from perceptgym.agents.playback import VideoWriter, load_run, record_episode

    files, lengths, stills = {}, set(), []
    # The GIF first: its frame count says which frame of the MP4 (drawn at the viewer's size) is the still.
    for name, size in (("episode.gif", GIF_SIZE), ("episode.mp4", window_size)):
        run = load_run(run_dir, env_kwargs={"digit_source": "mnist-test"}, render_mode="rgb_array")
        if size is not None:
            set_window_size(run.env, size)
        fps = run.env.metadata.get("render_fps", 8)
        hold = round(END_HOLD * fps)
        middle = (next(iter(lengths))[0] - hold) // 2 if lengths else -1  # -1: no still from the GIF
        try:
            with VideoWriter(out / name, fps=fps) as writer:

                def write(frame: np.ndarray, writer: VideoWriter = writer, middle: int = middle) -> None:
                    if writer.frames == middle:
                        stills.append(frame.copy())
                    writer.write(frame)

                n_frames, ret = record_episode(run.env, run.agent, write, seed=seed, hold_frames=hold)
        finally:
            run.env.close()
        files[name] = {"frames": n_frames, "size": list(writer.size)}
        lengths.add((n_frames, float(ret)))
    if len(lengths) != 1:  # the agent is greedy and the env seeded: the same episode both times
        raise RuntimeError(f"the two recordings of one seeded episode differ: {sorted(lengths)}")
    write_atomic(out / "viewer.png", lambda f: Image.fromarray(stills[0]).save(f, format="PNG"))
    n_frames, ret = lengths.pop()
    return {"steps": n_frames - 1 - round(END_HOLD * fps), "return": ret, "files": files}


def plot_learning(curves: dict[str, np.ndarray], optimum: float, path: Path) -> Path:
    """ε-greedy training returns of each mode (moving average) against the optimal expected return."""
    fig, ax = subplots(figsize=(7, 4), dpi=110)
    window = max(1, len(next(iter(curves.values()))) // 50)
    for mode, returns in curves.items():
        # Only full windows: the shorter averages at the start are single-episode noise.
        ma = moving_average(returns, window)[window - 1 :]
        ax.plot(np.arange(window, len(returns) + 1), ma, label=f"Q-learning, {mode}")
    ax.axhline(optimum, color="k", ls="--", lw=1, label=f"optimal expected return {optimum:.3f}")
    ax.set_xlabel("training episode")
    ax.set_ylabel(f"return (moving average of {window} episodes, ε-greedy)")
    ax.set_title("GridDriving-v0: learning to drive to the stop on the trip card")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


# ---- DigitBandit ---------------------------------------------------------------------------------------


def bandit(settings: DemoSettings, out: Path, reader: str, log: Log = _quiet) -> dict[str, Any]:
    """The bandit sweep of :mod:`~perceptgym.agents.experiments.bandit_sweep`, one seed, into ``out/bandit``."""
    from perceptgym.agents.experiments.bandit_sweep import BanditSweep, run_bandits

    n_rounds = settings.budget("rounds")
    log(f"DigitBandit: {', '.join(BANDIT_AGENTS)} for {n_rounds:,} rounds each on MNIST training digits")
    sweep = BanditSweep(
        agents=BANDIT_AGENTS,
        rounds=n_rounds,
        seeds=(settings.seed,),
        reader=reader,
        exp_name="demo",
        progress=settings.progress,
    )
    summary = run_bandits(sweep, run_dir=out / "bandit")
    shutil.copy(out / "bandit" / "cumulative_regret.png", out / "regret_curves.png")
    table = {
        name: {"cumulative_regret": s["final_cumulative_regret_mean"], "seconds": s["seconds_per_run_mean"]}
        for name, s in summary["agents"].items()
    }
    for name, row in table.items():
        log(f"DigitBandit/{name}: cumulative regret {row['cumulative_regret']:.0f} in {row['seconds']:.1f} s")
    return {"rounds": n_rounds, "agents": table}


# ---- report --------------------------------------------------------------------------------------------


def report_markdown(results: dict[str, Any]) -> str:
    """report.md: the numbers of ``results`` (report.json), with the pictures next to it."""
    p, d, b = results["perception"], results["driving"], results["bandit"]
    gan = p["gan"]
    lines = [
        "# perceptgym demo report",
        "",
        f"Generated {results['generated']} in {results['seconds']:.0f} s "
        f"({'quick' if results['quick'] else 'full'} mode, seed {results['seed']}).",
        "",
        "## Perception",
        "",
        f"- CNN reader: **{p['classifier']['test_accuracy']:.2%}** on the 10,000 official MNIST test digits.",
        "  ![confusion matrix](confusion_matrix.png)",
    ]
    if "label_accuracy" in gan:
        lines += [
            f"- GAN handwriting: the CNN reads **{gan['label_accuracy']:.1%}** of 1,000 generated digits "
            "as the digit asked for.",
            "  ![GAN samples, one row per digit](gan_samples.png)",
        ]
    lines += [
        "",
        "## GridDriving-v0: Q-learning, evaluated greedily on unseen handwriting (MNIST test digits)",
        "",
        "| mode | train episodes | mean return | success rate | wrong-stop rate |",
        "|---|---|---|---|---|",
    ]
    for mode in MODES:
        r = d[mode]
        lines.append(
            f"| {mode} | {r['train_episodes']} | {r['mean_return']:.3f} ± {r['std_return']:.3f} | "
            f"{r['success_rate']:.3f} | {r['wrong_stop_rate']:.3f} |"
        )
    lines += [
        "",
        f"Optimal expected return (value iteration, symbolic): {d['optimal_return']:.3f}. "
        f"Evaluation: {d['perceived']['eval_episodes']} episodes per mode.",
        "",
        "![learning curves](learning_curves.png)",
        "",
        f"A perceived-mode episode ({d['recorded_episode']['steps']} steps, return "
        f"{d['recorded_episode']['return']:.2f}; [MP4](episode.mp4)): ![episode](episode.gif)",
        "",
        'The agents are run directories: `perceptgym evaluate RUN_DIR --env-kwargs \'{"digit_source": '
        '"mnist-test"}\'` repeats an evaluation, `perceptgym watch RUN_DIR` shows the agent driving.',
        "",
        *(f"- {mode}: `{d[mode]['run_dir']}`" for mode in MODES),
        "",
        "## DigitBandit-v0",
        "",
        "| agent | cumulative regret | seconds |",
        "|---|---|---|",
    ]
    for name, row in b["agents"].items():
        lines.append(f"| {name} | {row['cumulative_regret']:.1f} | {row['seconds']:.1f} |")
    lines += ["", f"{b['rounds']} rounds per agent. ![cumulative regret](regret_curves.png)", ""]
    return "\n".join(lines)


def run_demo(settings: DemoSettings, log: Log = _quiet) -> dict[str, Any]:
    """Runs the whole demo into ``settings.out`` (replaced) and returns what report.json holds."""
    start = time.perf_counter()
    out = Path(settings.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    results: dict[str, Any] = {
        "quick": settings.quick,
        "seed": settings.seed,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    results["perception"] = perception(settings, out, log)
    reader = results["perception"].pop("reader")
    results["driving"] = driving(settings, out, reader, log)
    results["bandit"] = bandit(settings, out, reader, log)
    results["seconds"] = time.perf_counter() - start
    write_json(out / "report.json", results)
    write_text(out / "report.md", report_markdown(results))
    return results


def watch_driving(
    run_dir: str | Path,
    seed: int,
    episodes: int = 10,
    digit_source: str = "mnist-test",
    window_size: tuple[int, int] | None = None,
    log: Log = _quiet,
) -> list[float]:
    """Shows the run's agent driving in a window (the ``perceptgym watch`` keys) until ``episodes`` end or it closes."""
    from perceptgym.agents.playback import load_run, watch_episodes

    run = load_run(run_dir, env_kwargs={"digit_source": digit_source}, render_mode="rgb_array")
    if window_size is not None:
        set_window_size(run.env, window_size)
    try:
        fps = run.env.metadata.get("render_fps", 8)
        return watch_episodes(run.env, run.agent, episodes=episodes, seed=seed, fps=fps, end_hold=END_HOLD, log=log)
    finally:
        run.env.close()
