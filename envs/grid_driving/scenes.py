"""Scripted scenes: a reset and a few actions that end in a chosen event (collision, red light, stops).

For pictures of the viewer (``perceptgym pictures``) and for tests of how events are drawn. A scene is found
on the env's own map and traffic by trying starts through the public env API (``reset(options=...)`` and
``step``) on a symbolic twin of the env, so it needs no digits and no reader; it is then played on the env
itself. The search order is fixed, so the same env always gives the same scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perceptgym.envs.grid_driving.constants import DIR_VECTORS, NUM_HEADINGS
from perceptgym.envs.grid_driving.core import Action
from perceptgym.envs.grid_driving.env import GridDrivingEnv

EVENTS = ("collision", "red_light", "wrong_stop", "arrived")


@dataclass(frozen=True)
class Scene:
    """``reset(options=options)`` then ``actions``: the last action causes ``event``, none before it does."""

    event: str
    options: dict[str, Any]
    actions: tuple[int, ...]


def _twin(env: GridDrivingEnv) -> GridDrivingEnv:
    p = env.unwrapped.params
    return GridDrivingEnv(
        map=list(p.gmap.rows),
        n_cars=p.n_cars,
        green_steps=p.green_steps,
        max_period=p.max_period,
        route_seed=p.route_seed,
        red_light=p.red_light or -1.0,  # any nonzero weight: the term is how a red light is seen
    )


def _outcome(twin: GridDrivingEnv, options: dict[str, Any], actions: tuple[int, ...]) -> list[str] | None:
    """The event of each step ("" for none), or None when the start is not allowed (a car is there)."""
    try:
        twin.reset(seed=0, options=options)
    except ValueError:
        return None
    events = []
    for a in actions:
        _, _, terminated, _, info = twin.step(a)
        event = info.get("event", "") if terminated else ""
        events.append(event or ("red_light" if info["reward_terms"]["red_light"] else ""))
        if terminated:
            break
    return events


def find_scene(env: GridDrivingEnv, event: str, lead: int = 2) -> Scene:
    """A scene on ``env``'s map that ends in ``event``, preceded by up to ``lead`` uneventful steps forward."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}: use one of {EVENTS}")
    twin = _twin(env)
    gmap = twin.params.gmap
    numbers = gmap.stop_numbers
    if not numbers:
        raise ValueError("the map has no stops")
    stops = {(r, c): k for k, (r, c, _) in enumerate(gmap.stops)}
    period = twin.model.period  # the traffic's period: every phase of the clock
    best: Scene | None = None
    best_score: tuple[bool, int] = (False, 0)
    for r, c in gmap.road_cells:
        stop = stops.get((r, c), -1)
        if event in ("wrong_stop", "arrived") and stop < 0:
            continue
        for heading in range(NUM_HEADINGS):
            for phase in range(period):
                if event == "arrived":
                    card, actions = numbers[stop], (Action.STOP,)
                elif event == "wrong_stop":
                    others = [n for n in numbers if n != numbers[stop]]
                    if not others:
                        continue
                    card, actions = others[0], (Action.STOP,)
                else:
                    card, actions = numbers[0], (Action.FORWARD,)
                options = {"start": (r, c, heading), "phase": phase, "card": card}
                if _outcome(twin, options, actions) == [event]:
                    scene = _lead_in(twin, Scene(event, options, tuple(int(a) for a in actions)), lead)
                    # The best picture: a collision on a straight road (in a corner the two cars hide each
                    # other), then the longest lead-in.
                    ahead = (r + DIR_VECTORS[heading][0], c + DIR_VECTORS[heading][1])
                    site = ahead if gmap.road[ahead] else (r, c)
                    score = (event != "collision" or _straight(gmap.road, *site), len(scene.actions))
                    if best is None or score > best_score:
                        best, best_score = scene, score
                    if score == (True, lead + 1):
                        return scene
    if best is None:
        raise ValueError(f"no {event} scene on map {gmap.name!r} with this traffic")
    return best


def _straight(road, r: int, c: int) -> bool:
    """A road cell with road on exactly two opposite sides."""
    sides = [bool(road[r - 1, c]), bool(road[r + 1, c]), bool(road[r, c - 1]), bool(road[r, c + 1])]
    return sides in ([True, True, False, False], [False, False, True, True])


def _lead_in(twin: GridDrivingEnv, scene: Scene, lead: int) -> Scene:
    """Backs the scene up by driving FORWARD into its start from behind, as long as nothing happens on the way."""
    period = twin.model.period
    for _ in range(lead):
        r, c, heading = scene.options["start"]
        dr, dc = DIR_VECTORS[heading]
        back = (r - dr, c - dc)
        if not twin.params.gmap.road[back]:
            break
        options = {**scene.options, "start": (*back, heading), "phase": (scene.options["phase"] - 1) % period}
        actions = (int(Action.FORWARD), *scene.actions)
        if _outcome(twin, options, actions) != [""] * (len(actions) - 1) + [scene.event]:
            break
        scene = Scene(scene.event, options, actions)
    return scene


def play_scene(env, scene: Scene, seed: int = 0) -> dict[str, Any]:
    """Plays ``scene`` on ``env`` (any wrapper of a GridDrivingEnv with its map); returns the last step's info."""
    env.reset(seed=seed, options=scene.options)
    info: dict[str, Any] = {}
    for a in scene.actions:
        _, _, terminated, truncated, info = env.step(a)
        if terminated or truncated:
            break
    return info
