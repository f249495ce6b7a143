"""perceptgym: reinforcement-learning environments and agents in which the agent has to perceive what it acts on.

``import perceptgym`` registers the environments with Gymnasium (``gym.make("perceptgym/GridDriving-v0")``); in a
fresh process, ``gym.make("perceptgym:perceptgym/GridDriving-v0")`` imports and registers first. The library lives
in :mod:`perceptgym.envs`, :mod:`perceptgym.agents` and :mod:`perceptgym.supervised`; the modules beside them are
the programs behind the ``perceptgym`` command (``perceptgym --help``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from perceptgym import envs as envs  # registers the envs (numpy and gymnasium only: no torch, no pygame)

try:
    __version__ = version("perceptgym")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
