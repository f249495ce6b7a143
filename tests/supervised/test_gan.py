"""The conditional DCGAN: shapes, losses, checkpoints, seeded and resumable training (tiny networks, fake data)."""

from __future__ import annotations

import dataclasses
import os
import signal

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from perceptgym.supervised.checkpoint import CheckpointError, save_checkpoint
from perceptgym.supervised.gan import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    Discriminator,
    GanConfig,
    GanTrainConfig,
    Generator,
    _conv_transpose_to_one_channel,
    _minibatch_std,
    center_by_mass,
    discriminator_loss,
    fuse_batchnorm,
    generator_loss,
    load_generator,
    r1_penalty,
    recalibrate_batchnorm,
    sample,
    sample_classes,
    save_generator,
    train_gan,
    wgan_gp_penalty,
)

TINY = GanConfig(z_dim=8, embed_dim=4, g_channels=16, g_channels_14=8, d_channels=8)
TINY_TRAIN = GanTrainConfig(steps=6, batch_size=16, seed=3, bn_batches=2)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """96 fake 'digits': class k is a bar of width 2k+1 (like conftest's StubSource)."""
    rng = np.random.default_rng(0)
    labels = np.arange(96) % 10
    images = rng.integers(0, 30, size=(96, 28, 28), dtype=np.uint8)
    for i, k in enumerate(labels):
        images[i, 4:24, 2 : 3 + 2 * k] = 255
    return images, labels.astype(np.int64)


@pytest.mark.parametrize(
    "cfg",
    [
        TINY,
        GanConfig(**{**TINY.__dict__, "conditioning": "projection"}),
        GanConfig(**{**TINY.__dict__, "conditioning": "projection", "spectral_norm": True, "d_batchnorm": True}),
        GanConfig(**{**TINY.__dict__, "spectral_norm": True, "d_batchnorm": True}),
        GanConfig(**{**TINY.__dict__, "conditioning": "channels", "place_by_mass": False, "minibatch_std": True}),
    ],
)
def test_shapes_and_ranges(cfg):
    torch.manual_seed(0)
    g, d = Generator(cfg), Discriminator(cfg)
    z, labels = torch.randn(5, cfg.z_dim), torch.tensor([0, 3, 9, 9, 1])
    x = g(z, labels)
    assert x.shape == (5, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert d(x, labels).shape == (5,)
    images = sample(g, labels, z)
    assert images.shape == (5, 28, 28) and images.dtype == np.uint8


def test_default_generator_is_under_a_million_parameters():
    assert sum(p.numel() for p in Generator(GanConfig()).parameters()) <= 1_000_000


def test_fast_output_layer_is_a_transposed_convolution():
    conv = torch.nn.ConvTranspose2d(8, 1, 4, 2, 1)
    h = torch.randn(3, 8, 14, 14)
    torch.testing.assert_close(_conv_transpose_to_one_channel(h, conv), conv(h), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_label_channels_are_computed_as_if_concatenated(spectral_norm):
    """The discriminator's label-channel shortcut equals convolving the image stacked with one-hot planes."""
    torch.manual_seed(0)
    d = Discriminator(GanConfig(**{**TINY.__dict__, "conditioning": "channels", "spectral_norm": spectral_norm}))
    d.eval()  # spectral norm: no power iteration, so both calls use the same weight
    x, labels = torch.rand(6, 1, 28, 28) * 2 - 1, torch.tensor([0, 1, 5, 9, 9, 3])
    onehot = F.one_hot(labels, 10).float()[:, :, None, None].expand(-1, -1, 28, 28)
    expected = d.out(d.body(torch.cat([x, onehot], dim=1))).squeeze(1)
    torch.testing.assert_close(d(x, labels), expected, atol=1e-5, rtol=1e-5)


def test_center_by_mass_places_digits_as_mnist_does():
    torch.manual_seed(0)
    blob = torch.full((3, 1, 28, 28), -1.0)
    blob[0, 0, 2:8, 3:6] = 1.0  # ink at the top left
    blob[1, 0, 20:27, 18:25] = torch.rand(7, 7) * 2 - 1
    blob[2, 0, 11:17, 12:16] = 1.0  # already centred: mass at (13.5, 13.5)
    out = center_by_mass(blob.clone().requires_grad_(True))
    ink = (out.detach()[:, 0] + 1) / 2
    rows = torch.arange(28.0)
    cy = (ink.sum(2) @ rows) / ink.sum((1, 2))
    cx = (ink.sum(1) @ rows) / ink.sum((1, 2))
    assert ((cy - 14).abs() <= 0.5).all() and ((cx - 14).abs() <= 0.5).all()
    torch.testing.assert_close(ink.sum((1, 2)), ((blob[:, 0] + 1) / 2).sum((1, 2)))  # no ink lost
    torch.testing.assert_close(out[2].detach(), blob[2])
    x = blob.clone().requires_grad_(True)
    center_by_mass(x).sum().backward()
    assert x.grad is not None and x.grad.sum() > 0  # pixels pass gradients to the generator


def test_samples_are_placed_by_mass_unless_switched_off():
    torch.manual_seed(0)
    z, labels = torch.randn(40, TINY.z_dim), torch.arange(40) % 10

    def centre_offsets(cfg):
        g = Generator(cfg)
        recalibrate_batchnorm(g, batches=2, batch_size=20)
        ink = torch.from_numpy(sample(g, labels, z)).double()
        rows = torch.arange(28.0, dtype=torch.float64)
        return torch.stack([(ink.sum(2) @ rows), (ink.sum(1) @ rows)]) / ink.sum((1, 2)) - 14

    assert centre_offsets(TINY).abs().max() <= 0.55  # uint8 rounding moves the centre a little
    torch.manual_seed(0)
    assert centre_offsets(GanConfig(**{**TINY.__dict__, "place_by_mass": False})).abs().max() > 0.55


def test_minibatch_std_measures_the_spread_within_groups():
    same = torch.ones(8, 3, 49)
    assert torch.allclose(_minibatch_std(same), torch.full((8, 49), 1e-4))
    varied = torch.randn(8, 3, 49)
    out = _minibatch_std(varied)
    assert out.shape == (8, 49) and (out > 0.01).all()
    torch.testing.assert_close(out[0], varied[0::2].std(dim=0, unbiased=False).mean(dim=0), atol=1e-4, rtol=1e-4)


def test_conditioning_changes_the_output():
    torch.manual_seed(0)
    g = Generator(TINY).eval()
    z = torch.randn(1, TINY.z_dim).repeat(2, 1)
    with torch.no_grad():
        a, b = g(z, torch.tensor([1, 7]))
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("conditioning", ["channels", "projection"])
def test_discriminator_scores_depend_on_the_label(conditioning):
    torch.manual_seed(0)
    cfg = GanConfig(**{**TINY.__dict__, "conditioning": conditioning})
    d = Discriminator(cfg).eval()
    if conditioning == "projection":
        assert d.project is not None
    x = torch.rand(1, 1, 28, 28).repeat(2, 1, 1, 1) * 2 - 1
    with torch.no_grad():
        a, b = d(x, torch.tensor([2, 8]))
    assert not torch.allclose(a, b)


def test_losses_are_the_seeds():
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-3.0, 0.2, 1.0])
    expected_d = -(torch.log(torch.sigmoid(real)).mean() + torch.log(1 - torch.sigmoid(fake)).mean())
    torch.testing.assert_close(discriminator_loss(real, fake), expected_d)
    torch.testing.assert_close(generator_loss(fake), -torch.log(torch.sigmoid(fake)).mean())
    torch.testing.assert_close(
        discriminator_loss(real, fake),
        F.binary_cross_entropy_with_logits(real, torch.ones(3))
        + F.binary_cross_entropy_with_logits(fake, torch.zeros(3)),
    )


def test_gradient_penalties():
    torch.manual_seed(0)
    d = Discriminator(TINY)
    labels = torch.tensor([1, 2])
    real = torch.rand(2, 1, 28, 28).requires_grad_(True)
    r1 = r1_penalty(d(real, labels), real)
    # A discriminator that is linear in x has gradient w everywhere: R1 = ||w||².
    linear = torch.nn.Linear(784, 1)
    x = torch.rand(4, 784, requires_grad=True)
    torch.testing.assert_close(r1_penalty(linear(x).squeeze(1), x), linear.weight.pow(2).sum())
    gp = wgan_gp_penalty(d, real.detach(), torch.rand(2, 1, 28, 28), labels, torch.Generator().manual_seed(0))
    assert r1 > 0 and torch.isfinite(gp) and gp >= 0
    r1.backward()  # differentiable (create_graph=True)
    assert d.body[0].weight.grad is not None


@pytest.mark.parametrize(
    "bad",
    [
        {"conditioning": "concat"},
        {"z_dim": 0},
        {"g_channels": -1},
        {"d_channels": 2.5},
    ],
)
def test_model_config_validation(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        GanConfig(**bad)


@pytest.mark.parametrize(
    "bad",
    [
        {"penalty": "gp"},
        {"steps": 0},
        {"lr_d": 0.0},
        {"betas": (0.5, 1.0)},
        {"ema_decay": 1.0},
        {"penalty_weight": -1.0},
    ],
)
def test_train_config_validation(bad):
    with pytest.raises(ValueError):
        GanTrainConfig(**bad)


def test_bad_training_data_is_a_clear_error(digits):
    images, labels = digits
    with pytest.raises(ValueError, match="uint8 images"):
        train_gan(TINY, TINY_TRAIN, images.astype(np.float32), labels)
    with pytest.raises(ValueError, match="batch_size"):
        train_gan(TINY, GanTrainConfig(batch_size=200, bn_batches=2), images, labels)


def test_recalibrated_batchnorm_matches_large_batch_statistics():
    torch.manual_seed(0)
    g = Generator(TINY)
    recalibrate_batchnorm(g, batches=4, batch_size=50, seed=1)
    assert not g.training
    bn = g.net[0]
    assert bn.num_batches_tracked == 4 and not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))


def test_fused_batchnorm_gives_the_same_digits():
    torch.manual_seed(0)
    g = Generator(TINY)
    recalibrate_batchnorm(g, batches=2, batch_size=20)
    fused = fuse_batchnorm(g)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    z, labels = torch.randn(30, TINY.z_dim), torch.arange(30) % 10
    with torch.no_grad():
        torch.testing.assert_close(fused(z, labels), g(z, labels), atol=1e-5, rtol=1e-4)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    g = Generator(TINY)
    recalibrate_batchnorm(g, batches=2, batch_size=20)
    path = save_generator(tmp_path / "g.pt", g, metrics={"label_accuracy": 0.5}, step=7)
    loaded = load_generator(path)
    assert loaded.step == 7 and loaded.metrics == {"label_accuracy": 0.5}
    a, _ = sample_classes(g, 3, seed=5)
    b, _ = sample_classes(loaded.generator, 3, seed=5)
    np.testing.assert_array_equal(a, b)


def test_bad_checkpoints_are_clear_errors(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_generator(corrupt)
    other = save_checkpoint(tmp_path / "other.pt", "mnist_classifier", 1, {})
    with pytest.raises(CheckpointError, match="expected 'mnist_gan'"):
        load_generator(other)
    future = save_checkpoint(tmp_path / "future.pt", CHECKPOINT_FORMAT, CHECKPOINT_VERSION + 1, {})
    with pytest.raises(CheckpointError, match="newer"):
        load_generator(future)
    broken = save_checkpoint(
        tmp_path / "broken.pt",
        CHECKPOINT_FORMAT,
        CHECKPOINT_VERSION,
        {"model_args": {**TINY.__dict__, "g_channels": 32}, "generator": {}},
    )
    with pytest.raises(CheckpointError, match="damaged"):
        load_generator(broken)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "missing.pt")


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_is_seeded(digits):
    images, labels = digits
    a = train_gan(TINY, TINY_TRAIN, images, labels)
    b = train_gan(TINY, TINY_TRAIN, images, labels)
    assert a.step == 6 and a.finished
    assert _same_state(a.generator.state_dict(), b.generator.state_dict())
    other = train_gan(TINY, dataclasses.replace(TINY_TRAIN, seed=TINY_TRAIN.seed + 1), images, labels)
    assert not _same_state(a.generator.state_dict(), other.generator.state_dict())


def test_resume_continues_from_the_saved_step(digits, tmp_path):
    images, labels = digits
    full = train_gan(TINY, TINY_TRAIN, images, labels, log_every=1)
    ck = tmp_path / "gan.pt"

    def interrupt_at_3(row):
        if row["step"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: DeferredInterrupt saves at the next step boundary

    with pytest.raises(KeyboardInterrupt):
        train_gan(TINY, TINY_TRAIN, images, labels, checkpoint_path=ck, log_every=1, on_log=interrupt_at_3)
    saved = torch.load(ck, weights_only=True)
    assert saved["step"] == 3 and "discriminator" in saved and "optimizers" in saved
    assert load_generator(ck).step == 3  # a full checkpoint also serves as a generator checkpoint
    steps_seen = []
    resumed = train_gan(
        TINY,
        TINY_TRAIN,
        images,
        labels,
        checkpoint_path=ck,
        log_every=1,
        on_log=lambda row: steps_seen.append(row["step"]),
    )
    assert steps_seen == [4, 5, 6] and resumed.step == 6
    assert [h["step"] for h in resumed.history] == [1, 2, 3, 4, 5, 6]
    assert _same_state(resumed.generator.state_dict(), full.generator.state_dict())


def test_time_budget_stops_cleanly_and_more_steps_extend_a_run(digits, tmp_path):
    images, labels = digits
    ck = tmp_path / "gan.pt"
    stopped = train_gan(TINY, TINY_TRAIN, images, labels, checkpoint_path=ck, minutes=1e-9)
    assert stopped.step == 1 and not stopped.finished and ck.exists()
    longer = train_gan(TINY, GanTrainConfig(**{**TINY_TRAIN.__dict__, "steps": 8}), images, labels, checkpoint_path=ck)
    assert longer.step == 8 and longer.finished


def test_resume_refuses_other_settings_and_generator_only_files(digits, tmp_path):
    images, labels = digits
    ck = tmp_path / "gan.pt"
    train_gan(TINY, GanTrainConfig(steps=2, batch_size=16, bn_batches=2), images, labels, checkpoint_path=ck)
    with pytest.raises(CheckpointError, match="trained with model"):
        train_gan(GanConfig(**{**TINY.__dict__, "d_channels": 16}), TINY_TRAIN, images, labels, checkpoint_path=ck)
    with pytest.raises(CheckpointError, match="only `steps`"):
        train_gan(
            TINY, GanTrainConfig(steps=4, batch_size=16, lr_g=1e-3, bn_batches=2), images, labels, checkpoint_path=ck
        )
    shipped = save_generator(tmp_path / "g.pt", load_generator(ck).generator)
    with pytest.raises(CheckpointError, match="only a generator"):
        train_gan(TINY, TINY_TRAIN, images, labels, checkpoint_path=shipped)


@pytest.mark.parametrize("penalty", ["r1", "wgan-gp"])
def test_penalised_training_runs(digits, tmp_path, penalty):
    images, labels = digits
    cfg = GanConfig(**{**TINY.__dict__, "spectral_norm": True})
    result = train_gan(
        cfg,
        GanTrainConfig(steps=2, batch_size=16, penalty=penalty, bn_batches=2),
        images,
        labels,
        sample_every=2,
        sample_dir=tmp_path,
        log_every=1,
    )
    assert result.history[-1]["penalty"] > 0
    assert (tmp_path / "step_000002.png").exists()


@pytest.mark.slow
def test_demo_retrain_writes_a_loadable_generator(tmp_path):
    """`perceptgym.demo --retrain --quick` path: the shipped recipe, 300 steps, on real MNIST."""
    from perceptgym.supervised.gan import retrain_for_demo

    threads = torch.get_num_threads()
    path = retrain_for_demo(tmp_path / "gan.pt", seed=1, quick=True)
    assert torch.get_num_threads() == threads  # training's thread count does not leak to the caller
    loaded = load_generator(path)
    assert loaded.step == 300 and loaded.generator.cfg == GanConfig()
    images, _ = sample_classes(loaded.generator, 2)
    assert images.shape == (20, 28, 28) and images.max() > 200
