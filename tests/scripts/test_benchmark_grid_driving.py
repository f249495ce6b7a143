"""perceptgym bench grid-driving: the vector section runs and reports every contender; bad settings fail clearly."""

from __future__ import annotations

from perceptgym import benchmark_grid_driving as bench


def test_vector_section_runs_short(capsys, tmp_path):
    args = bench.Args(
        short=True,
        sections=("vector",),
        vector_sizes=(4,),
        vector_modes=("symbolic", "dict"),
        pixels_envs=4,
        out=tmp_path / "bench.json",
    )
    results = bench.run(args)
    vector = results["vector"]
    assert set(vector["native"]) == {"symbolic", "dict"} and set(vector["sync"]) == {"symbolic", "dict"}
    assert vector["native info=final"]["symbolic"][4] > 0 and vector["CartPoleVectorEnv"][""][4] > 0
    assert set(vector["raw"]) == {"symbolic", "dict"}
    out = capsys.readouterr().out
    assert "x CartPole" in out and "x sync" in out and "x single raw" in out
    assert (tmp_path / "bench.json").is_file()


def test_bad_settings_are_one_error_line(capsys):
    assert bench.main(["--sections", "vector", "nope"]) == 2
    assert "unknown sections ['nope']" in capsys.readouterr().err
    assert bench.main(["--vector-sizes", "0"]) == 2
