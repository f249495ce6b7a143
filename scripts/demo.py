"""The main job: from real MNIST to a trained agent that reads handwritten digits to drive, in one command.

    python -m perceptgym.demo                 # the full demo (a few minutes, headless), report in reports/demo/
    python -m perceptgym.demo --quick         # a reduced run (under a minute): what CI runs
    python -m perceptgym.demo --render human  # then watch the trained agent drive in the pygame window
    python -m perceptgym.demo --retrain       # retrain the classifier and the GAN instead of the shipped ones

What it does: gets MNIST; loads the shipped CNN reader and GAN (or retrains them); trains Q-learning on
GridDriving in ``perceived`` mode (the trip card and the stop signs are read by the CNN) and, for comparison,
in ``symbolic`` mode (true digits); evaluates both greedily on unseen handwriting (MNIST test digits) against
the exact optimum from value iteration; runs bandit agents on DigitBandit; and writes a report folder:
``report.md`` (the numbers), ``report.json`` (the same numbers, machine-readable), learning and regret
curves, the confusion matrix, a GAN sample grid and a recorded GridDriving episode (GIF).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import perceptgym.envs  # noqa: F401  (registers the perceptgym envs)
from perceptgym._cli import run_program
from perceptgym.agents.loop import train
from perceptgym.agents.playback import record_episode, save_gif
from perceptgym.agents.registry import make_agent
from perceptgym.ladder import evaluate_driving
from perceptgym.plot_curves import moving_average

ENV_ID = "perceptgym/GridDriving-v0"


@dataclass
class Args:
    quick: bool = False
    """reduced budgets (CI): fewer episodes and rounds, smaller evaluations"""
    retrain: bool = False
    """retrain the classifier and the GAN instead of using the shipped checkpoints"""
    render: str = "none"
    """"human": after the report, watch the trained perceived-mode agent drive in a pygame window"""
    out: Path = Path("reports/demo")
    """report folder (replaced if it exists)"""
    seed: int = 0
    """one seed for everything (env, agents, retraining)"""
    episodes: int | None = None
    """GridDriving training episodes per mode (default 150,000; quick 20,000)"""
    eval_episodes: int | None = None
    """greedy evaluation episodes per mode (default 1,000; quick 100)"""
    rounds: int | None = None
    """DigitBandit rounds per agent (default 5,000; quick 500)"""

    def __post_init__(self) -> None:
        if self.render not in ("none", "human"):
            raise ValueError(f"render must be 'none' or 'human', got {self.render!r}")
        for name in ("episodes", "eval_episodes", "rounds"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}={value} must be >= 1")

    @property
    def n_episodes(self) -> int:
        return self.episodes or (20_000 if self.quick else 150_000)

    @property
    def n_eval(self) -> int:
        return self.eval_episodes or (100 if self.quick else 1_000)

    @property
    def n_rounds(self) -> int:
        return self.rounds or (500 if self.quick else 5_000)


def say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- perception --------------------------------------------------------------------------------------


def perception(args: Args, out: Path) -> dict[str, Any]:
    """The reader (CNN) and the world's handwriting (GAN): shipped, or retrained with ``--retrain``."""
    from perceptgym.supervised.classifier import evaluate as evaluate_classifier
    from perceptgym.supervised.classifier import load_classifier, recipe, save_classifier
    from perceptgym.supervised.classifier import train as train_classifier
    from perceptgym.supervised.data import load_mnist
    from perceptgym.supervised.perception import SHIPPED
    from perceptgym.supervised.plots import plot_confusion

    say("MNIST: loading (the first run fetches and verifies it, ~3 s)")
    data = load_mnist()
    say(f"MNIST: {len(data.train_labels):,} training and {len(data.test_labels):,} test digits")
    models = out / "models"
    if args.retrain:
        model_cfg, train_cfg = recipe("cnn")
        train_cfg = dataclasses.replace(train_cfg, seed=args.seed, epochs=1 if args.quick else train_cfg.epochs)
        say(f"classifier: retraining the CNN ({train_cfg.epochs} epochs)")
        result = train_classifier(model_cfg, train_cfg, data.train_images, data.train_labels, progress=True)
        cnn_path = save_classifier(models / "cnn.pt", result.model, train_args={"recipe": "cnn", "demo": True})
        gan_path = retrain_gan(args, models)
    else:
        cnn_path, gan_path = SHIPPED["cnn"], SHIPPED["gan"]
    loaded = load_classifier(cnn_path)
    metrics = evaluate_classifier(loaded.model, loaded.preprocess, data.test_images, data.test_labels)
    plot_confusion(metrics.confusion, out / "confusion_matrix.png", title="CNN reader on MNIST test,")
    say(f"classifier: {metrics.accuracy:.2%} on the 10,000 official test digits ({cnn_path})")

    gan: dict[str, Any] = {"checkpoint": str(gan_path)}
    if Path(gan_path).is_file():
        from perceptgym.supervised.perception import DigitReader, make_source
        from perceptgym.supervised.plots import save_digit_grid

        source = make_source(f"gan:{gan_path}")
        labels = np.repeat(np.arange(10), 10)
        save_digit_grid(source(labels, np.random.default_rng(args.seed)), out / "gan_samples.png", ncols=10)
        many = np.repeat(np.arange(10), 100)
        read, _ = DigitReader(cnn_path)(source(many, np.random.default_rng(args.seed + 1)))
        gan["label_accuracy"] = float((read == many).mean())
        say(f"GAN: the CNN reads {gan['label_accuracy']:.1%} of 1,000 generated digits as the digit asked for")
    else:
        say(f"GAN: no checkpoint at {gan_path}; the GAN parts are skipped")
    return {
        "classifier": {"checkpoint": str(cnn_path), "test_accuracy": metrics.accuracy, "per_class": metrics.per_class},
        "gan": gan,
        "cnn_path": str(cnn_path),
    }


def retrain_gan(args: Args, models: Path) -> Path:
    from perceptgym.supervised import gan as gan_lib

    say("GAN: retraining (quick: a few hundred steps; full: the shipped recipe)")
    return gan_lib.retrain_for_demo(models / "gan.pt", seed=args.seed, quick=args.quick)


# ---- GridDriving ---------------------------------------------------------------------------------------


def make_driving(obs_mode: str, digit_source: str, reader: str, render_mode: str | None = None) -> gym.Env:
    return gym.make(ENV_ID, obs_mode=obs_mode, digit_source=digit_source, reader=reader, render_mode=render_mode)


def driving(args: Args, out: Path, cnn_path: str) -> dict[str, Any]:
    """Q-learning on GridDriving, perceived (CNN reads the digits) and symbolic (true digits)."""
    from tqdm.auto import tqdm

    results: dict[str, Any] = {}
    curves: dict[str, np.ndarray] = {}
    agents = {}
    for mode in ("symbolic", "perceived"):
        env = make_driving(mode, "mnist-train", cnn_path)
        agent = make_agent(
            "q_learning",
            env.observation_space,
            env.action_space,
            {
                "alpha": 0.5,
                "gamma": 0.99,
                "epsilon": 1.0,
                "epsilon_end": 0.05,
                "epsilon_schedule": "linear",
                "epsilon_decay_episodes": max(1, args.n_episodes // 2),
            },
            seed=args.seed,
        )
        say(f"GridDriving/{mode}: Q-learning for {args.n_episodes:,} episodes on MNIST training digits")
        bar = tqdm(total=args.n_episodes, desc=f"q_learning {mode}", unit="ep", mininterval=1.0)
        start = time.perf_counter()
        history = train(
            env, agent, n_episodes=args.n_episodes, seed=args.seed, callback=lambda _ep, bar=bar: bar.update(1)
        )
        bar.close()
        seconds = time.perf_counter() - start
        curves[mode] = np.array([ep.ep_return for ep in history])
        # Greedy evaluation on unseen handwriting: MNIST test digits, read by the same CNN.
        eval_env = make_driving(mode, "mnist-test", cnn_path)
        res = evaluate_driving(agent, eval_env, args.n_eval, seed=args.seed + 10_000)
        results[mode] = {
            "train_episodes": args.n_episodes,
            "train_seconds": seconds,
            "eval_episodes": args.n_eval,
            **res,
            "steps_per_second": int(sum(ep.length for ep in history) / seconds),
        }
        say(
            f"GridDriving/{mode}: greedy return {res['mean_return']:.3f} ± {res['std_return']:.3f}, success "
            f"{res['success_rate']:.1%}, wrong stops {res['wrong_stop_rate']:.1%} ({args.n_eval} episodes)"
        )
        agents[mode] = agent
        agent.save(out / "models" / f"q_learning_{mode}.npz")
    optimum = make_driving("symbolic", "mnist-train", cnn_path).unwrapped.optimal_return()
    results["optimal_return"] = float(optimum)
    plot_learning(curves, optimum, out / "learning_curves.png")

    rec_env = make_driving("perceived", "mnist-test", cnn_path, render_mode="rgb_array")
    frames, ret = record_episode(rec_env, agents["perceived"], seed=args.seed + 20_000)
    save_gif(frames, out / "episode.gif", fps=rec_env.metadata.get("render_fps", 8))
    from PIL import Image

    Image.fromarray(frames[len(frames) // 2]).save(out / "viewer.png")
    results["recorded_episode"] = {"steps": len(frames) - 1, "return": float(ret)}
    say(f"GridDriving: recorded one perceived-mode episode ({len(frames) - 1} steps, return {ret:.2f})")
    return results, agents["perceived"]


def plot_learning(curves: dict[str, np.ndarray], optimum: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
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
    fig.savefig(path)
    plt.close(fig)


# ---- DigitBandit ---------------------------------------------------------------------------------------


def bandit(args: Args, out: Path, cnn_path: str) -> dict[str, Any]:
    from perceptgym import run_bandit

    agents = ("uniform", "linucb", "neural", "perception_prior")
    say(f"DigitBandit: {', '.join(agents)} for {args.n_rounds:,} rounds each on MNIST training digits")
    bargs = run_bandit.Args(
        agents=agents, rounds=args.n_rounds, seeds=(args.seed,), reader=cnn_path, exp_name="demo", progress=True
    )
    summary = run_bandit.run_bandits(bargs, run_dir=out / "bandit")
    shutil.copy(out / "bandit" / "cumulative_regret.png", out / "regret_curves.png")
    table = {
        name: {"cumulative_regret": s["final_cumulative_regret_mean"], "seconds": s["seconds_per_run_mean"]}
        for name, s in summary["agents"].items()
    }
    for name, row in table.items():
        say(f"DigitBandit/{name}: cumulative regret {row['cumulative_regret']:.0f} in {row['seconds']:.1f} s")
    return {"rounds": args.n_rounds, "agents": table}


# ---- report --------------------------------------------------------------------------------------------


def write_report(out: Path, results: dict[str, Any]) -> Path:
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
    for mode in ("symbolic", "perceived"):
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
        f"{d['recorded_episode']['return']:.2f}): ![episode](episode.gif)",
        "",
        "## DigitBandit-v0",
        "",
        "| agent | cumulative regret | seconds |",
        "|---|---|---|",
    ]
    for name, row in b["agents"].items():
        lines.append(f"| {name} | {row['cumulative_regret']:.1f} | {row['seconds']:.1f} |")
    lines += ["", f"{b['rounds']} rounds per agent. ![cumulative regret](regret_curves.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def watch(agent, cnn_path: str, seed: int) -> None:
    env = make_driving("perceived", "mnist-test", cnn_path, render_mode="human")
    say("watching the perceived-mode agent drive (close the window to stop)")

    def window_closed() -> bool:
        renderer = env.unwrapped._renderer
        return renderer is not None and renderer.closed

    try:
        obs, _ = env.reset(seed=seed)
        for _ in range(10):
            while not window_closed():
                obs, _, terminated, truncated, _ = env.step(agent.act(obs, explore=False))
                if terminated or truncated:
                    obs, _ = env.reset()
                    break
            if window_closed():
                break
    finally:
        env.close()


def run(args: Args) -> dict[str, Any]:
    start = time.perf_counter()
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    (out / "models").mkdir(parents=True)
    results: dict[str, Any] = {"quick": args.quick, "seed": args.seed, "generated": time.strftime("%Y-%m-%d %H:%M:%S")}
    results["perception"] = perception(args, out)
    cnn_path = results["perception"].pop("cnn_path")
    results["driving"], agent = driving(args, out, cnn_path)
    results["bandit"] = bandit(args, out, cnn_path)
    results["seconds"] = time.perf_counter() - start
    (out / "report.json").write_text(json.dumps(results, indent=2))
    report = write_report(out, results)
    say(f"done in {results['seconds']:.0f} s: {report}")
    if args.render == "human":
        watch(agent, cnn_path, args.seed)
    return results


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym demo") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())
