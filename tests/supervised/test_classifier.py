"""Classifier: shapes, learning, determinism, checkpoints, resume after Ctrl-C, the reader and MNIST sources."""

from __future__ import annotations

import dataclasses
import os
import signal

import numpy as np
import pytest
import torch

from perceptgym.supervised import classifier as C
from perceptgym.supervised.checkpoint import CheckpointError, save_checkpoint
from perceptgym.supervised.perception import SHIPPED, DigitReader, MnistSource


@pytest.fixture(scope="module")
def mnist():
    from perceptgym.supervised.data import load_mnist

    return load_mnist()


@pytest.mark.parametrize("arch", C.ARCHS)
def test_shapes(arch):
    model = C.DigitClassifier(C.ClassifierConfig(arch=arch))
    x = C.preprocess_for(model.cfg)(torch.zeros(5, 28, 28, dtype=torch.uint8))
    assert x.shape == (5, 1, 28, 28)
    assert model(x).shape == (5, 10)
    assert model.features(x).shape == (5, model.cfg.hidden)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="arch"):
        C.ClassifierConfig(arch="resnet")
    with pytest.raises(ValueError, match="schedule"):
        C.TrainConfig(schedule="cosine")
    with pytest.raises(ValueError, match="warmup"):
        C.TrainConfig(warmup=1.0)
    with pytest.raises(ValueError, match="ema"):
        C.TrainConfig(ema=1.0)
    with pytest.raises(ValueError, match="recipe"):
        C.recipe("nope")


def test_one_optimiser_step_lowers_the_loss():
    torch.manual_seed(0)
    model = C.DigitClassifier(C.ClassifierConfig(dropout=0.0))
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    before.backward()
    opt.step()
    assert torch.nn.functional.cross_entropy(model(x), y) < before


def small_run(mnist, seed: int = 0):
    cfg = dataclasses.replace(C.RECIPES["cnn"][1], epochs=2, batch_size=64, seed=seed)
    return C.train(
        C.ClassifierConfig(),
        cfg,
        mnist.train_images[:8000],
        mnist.train_labels[:8000],
        mnist.test_images[:2000],
        mnist.test_labels[:2000],
    )


def test_short_training_on_real_mnist_beats_90_percent_and_is_deterministic(mnist):
    a, b = small_run(mnist), small_run(mnist)
    assert a.metrics.accuracy > 0.90
    for (ka, va), (_, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka
    other = small_run(mnist, seed=1)
    assert not all(
        torch.equal(va, vc)
        for va, vc in zip(a.model.state_dict().values(), other.model.state_dict().values(), strict=True)
    )


def test_ctrl_c_saves_and_resume_matches_an_uninterrupted_run(mnist, tmp_path):
    resume = tmp_path / "resume.pt"
    calls = []

    def interrupt_once(row):  # the handler is installed by train(): this is a real SIGINT
        calls.append(row)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    cfg = dataclasses.replace(C.RECIPES["mlp-fast"][1], epochs=2, ema=0.9)  # the average is resumed too
    args = (
        C.ClassifierConfig(arch="mlp"),
        cfg,
        mnist.train_images[:6000],
        mnist.train_labels[:6000],
        mnist.test_images[:500],
        mnist.test_labels[:500],
    )
    with pytest.raises(KeyboardInterrupt):
        C.train(*args, eval_every=4, on_eval=interrupt_once, resume_path=resume)
    assert resume.exists()
    resumed = C.train(*args, eval_every=4, resume_path=resume)
    assert not resume.exists()
    full = C.train(*args, eval_every=4)
    for (k, va), (_, vb) in zip(resumed.model.state_dict().items(), full.model.state_dict().items(), strict=True):
        assert torch.equal(va, vb), k
    assert [r["step"] for r in resumed.history] == [r["step"] for r in full.history]


def test_weight_average_follows_the_weights_with_bias_correction():
    model = torch.nn.Linear(2, 1)
    averaged = C._Averaged(model, 0.99)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.fill_(1.0)
    averaged.update(0)  # decay min(0.99, 1/10): the first steps move the average most of the way
    np.testing.assert_allclose(averaged.model.weight.numpy(), (0.1 * start + 0.9).numpy(), rtol=1e-6)
    for step in range(1, 2000):
        averaged.update(step)
    np.testing.assert_allclose(averaged.model.weight.numpy(), 1.0, rtol=1e-6)
    assert not averaged.model.weight.requires_grad
    assert C._Averaged(model, 0.0).model is model  # 0: no average, the weights themselves


def test_checkpoint_round_trip_gives_identical_logits(tmp_path):
    model = C.DigitClassifier(C.ClassifierConfig()).eval()
    path = C.save_classifier(tmp_path / "m.pt", model, train_args={"note": "test"})
    loaded = C.load_classifier(path)
    x = C.preprocess_for(model.cfg)(torch.randint(0, 256, (8, 28, 28), dtype=torch.uint8))
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))
    assert loaded.train_args == {"note": "test"}
    assert loaded.preprocess == C.MNIST_STANDARDISE


def test_wrong_corrupt_and_future_checkpoints_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        C.load_classifier(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="not a readable"):
        C.load_classifier(tmp_path / "junk.pt")
    good = C.save_classifier(tmp_path / "good.pt", C.DigitClassifier(C.ClassifierConfig()))
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="not a readable"):
        C.load_classifier(tmp_path / "truncated.pt")
    save_checkpoint(tmp_path / "gan.pt", "mnist_gan", 1, {})
    with pytest.raises(CheckpointError, match="expected 'mnist_classifier'"):
        C.load_classifier(tmp_path / "gan.pt")
    save_checkpoint(tmp_path / "future.pt", C.CHECKPOINT_FORMAT, C.CHECKPOINT_VERSION + 1, {})
    with pytest.raises(CheckpointError, match="newer than this perceptgym"):
        C.load_classifier(tmp_path / "future.pt")
    torch.save(
        {
            "format": C.CHECKPOINT_FORMAT,
            "version": 1,
            "model_args": {"arch": "cnn", "channels": [3, 3]},
            "state_dict": {},
            "preprocess": {},
        },
        tmp_path / "inconsistent.pt",
    )
    with pytest.raises(CheckpointError, match="damaged or inconsistent"):
        C.load_classifier(tmp_path / "inconsistent.pt")


def test_reader_matches_the_model_and_checks_its_input(mnist):
    reader = DigitReader("cnn")
    images = mnist.test_images[:300]
    labels, conf = reader(images)
    assert labels.shape == (300,) and labels.dtype == np.int64
    assert conf.dtype == np.float32 and np.all((conf > 0) & (conf <= 1))
    np.testing.assert_array_equal(labels, reader.probs(images).argmax(1))
    single, _ = reader(images[0])  # a single 28x28 image is a batch of one
    assert single[0] == labels[0]
    assert (labels == mnist.test_labels[:300]).mean() > 0.97
    with pytest.raises(ValueError, match="uint8"):
        reader(images.astype(np.float32))
    import pickle

    again = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(again(images)[0], labels)


def test_mnist_source_gives_the_labels_asked_for_reproducibly(mnist):
    src = MnistSource("test", mnist)
    labels = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    a = src(labels, np.random.default_rng(7))
    b = src(labels, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (8, 28, 28) and a.dtype == np.uint8
    idx = src.indices(labels, np.random.default_rng(7))
    sorted_labels = np.sort(mnist.test_labels)
    np.testing.assert_array_equal(sorted_labels[idx], labels)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        src(np.array([10]), np.random.default_rng(0))


def test_cached_reader_gives_the_same_readings(mnist):
    plain, cached = DigitReader("cnn"), DigitReader("cnn", cache_size=150)
    images = np.concatenate([mnist.test_images[:100], mnist.test_images[50:150]])  # repeats, then overflow
    for batch in (images[:100], images[100:], images[:7]):
        a, b = plain(batch), cached(batch)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
    assert 0 < len(cached._cache) <= 150


@pytest.mark.slow
def test_shipped_cnn_reaches_99_3_percent_on_the_official_test_set_in_under_400_kb(mnist):
    reader = DigitReader(SHIPPED["cnn"])
    labels, _ = reader(mnist.test_images)
    assert (labels == mnist.test_labels).mean() >= 0.993
    assert SHIPPED["cnn"].stat().st_size <= 400_000


def test_evaluate_classifier_script(tmp_path, capsys):
    from perceptgym.evaluate_classifier import Args, run

    accuracy = run(Args(checkpoint="cnn", png=tmp_path / "c.png"))
    assert accuracy >= 0.99 and (tmp_path / "c.png").stat().st_size > 0
    assert "accuracy" in capsys.readouterr().out
    with pytest.raises(CheckpointError, match="does not exist"):
        run(Args(checkpoint=str(tmp_path / "missing.pt")))
