"""The one mixed-radix code (MixedRadix): properties over random spaces, checked with hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import data_equivalence
from hypothesis import given, settings
from hypothesis import strategies as st

from perceptgym.envs.wrappers import MixedRadix


@st.composite
def discrete_spaces(draw) -> spaces.Space:
    """MultiDiscrete (1-D and 2-D), Tuple and Dict of Discrete, with sizes 1..9 and starts -3..3."""
    kind = draw(st.sampled_from(["multi", "multi-2d", "tuple", "dict"]))
    k = draw(st.integers(1, 5)) * (2 if kind == "multi-2d" else 1)
    sizes = draw(st.lists(st.integers(1, 9), min_size=k, max_size=k))
    starts = draw(st.lists(st.integers(-3, 3), min_size=k, max_size=k))
    if kind.startswith("multi"):
        shape = (2, k // 2) if kind == "multi-2d" else (k,)
        return spaces.MultiDiscrete(np.reshape(sizes, shape), start=np.reshape(starts, shape))
    subs = [spaces.Discrete(n, start=s) for n, s in zip(sizes, starts, strict=True)]
    if kind == "tuple":
        return spaces.Tuple(subs)
    names = draw(st.lists(st.text("abcxyz", min_size=1, max_size=3), min_size=k, max_size=k, unique=True))
    return spaces.Dict(dict(zip(names, subs, strict=True)))


def components(space: spaces.Space, x) -> tuple[list[int], list[int], list[int]]:
    """(values, sizes, starts) of an element, in the order the code documents (C order, Dict key order)."""
    if isinstance(space, spaces.MultiDiscrete):
        return list(np.ravel(x)), list(space.nvec.ravel()), list(space.start.ravel())
    subs = list(space.spaces.values()) if isinstance(space, spaces.Dict) else list(space.spaces)
    values = [x[key] for key in space.spaces] if isinstance(space, spaces.Dict) else list(x)
    return values, [int(s.n) for s in subs], [int(s.start) for s in subs]


@settings(max_examples=200, deadline=None)
@given(space=discrete_spaces(), data=st.data())
def test_decode_then_encode_is_the_identity_and_decodes_into_the_space(space, data):
    code = MixedRadix(space)
    assert code.n == int(np.prod(components(space, space.sample())[1]))
    i = data.draw(st.integers(0, code.n - 1))
    x = code.decode(i)
    assert space.contains(x)
    assert code.encode(x) == i


@settings(max_examples=200, deadline=None)
@given(space=discrete_spaces(), seed=st.integers(0, 2**32 - 1))
def test_encode_is_the_first_component_most_significant_code(space, seed):
    """Against numpy's own mixed-radix code (ravel_multi_index, C order), and decode inverts it."""
    space.seed(seed)
    x = space.sample()
    code = MixedRadix(space)
    values, sizes, starts = components(space, x)
    expected = int(np.ravel_multi_index([v - s for v, s in zip(values, starts, strict=True)], sizes))
    assert code.encode(x) == expected
    assert 0 <= expected < code.n
    assert data_equivalence(code.decode(expected), x)


@settings(max_examples=100, deadline=None)
@given(space=discrete_spaces(), data=st.data())
def test_out_of_range_components_and_indices_are_refused(space, data):
    code = MixedRadix(space)
    x = code.decode(0)
    values, sizes, starts = components(space, x)
    j = data.draw(st.integers(0, len(values) - 1))
    bad = data.draw(st.sampled_from([starts[j] - 1, starts[j] + sizes[j]]))
    if isinstance(space, spaces.MultiDiscrete):
        x = x.copy()
        x.reshape(-1)[j] = bad
    elif isinstance(space, spaces.Dict):
        x = {**x, list(space.spaces)[j]: bad}
    else:
        x = tuple(bad if i == j else v for i, v in enumerate(x))
    with pytest.raises(ValueError, match=f"component {j} = {bad} out of range"):
        code.encode(x)
    for index in (-1, code.n):
        with pytest.raises(ValueError, match="out of range"):
            code.decode(index)


def test_small_spaces_are_numbered_exactly_once():
    space = spaces.Tuple([spaces.Discrete(3, start=1), spaces.Discrete(2), spaces.Discrete(4, start=-2)])
    code = MixedRadix(space)
    assert sorted(code.encode(x) for x in np.ndindex(3, 2, 4) for x in [(x[0] + 1, x[1], x[2] - 2)]) == list(range(24))


def test_wrong_elements_and_spaces_are_refused():
    code = MixedRadix(spaces.Dict({"a": spaces.Discrete(2), "b": spaces.Discrete(3)}))
    with pytest.raises(ValueError, match=r"keys \['a', 'b'\]"):
        code.encode({"a": 1})
    with pytest.raises(ValueError, match="integers"):
        MixedRadix(spaces.Tuple([spaces.Discrete(2)])).encode((0.5,))
    with pytest.raises(ValueError, match="2 components"):
        MixedRadix(spaces.Tuple([spaces.Discrete(2)] * 2)).encode((1,))
    with pytest.raises(ValueError, match="too many to number"):
        MixedRadix(spaces.MultiDiscrete([2**40, 2**40]))
    with pytest.raises(ValueError, match="needs a MultiDiscrete"):
        MixedRadix(spaces.Tuple([spaces.Discrete(2), spaces.Box(0, 1)]))
