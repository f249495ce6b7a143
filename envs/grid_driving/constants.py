"""Constants of the GridDriving world: map characters, headings, digits, default weights and colours."""

from __future__ import annotations

# Map characters (maps.py): anything else is an error.
BUILDING = "#"
ROAD = "."
STOP_CHARS = "0123456789"  # a road cell with a stop whose sign shows this digit

# Headings, clockwise from north, as (d_row, d_col).
NORTH, EAST, SOUTH, WEST = 0, 1, 2, 3
HEADING_NAMES = ("north", "east", "south", "west")
HEADING_ARROWS = "^>v<"
DIR_VECTORS = ((-1, 0), (0, 1), (1, 0), (0, -1))
NUM_HEADINGS = 4

# Traffic-light axes: which direction of travel has green.
AXIS_NS, AXIS_EW = 0, 1

NUM_DIGITS = 10
#: The symbolic "sign" component when the current cell has no stop (only used with shuffled stops).
NO_SIGN = 10

OBS_MODES = ("symbolic", "perceived", "pixels", "dict")

# Default reward weights; each is the reward of one event, in reward units per event.
DEFAULT_TIME_COST = 0.01  # [reward/step] subtracted every step
DEFAULT_PROGRESS = 0.0  # [reward/cell] per cell of road distance gained towards the card's stop
DEFAULT_ARRIVAL = 1.0  # [reward] stopping at the stop whose number matches the card
DEFAULT_WRONG_STOP = -1.0  # [reward] stopping at any other stop (the trip ends)
DEFAULT_COLLISION = -1.0  # [reward] hitting another car (the episode ends)
DEFAULT_RED_LIGHT = -0.2  # [reward] driving into an intersection against its red light

#: Names of the reward terms in ``info["reward_terms"]``, in a fixed order.
REWARD_TERMS = ("time", "progress", "arrival", "wrong_stop", "collision", "red_light")

# Pixel observation (numpy raster, raster.py).
PIX_TILE = 14  # [px] per map cell; the 28x28 digits are shown at half size on stop tiles
DIGIT_PX = 28  # [px] side of a digit image

# Colours (RGB) shared by the numpy raster and the pygame renderer.
COLOR_BUILDING = (46, 52, 64)
COLOR_GRASS = (70, 110, 70)
COLOR_ROAD = (120, 120, 126)
COLOR_LANE = (200, 200, 170)
COLOR_STOP = (214, 170, 40)
COLOR_SIGN_BG = (250, 250, 245)
COLOR_INK = (20, 20, 30)
COLOR_EGO = (220, 50, 47)
COLOR_CAR = (38, 139, 210)
COLOR_GREEN = (60, 200, 80)
COLOR_RED = (230, 40, 40)
COLOR_PANEL = (30, 33, 40)
COLOR_TEXT = (230, 230, 230)
COLOR_GOOD = (120, 220, 120)
COLOR_BAD = (240, 110, 100)
COLOR_CARD_BG = (250, 245, 225)
