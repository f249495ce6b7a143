"""DQN whose Q-function is one table per learned card slot: Q-learning's sample efficiency, reading learned from reward.

GridDriving's ``dict`` observation is a discrete base state (cell, heading, light phase) plus the trip card as a
28×28 image. The symbolic agents show what the task needs once the card is known: a table over the base states
(tabular Q-learning reaches the optimum in ~1.7M steps). Here a small CNN reads the card into a soft choice among
``n_slots`` slots (its own labels, learned from reward: which slot a digit goes to is whatever the TD error
rewards) and the Q-value is the slot-weighted sum of one Q-table per slot, plus one table shared by all cards
(what does not depend on the trip: the traffic)::

    Q(s, a) = sum_k p_k(card) T[k, base, a] + U[base, a]

Two parts make that learn at DQN's speed:

* The tables are updated as Q-learning updates a table, not by Adam: :class:`TableAdam` steps every parameter
  marked as a table by plain gradient descent, so an entry moves by ``table_alpha`` times each TD error of a
  transition that uses it (Adam, whose steps are the same size whatever the gradient, left the values at the
  start states at 0.44 against the optimum's 1.16 after 300k steps). The CNN and the slot layer keep Adam.
* The slot logits are batch-normalised (no affine part, then one learned temperature). Without it, whichever
  slot's table first fits the average target best took every card (all cards in one slot with probability
  1.00 after 140k steps, measured: the card-blind policy); normalised, no slot can rise for every card at once.

With γ 0.99 or 0.999 the greedy policy looped among near-tied actions; dqn.yml's GridDriving-v0 entry uses 0.95
(docs/results.md, "The top rung"). For maps with fixed stop numbers (the default): the base state then implies
the sign under the car, which this network does not read.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from perceptgym.agents.config import check_positive_int


class TableAdam(torch.optim.Adam):
    """Adam, except for parameters with ``is_q_table`` set: those take a plain gradient step of ``table_step``.

    ``table_step`` is the step at the initial learning rate; it follows the learning rate's schedule (SB3 sets
    every group's ``lr``: a linearly decaying rate decays the tables' step with it). With a loss that is the mean
    over a batch of ``B`` TD errors, ``table_step = alpha * B`` moves each table entry by ``alpha`` times the
    (Huber-clipped) TD error of every transition in the batch that uses it.
    """

    def __init__(self, params: Any, lr: float = 1e-3, table_step: float = 1.0, **kwargs: Any):
        params = list(params)
        if params and isinstance(params[0], dict):
            raise TypeError("TableAdam takes a flat list of parameters (it makes its own two groups)")
        tables = [p for p in params if getattr(p, "is_q_table", False)]
        others = [p for p in params if not getattr(p, "is_q_table", False)]
        groups = [{"params": others}]
        if tables:
            groups.append({"params": tables, "table_step": float(table_step), "table_lr0": float(lr)})
        super().__init__(groups, lr=lr, **kwargs)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            if "table_step" in group:
                for p in group["params"]:
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-group["table_step"] * group["lr"] / group["table_lr0"])
                        p.grad = None  # Adam below skips parameters without a gradient
        return super().step(closure)


class CardSlots(BaseFeaturesExtractor):
    """The card read into ``n_slots`` slot weights, plus a constant 1 for the shared table: ``(B, n_slots + 1)``.

    ``encoder``: the digits are read by a trained classifier's layers, frozen (the pretrained-encoder row; see
    ``perceptgym.agents.sb3.digit_network``), instead of by a SmallCnn learned from reward.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        n_slots: int = 16,
        digit_dim: int = 64,
        context_key: str = "card",
        shared_table: bool = True,
        encoder: str | None = None,
    ):
        from perceptgym.agents.sb3 import RowMemo, digit_network, is_image_like  # here: agents.sb3 imports this

        states = [k for k, s in observation_space.spaces.items() if isinstance(s, gym.spaces.Discrete)]
        if (
            context_key not in observation_space.spaces
            or not is_image_like(observation_space[context_key])
            or len(states) != 1
        ):
            raise ValueError(
                f"features_extractor='digit_table' needs a Dict with the image key {context_key!r} and one Discrete "
                f"state key (GridDriving's 'dict' observation), got {observation_space}"
            )
        check_positive_int("n_slots", n_slots)
        super().__init__(observation_space, features_dim=n_slots + int(shared_table))
        self.shared_table = shared_table
        self.context_key, self.state_key = context_key, states[0]
        self.n_states = int(observation_space[self.state_key].n)
        self.digits, digit_dim = digit_network(observation_space[context_key], digit_dim, encoder)
        self.slots = nn.Linear(digit_dim, n_slots)
        self.norm = nn.BatchNorm1d(n_slots, affine=False)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self._memo = RowMemo()

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.norm(self.slots(self._memo.encode(self.digits, observations[self.context_key])))
        slots = torch.softmax(logits * self.log_temperature.exp(), dim=1)
        return torch.cat([slots, torch.ones_like(slots[:, :1])], dim=1) if self.shared_table else slots


class SlotTableQNetwork(QNetwork):
    """``Q(s, a) = sum_k w_k T[base, k, a]`` over the extractor's slot weights ``w`` (the last one the shared table)."""

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        action_space: gym.spaces.Discrete,
        features_extractor: CardSlots,
        features_dim: int,
        **kwargs: Any,
    ):
        super().__init__(observation_space, action_space, features_extractor, features_dim, net_arch=[], **kwargs)
        del self.q_net  # SB3's linear head: the tables replace it
        self.table = nn.Parameter(torch.zeros(features_extractor.n_states, features_dim, int(action_space.n)))
        self.table.is_q_table = True

    online: SlotTableQNetwork | None = None
    """set on a target network for double Q-learning (:class:`SlotTableDQNPolicy`)"""

    def forward(self, obs: Any) -> torch.Tensor:
        if self.online is not None:  # double Q-learning: the online network picks the action, this one values it
            q = self.q_values(obs)
            best = self.online(obs).argmax(1, keepdim=True)
            return q.gather(1, best).expand_as(q)
        return self.q_values(obs)

    def q_values(self, obs: Any) -> torch.Tensor:
        # the raw observation: SmallCnn scales the uint8 card itself, and the state is read as an index (SB3's
        # preprocess_obs would one-hot encode it only for this to take the argmax back)
        extractor = self.features_extractor
        weights = extractor({extractor.context_key: obs[extractor.context_key]})
        base = obs[extractor.state_key].long().reshape(-1)
        return torch.einsum("bk,bka->ba", weights, self.table[base])


class SlotTableDQNPolicy(DQNPolicy):
    """SB3's DQN policy with :class:`SlotTableQNetwork` (and its target copy) as the Q-network.

    ``double_q``: SB3's DQN bootstraps from ``max_a Q_target(s', a)``; with it the target network returns, for
    every action, its value of the action the online network prefers (van Hasselt et al. 2016), so that max is
    double Q-learning's target. The target network is used for nothing else.
    """

    def __init__(self, *args: Any, double_q: bool = False, **kwargs: Any):
        self.double_q = double_q
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        if self.double_q:
            object.__setattr__(self.q_net_target, "online", self.q_net)  # a reference, not a submodule

    def make_q_net(self) -> SlotTableQNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        net_args.pop("net_arch", None)
        return SlotTableQNetwork(**net_args).to(self.device)
