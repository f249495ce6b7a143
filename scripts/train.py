"""Train any agent on any env: ``python -m perceptgym.train --env Taxi-v4 --agent q_learning --seed 0``.

Hyperparameters come from ``agents/hyperparams/<agent>.yml`` (the ``default`` entry, then the env's own);
``--set key=value`` overrides them (values are parsed as YAML: ``--set n_episodes=200 alpha=0.5``). The run
goes to ``runs/{env}__{agent}__{seed}__{time}/``. Checkpoints are saved at the start, every 60 s
(``--set checkpoint_seconds=...``) and on Ctrl-C (at the end of the episode: press it twice to stop at once);
continue with ``--resume <run dir>`` (add ``--set n_episodes=...`` there to extend a finished run).

The env may be a Gymnasium id (``FrozenLake-v1``), one of ours (``perceptgym/GridDriving-v0``, also as
``perceptgym:perceptgym/GridDriving-v0``) or your own class as ``package.module:MyEnv``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from perceptgym._cli import parse_overrides, run_program
from perceptgym.agents.config import check_settings
from perceptgym.agents.registry import agent_names
from perceptgym.agents.training import HYPERPARAMS_DIR, import_plugins, train_run


@dataclass
class Args:
    env: str | None = None
    """env id: Gymnasium id, perceptgym/..., perceptgym:perceptgym/..., or module:Class"""
    agent: str | None = None
    """agent name (see --list-agents)"""
    seed: int = 0
    """the run's one seed (agent, env and evaluation streams are derived from it)"""
    set: tuple[str, ...] = ()
    """hyperparameter overrides as key=value (YAML values), e.g. --set n_episodes=100 alpha=0.5"""
    resume: str | None = None
    """continue the run in this directory (after Ctrl-C or a kill, or to extend it)"""
    runs_dir: str = "runs"
    """where new run directories go"""
    hyperparams_dir: str = str(HYPERPARAMS_DIR)
    """directory with <agent>.yml hyperparameter files"""
    progress: bool = True
    """show a progress bar"""
    tensorboard: bool = True
    """write TensorBoard events"""
    plugin: tuple[str, ...] = ()
    """modules to import first, e.g. one that registers your own agent with perceptgym.agents.registry.register_agent"""
    trust_checkpoint: bool = False
    """with --resume: allow an SB3 .zip checkpoint (written by older perceptgym); SB3 unpickles it, which runs any
    code the file holds, so use this only for a run you made yourself"""
    trust_plugins: bool = False
    """with --resume: import the modules the run's config.json names (plug-ins, env and wrapper modules other than
    perceptgym's and Gymnasium's); importing a module runs its code, so use this only for a run you trust"""
    list_agents: bool = False
    """print the registered agent names and exit"""

    def __post_init__(self) -> None:
        check_settings(self, at_least={"seed": 0})


def run(args: Args) -> int:
    if args.list_agents:
        import_plugins(args.plugin)
        print("\n".join(agent_names()))
        return 0
    if args.resume is None and (args.env is None or args.agent is None):
        raise ValueError("give --env and --agent (or --resume <run dir>)")
    result = train_run(
        args.env,
        args.agent,
        seed=args.seed,
        overrides=parse_overrides(args.set),
        runs_dir=args.runs_dir,
        resume=args.resume,
        progress=args.progress,
        tensorboard=args.tensorboard,
        hyperparams_dir=Path(args.hyperparams_dir),
        plugins=args.plugin,
        trust_checkpoint=args.trust_checkpoint,
        trust_plugins=args.trust_plugins,
    )
    print(f"run: {result.run_dir}")
    if result.interrupted:
        return 130
    print(f"trained {result.episodes} episodes, {result.global_step} steps")
    if result.eval is not None:
        print(f"greedy evaluation: {result.eval}")
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym train") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())
