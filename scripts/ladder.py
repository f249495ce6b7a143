"""The perception ladder: the same driving task at every rung, from true symbols to raw pixels.

    perceptgym ladder                       # 3 seeds; hours on 2 cores (the pixels rungs are most of it)
    perceptgym ladder --rungs "pixels (PPO)" --seeds 0      # one rung, one seed
    perceptgym ladder --quick               # the protocol at CI budgets (3 seeds, about a minute)
    perceptgym ladder --seeds 0 --episodes 20000 --pixels-steps 20000 --eval-episodes 100   # a quick look
    perceptgym ladder --sweep               # the rungs x seeds as sweep trials on a local Ray (perceptgym[distributed])

Rungs: ``symbolic`` (Q-learning on the true state), ``perceived (MLP)`` and ``perceived (CNN)`` (Q-learning
on the state as read by the tutorial MLP or the shipped CNN), ``perceived (CNN), GAN digits`` (the CNN agents
on GAN-drawn handwriting), ``pixels (PPO)`` (PPO learning to read the card and sign images from reward while
it learns to drive), ``pixels (DQN, slot tables)`` (DQN reading the card into learned slots, one Q-table per
slot), ``pixels (PPO), pretrained CNN encoder`` and ``pixels (DQN), pretrained CNN encoder`` (those agents
reading with the shipped CNN's layers, frozen) and ``top-down pixels (PPO)`` (the PPO recipe on the full
raster, at a budget of minutes).
The recipes are the ``perceptgym/GridDriving-v0`` entries of q_learning.yml, ppo.yml and dqn.yml in agents/hyperparams/
with each rung's overrides; the flags change only the budgets; ``--rungs`` picks some. Training uses MNIST
training digits; evaluation uses MNIST test digits (GAN digits on rung 4). Every rung reports its normalised score
(0 = uniform-random policy, 1 = value iteration's greedy policy, both on the rung's evaluation episodes),
success, wrong-stop and collision rates, return, training env steps and wall time as the mean over seeds
[95% bootstrap interval]. Writes ``ladder.json`` (per-seed numbers and the ``protocol`` summary),
``ladder.md`` (the table), ``ladder.png`` and the agents' run directories (``runs/<rung>/``) into ``--out``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from perceptgym._cli import run_program
from perceptgym.agents.experiments.ladder import LadderSettings, markdown_table, run_ladder

Args = LadderSettings


def run(args: Args) -> None:
    summary = run_ladder(args, log=lambda line: print(line, flush=True))
    print("\n" + markdown_table(summary))


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym ladder") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())
