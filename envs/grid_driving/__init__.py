"""GridDriving: a small city whose stop signs and trip cards are handwritten digits."""

from perceptgym.envs.grid_driving.core import Action, DrivingModel, DrivingState, Params
from perceptgym.envs.grid_driving.env import GridDrivingEnv
from perceptgym.envs.grid_driving.maps import MAP_NAMES, GridMap, get_map
from perceptgym.envs.grid_driving.planning import TabularModel, optimal_return, tabular_model, value_iteration

__all__ = [
    "MAP_NAMES",
    "Action",
    "DrivingModel",
    "DrivingState",
    "GridDrivingEnv",
    "GridMap",
    "Params",
    "TabularModel",
    "get_map",
    "optimal_return",
    "tabular_model",
    "value_iteration",
]
