"""Per-arm Bayesian ridge regression with rank-1 (Sherman–Morrison) updates (the linear agents' model)."""

from __future__ import annotations

import numpy as np

from perceptgym.agents.bandit.base import restore_arrays


class RidgeArms:
    """One ridge regression per arm: ``A_a = lam I + sum x x^T``, ``b_a = sum r x``, ``theta_a = A_a^-1 b_a``.

    ``A_a^-1`` is kept directly and updated in O(d^2) per observation with the Sherman–Morrison formula
    ``(A + x x^T)^-1 = A^-1 - (A^-1 x)(A^-1 x)^T / (1 + x^T A^-1 x)`` (Li et al. 2010, LinUCB, Alg. 1 needs
    ``A_a^-1`` every round), instead of solving a d x d system.
    """

    def __init__(self, n_arms: int, dim: int, lam: float = 1.0) -> None:
        if lam <= 0:
            raise ValueError(f"ridge lam must be > 0, got {lam!r}")
        self.lam = lam
        self.a_inv = np.repeat(np.eye(dim)[None] / lam, n_arms, axis=0)
        self.b = np.zeros((n_arms, dim))
        self.theta = np.zeros((n_arms, dim))
        self.counts = np.zeros(n_arms, dtype=np.int64)

    def update(self, arm: int, x: np.ndarray, reward: float) -> None:
        a_inv = self.a_inv[arm]
        u = a_inv @ x
        a_inv -= np.outer(u, u) / (1.0 + x @ u)
        self.b[arm] += reward * x
        self.theta[arm] = a_inv @ self.b[arm]
        self.counts[arm] += 1

    def mean(self, x: np.ndarray) -> np.ndarray:
        """Predicted reward ``theta_a . x`` of every arm."""
        return self.theta @ x

    def variance(self, x: np.ndarray) -> np.ndarray:
        """``x^T A_a^-1 x`` for every arm (posterior variance of ``theta_a . x``, in noise units)."""
        return np.maximum(np.einsum("j,kjl,l->k", x, self.a_inv, x, optimize=True), 0.0)

    def state(self) -> dict[str, np.ndarray]:
        return {"a_inv": self.a_inv, "b": self.b, "theta": self.theta, "counts": self.counts}

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        restore_arrays(self, arrays, ("a_inv", "b", "theta", "counts"))
