"""The exact model of GridDriving's ``symbolic`` mode and value iteration on it.

The dynamics are deterministic given the state (the traffic is a function of the phase), so the model is
three ``(S, A)`` tables plus the start distribution; ``P[s][a] = [(1.0, s2, r, terminated)]`` as Gymnasium's
toy-text envs expose it is built from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perceptgym.envs.grid_driving.constants import NUM_DIGITS
from perceptgym.envs.grid_driving.core import NUM_ACTIONS, DrivingModel, make_trip


@dataclass(frozen=True)
class TabularModel:
    """``next_state``, ``reward``, ``terminated`` are (S, A); ``initial`` is the (S,) start distribution."""

    next_state: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    initial: np.ndarray

    @property
    def n_states(self) -> int:
        return self.next_state.shape[0]

    def transitions(self) -> dict[int, dict[int, list[tuple[float, int, float, bool]]]]:
        """The model as Gymnasium toy-text ``P``: ``P[s][a] = [(prob, next_state, reward, terminated)]``."""
        nxt, rew, term = self.next_state.tolist(), self.reward.tolist(), self.terminated.tolist()
        return {
            s: {a: [(1.0, nxt[s][a], rew[s][a], term[s][a])] for a in range(NUM_ACTIONS)} for s in range(self.n_states)
        }


def tabular_model(model: DrivingModel) -> TabularModel:
    """Builds the exact model by running ``model.transition`` from every state and action.

    Only for fixed stop numbers: with ``shuffle_stops`` the numbers are hidden episode data, so the
    symbolic state is not Markov in them and no exact model over it exists.
    """
    if model.params.shuffle_stops:
        raise ValueError("no exact model with shuffle_stops=True (the stop numbers are not part of the state)")
    numbers = model.params.gmap.stop_numbers
    n_s = model.n_states
    next_state = np.zeros((n_s, NUM_ACTIONS), dtype=np.int64)
    reward = np.zeros((n_s, NUM_ACTIONS), dtype=np.float64)
    terminated = np.zeros((n_s, NUM_ACTIONS), dtype=bool)
    for card in range(NUM_DIGITS):
        trip = make_trip(card, numbers)
        for base in range(model.n_base):
            s = model.index(base, card, 0)
            for a in range(NUM_ACTIONS):
                nxt, terms, term, _ = model.transition(base, a, trip)
                next_state[s, a] = model.index(nxt, card, 0)
                reward[s, a] = sum(terms)
                terminated[s, a] = term
    initial = np.zeros(n_s)
    for card in numbers:
        initial[[model.index(int(b), card, 0) for b in model.start_bases]] = 1.0
    initial /= initial.sum()
    return TabularModel(next_state, reward, terminated, initial)


def value_iteration(
    tm: TabularModel,
    gamma: float = 1.0,
    horizon: int | None = None,
    tol: float = 1e-10,
    max_iter: int = 100_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal state values ``V`` (S,) and action values ``Q`` (S, A).

    With ``horizon`` it computes the exact ``horizon``-step optimum (what an agent under a TimeLimit of that
    many steps can reach); without, it iterates the Bellman optimality operator until the values move less
    than ``tol`` (with ``gamma=1`` this needs a positive time cost so that every policy ends; Sutton & Barto
    section 4.4).
    """
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    if horizon is not None and horizon < 1:
        raise ValueError(f"horizon must be a positive number of steps, got {horizon}")
    v = np.zeros(tm.n_states)
    cont = gamma * ~tm.terminated
    n_iter = horizon if horizon is not None else max_iter
    for _ in range(n_iter):
        q = tm.reward + cont * v[tm.next_state]
        v_new = q.max(axis=1)
        delta = np.abs(v_new - v).max()
        v = v_new
        if horizon is None and delta < tol:
            return v, q
    if horizon is None:
        raise RuntimeError(f"value iteration did not converge in {max_iter} sweeps (last change {delta:.3g})")
    return v, q


def optimal_return(tm: TabularModel, gamma: float = 1.0, horizon: int | None = None) -> float:
    """The optimal expected return from the start distribution."""
    v, _ = value_iteration(tm, gamma=gamma, horizon=horizon)
    return float(tm.initial @ v)
