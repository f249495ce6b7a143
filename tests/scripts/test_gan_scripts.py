"""scripts/train_gan.py and scripts/evaluate_gan.py with tiny networks and budgets (real MNIST from the cache)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from perceptgym import evaluate_gan, train_gan
from perceptgym.supervised.classifier import ClassifierConfig, DigitClassifier, save_classifier
from perceptgym.supervised.gan import GanConfig, GanTrainConfig, load_generator

ROOT = Path(__file__).resolve().parents[2]
TINY = GanConfig(z_dim=8, embed_dim=4, g_channels=16, g_channels_14=8, d_channels=8)


def _train(steps: int) -> GanTrainConfig:
    return GanTrainConfig(steps=steps, batch_size=16, bn_batches=2)


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory) -> Path:
    return save_classifier(
        tmp_path_factory.mktemp("clf") / "tiny.pt", DigitClassifier(ClassifierConfig(channels=(4, 8), hidden=12))
    )


def test_train_scores_exports_and_resumes(tmp_path, tiny_classifier, capsys):
    out, export = tmp_path / "run", tmp_path / "shipped" / "gan.pt"
    args = train_gan.Args(
        out=out,
        model=TINY,
        train=_train(3),
        sample_every=2,
        classifier=tiny_classifier,
        export=export,
        per_class=5,
        n_real=300,
        progress=False,
    )
    metrics = train_gan.run(args)
    assert metrics["finished"] and metrics["step"] == 3
    assert 0 <= metrics["label_accuracy"] <= 1 and metrics["frechet"] > 0 and metrics["frechet_floor"] > 0
    for name in (
        "config.json",
        "gan.pt",
        "generator.pt",
        "grid.png",
        "metrics.json",
        "samples/step_000002.png",
        "samples/step_000003.png",
    ):
        assert (out / name).exists(), name
    shipped = load_generator(export)
    assert shipped.step == 3 and shipped.metrics["frechet"] == metrics["frechet"]
    assert json.loads((out / "metrics.json").read_text())["step"] == 3
    assert torch.load(out / "gan.pt", weights_only=True)["metrics"]["frechet"] == metrics["frechet"]
    # Rerunning with a larger budget resumes from the saved step.
    args.train = _train(5)
    assert train_gan.run(args)["step"] == 5
    assert "resuming from" in capsys.readouterr().out


def test_score_every_scores_as_the_final_score_does_without_changing_training(tmp_path, tiny_classifier):
    def args(out: Path, score_every: int) -> train_gan.Args:
        return train_gan.Args(
            out=out,
            model=TINY,
            train=_train(4),
            sample_every=0,
            classifier=tiny_classifier,
            per_class=5,
            n_real=300,
            score_every=score_every,
            progress=False,
        )

    scored = train_gan.run(args(tmp_path / "scored", 2))
    plain = train_gan.run(args(tmp_path / "plain", 0))
    rows = json.loads((tmp_path / "scored" / "scores.json").read_text())
    assert [r["step"] for r in rows] == [2, 4]
    # the row of the last step is the final score of the exported generator, and scoring left training alone
    assert rows[-1]["frechet"] == scored["frechet"] == plain["frechet"]
    assert rows[-1]["label_accuracy"] == scored["label_accuracy"]
    assert rows[0]["frechet"] != rows[1]["frechet"]
    assert not (tmp_path / "plain" / "scores.json").exists()
    a = load_generator(tmp_path / "scored" / "generator.pt").generator.state_dict()
    b = load_generator(tmp_path / "plain" / "generator.pt").generator.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_time_budget_leaves_a_resumable_run(tmp_path, tiny_classifier, capsys):
    args = train_gan.Args(
        out=tmp_path,
        model=TINY,
        train=_train(50),
        minutes=1e-9,
        classifier=tiny_classifier,
        sample_every=0,
        n_real=300,
        progress=False,
    )
    result = train_gan.run(args)
    assert not result["finished"] and result["step"] == 1
    assert (tmp_path / "gan.pt").exists() and load_generator(tmp_path / "generator.pt").step == 1
    assert "run the same command again" in capsys.readouterr().out


def test_evaluate_prints_scores_and_writes_a_grid(tmp_path, tiny_classifier, capsys):
    train_gan.run(
        train_gan.Args(
            out=tmp_path / "run",
            model=TINY,
            train=_train(2),
            sample_every=0,
            classifier=tmp_path / "none.pt",
            progress=False,
        )
    )
    result = evaluate_gan.run(
        evaluate_gan.Args(
            gan=tmp_path / "run" / "generator.pt",
            classifier=tiny_classifier,
            out=tmp_path / "eval",
            per_class=5,
            n_real=300,
            benchmark=2000,
        )
    )
    text = capsys.readouterr().out
    assert "scores skipped" in text and "label accuracy" in text and "floor" in text
    assert (tmp_path / "eval" / "grid.png").exists() and result["source_digits_per_s"] > 0
    assert json.loads((tmp_path / "eval" / "scores.json").read_text())["frechet"] == result["frechet"]
    with pytest.raises(ValueError, match="per_class"):
        evaluate_gan.run(
            evaluate_gan.Args(gan=tmp_path / "run" / "generator.pt", classifier=tiny_classifier, per_class=1)
        )


@pytest.mark.slow
def test_train_script_runs_as_a_command(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "perceptgym.train_gan",
        "--out",
        str(tmp_path),
        "--train.steps",
        "2",
        "--train.batch-size",
        "16",
        "--train.bn-batches",
        "1",
        "--model.g-channels",
        "16",
        "--model.g-channels-14",
        "8",
        "--model.d-channels",
        "8",
        "--classifier",
        str(tmp_path / "none.pt"),
        "--no-progress",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "generator.pt").exists() and "step 2/2" in done.stdout
