"""Experiments as library code: what the demo, the ladder and the bandit sweep do, one function each.

Each experiment is a small settings dataclass and a function; the programs under ``perceptgym`` only parse
flags into the settings, call the function and print. Hyperparameters come from the YAML files in
``perceptgym/agents/hyperparams/`` (an experiment may change the budget, never the recipe), and every agent
an experiment trains is an ordinary run directory of :func:`perceptgym.agents.training.train_run`, so
``perceptgym evaluate RUN_DIR`` and ``perceptgym watch RUN_DIR`` open it.

* :mod:`~perceptgym.agents.experiments.driving`: GridDriving runs from the YAML recipe, held-out evaluation.
* :mod:`~perceptgym.agents.experiments.ladder`: the perception ladder (``perceptgym ladder``).
* :mod:`~perceptgym.agents.experiments.bandit_sweep`: bandit agents × seeds on DigitBandit (``perceptgym bandit``).
* :mod:`~perceptgym.agents.experiments.demo`: the whole pipeline and its report (``perceptgym demo``).
* :mod:`~perceptgym.agents.experiments.curves`: learning curves from run directories (``perceptgym plot``).
* :mod:`~perceptgym.agents.experiments.targets`: exact policy values and the tabular learning targets.
* :mod:`~perceptgym.agents.experiments.speed`: training-loop speed against a random agent.

The submodules are imported on demand, so importing this package pulls in neither torch nor matplotlib.
"""
