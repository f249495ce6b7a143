"""A class-conditional DCGAN that writes MNIST digits, its training loop, and the GAN digit source.

Generator (0.63M parameters): a learned label embedding concatenated with ``z`` → linear to 7×7×128 → a 4×4
stride-2 transposed convolution to 14×14×64 and one to 28×28 (BatchNorm and ReLU between) → tanh; samples are
then placed by their centre of mass, as MNIST placed its digits. Discriminator: two 4×4 stride-2 convolutions
(64, 128 channels, BatchNorm on the second) with LeakyReLU, conditioned on the label by one-hot label channels
concatenated to the image (Mirza & Osindero 2014; computed without materialising them) or by projection
(Miyato & Koyama 2018, "cGANs with Projection Discriminator": ``D(x, y) = ψ(φ(x)) + <embed(y), φ(x)>``).
Losses are the seed's: the non-saturating generator loss ``L_G = −log D(G(z))`` and the standard
discriminator loss ``L_D = −[log D(x) + log(1 − D(G(z)))]``, both written with softplus on logits
(``−log σ(t) = softplus(−t)``). The seed's two stabilisers are options: spectral normalisation in the
discriminator (Miyato et al. 2018) and a gradient penalty (R1 on real data, Mescheder et al. 2018, or WGAN-GP
on interpolates, Gulrajani et al. 2017); a minibatch-spread feature (Karras et al. 2018) is a third.

Samples come from an exponential moving average of the generator's weights (Yazıcı et al. 2019), whose
BatchNorm statistics are re-estimated before it is used in eval mode.

What the recipe (the defaults) rests on, measured with the classifier-feature Fréchet distance (FD) of
:mod:`perceptgym.supervised.gan_scores`: on this CPU, quality follows the number of digits processed, so the cost per
digit decides; batch 32 beats 64 at equal time; learning rates 6× the DCGAN textbook's 2e-4, with the
discriminator's twice the generator's (TTUR, Heusel et al. 2017), took 4,000 steps from ~8× to 3.2× the
floor; constant rates beat a decay (which trades distance for label accuracy); label channels beat
projection (21× vs 45× the floor after 2,000 steps); and the metric is very sensitive to placement (real
digits shifted by one pixel: 4.7× the floor), so the centre-of-mass placement MNIST used cuts it by ~15-20%.

Training is seeded and reproducible on the CPU, resumable (Ctrl-C or the time budget saves a checkpoint;
running again continues from the saved step) and writes sample grids into its run directory.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from perceptgym.supervised.checkpoint import CheckpointError, DeferredInterrupt, load_checkpoint, save_checkpoint
from perceptgym.supervised.classifier import native_bfloat16
from perceptgym.supervised.global_state import isolated_training, kept_global_state

CHECKPOINT_FORMAT = "mnist_gan"
CHECKPOINT_VERSION = 1
NUM_CLASSES = 10
CONDITIONINGS = ("projection", "channels")
PENALTIES = ("none", "r1", "wgan-gp")


@dataclass(frozen=True)
class GanConfig:
    """Architecture of both networks.

    ``g_channels`` and ``g_channels_14`` are the generator's widths at 7×7 and 14×14; ``d_channels`` is the
    discriminator's width at 14×14 (doubled at 7×7).
    """

    z_dim: int = 64
    embed_dim: int = 16
    g_channels: int = 128
    g_channels_14: int = 64
    d_channels: int = 64
    conditioning: str = "channels"
    spectral_norm: bool = False
    d_batchnorm: bool = True  # BatchNorm after the discriminator's second convolution (as in DCGAN)
    # Sampling places each digit by its centre of mass, as MNIST placed its digits in the 28×28 field
    # (training sees the raw output: placing inside the training loop made the GAN worse).
    place_by_mass: bool = True
    minibatch_std: bool = False  # append the features' spread across the batch to D's features (Karras et al. 2018)

    def __post_init__(self) -> None:
        for name in ("z_dim", "embed_dim", "g_channels", "g_channels_14", "d_channels"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.conditioning not in CONDITIONINGS:
            raise ValueError(f"unknown conditioning {self.conditioning!r}: use one of {CONDITIONINGS}")


@dataclass(frozen=True)
class GanTrainConfig:
    """Optimisation. ``steps`` is the budget in optimiser steps (one D and one G update each)."""

    steps: int = 12000
    batch_size: int = 32
    lr_g: float = 1.2e-3
    lr_d: float = 2.4e-3
    betas: tuple[float, float] = (0.5, 0.999)
    penalty: str = "none"
    penalty_weight: float = 10.0
    ema_decay: float = 0.999  # 0 disables the EMA (samples then come from the trained generator itself)
    lr_decay: bool = False  # linear decay of both learning rates to 0 at ``steps``...
    lr_decay_start: float = 0.5  # ...starting at this fraction of ``steps`` (constant before)
    bn_batches: int = 40  # batches of 250 samples that re-estimate the EMA generator's BatchNorm statistics
    seed: int = 0
    threads: int = 2  # this machine's two cores: 1.7x faster than one when nothing else runs

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.threads < 1 or self.bn_batches < 1:
            raise ValueError(f"steps, batch_size, threads and bn_batches must be >= 1: {self}")
        if self.lr_g <= 0 or self.lr_d <= 0:
            raise ValueError(f"learning rates must be > 0, got lr_g={self.lr_g}, lr_d={self.lr_d}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.penalty not in PENALTIES:
            raise ValueError(f"unknown gradient penalty {self.penalty!r}: use one of {PENALTIES}")
        if not 0.0 <= self.lr_decay_start < 1.0:
            raise ValueError(f"lr_decay_start must be in [0, 1), got {self.lr_decay_start}")
        if self.penalty_weight < 0:
            raise ValueError(f"penalty_weight must be >= 0, got {self.penalty_weight}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


# ---- models --------------------------------------------------------------------------------------------


class Generator(nn.Module):
    """Maps ``z`` ``(n, z_dim)`` and labels ``(n,)`` to images ``(n, 1, 28, 28)`` in [-1, 1]."""

    def __init__(self, cfg: GanConfig):
        super().__init__()
        self.cfg = cfg
        c, c2 = cfg.g_channels, cfg.g_channels_14
        self.embed = nn.Embedding(NUM_CLASSES, cfg.embed_dim)
        self.fc = nn.Linear(cfg.z_dim + cfg.embed_dim, c * 49, bias=False)
        self.net = nn.Sequential(
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c, c2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(c2),
            nn.ReLU(inplace=True),  # 7 -> 14
        )
        self.to_image = nn.ConvTranspose2d(c2, 1, 4, 2, 1)  # 14 -> 28, then tanh

    fc_position_major = False  # the fc's outputs ordered (position, channel) instead of (channel, position)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, self.embed(labels)], dim=1))
        # channels_last: oneDNN's transposed convolutions run ~1.3-1.7x faster in it on this CPU.
        if self.fc_position_major:  # fc rows already in channels_last order (see fuse_batchnorm): no copy
            h = h.view(-1, 7, 7, self.cfg.g_channels).permute(0, 3, 1, 2)
        else:
            h = h.view(-1, self.cfg.g_channels, 7, 7).contiguous(memory_format=torch.channels_last)
        h = self.net(h)
        return torch.tanh(_conv_transpose_to_one_channel(h, self.to_image))


class Discriminator(nn.Module):
    """Maps images ``(n, 1, 28, 28)`` in [-1, 1] and labels ``(n,)`` to logits ``(n,)`` (real: positive)."""

    def __init__(self, cfg: GanConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.d_channels
        sn = nn.utils.parametrizations.spectral_norm if cfg.spectral_norm else (lambda m: m)
        c_in = 1 + (NUM_CLASSES if cfg.conditioning == "channels" else 0)
        self.body = nn.Sequential(
            sn(nn.Conv2d(c_in, c, 4, 2, 1)),
            nn.LeakyReLU(0.2),  # 28 -> 14
            sn(nn.Conv2d(c, 2 * c, 4, 2, 1, bias=not cfg.d_batchnorm)),  # 14 -> 7
            *([nn.BatchNorm2d(2 * c)] if cfg.d_batchnorm else []),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        features = 2 * c * 49 + (49 if cfg.minibatch_std else 0)
        self.out = sn(nn.Linear(features, 1))
        self.project = sn(nn.Embedding(NUM_CLASSES, features)) if cfg.conditioning == "projection" else None

        if cfg.conditioning == "channels":
            # Which of the first convolution's 4×4 taps fall inside the 28×28 image, per 14×14 output position
            # (the rest read zero padding): the response to a constant label channel is then a weighted sum.
            inside = F.pad(torch.ones(28, 28), (1, 1, 1, 1)).unfold(0, 4, 2).unfold(1, 4, 2)  # (14, 14, 4, 4)
            self.register_buffer("taps_inside", inside.contiguous(), persistent=False)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.cfg.conditioning == "channels":
            # The same as convolving the image concatenated with one-hot label channels (Mirza & Osindero
            # 2014), computed without them: the label channels are constant, so their response is one
            # 14×14 map per class, computed from the weights at a cost that does not grow with the batch.
            conv = self.body[0]
            weight = conv.weight
            label_maps = torch.einsum("okuv,ijuv->koij", weight[:, 1:], self.taps_inside)  # (10, c, 14, 14)
            h = F.conv2d(x, weight[:, :1], conv.bias, stride=2, padding=1) + label_maps[labels]
            h = self.body[2:](self.body[1](h))
        else:
            h = self.body(x)
        if self.cfg.minibatch_std:
            h = torch.cat([h, _minibatch_std(h.view(len(h), -1, 49))], dim=1)
        logits = self.out(h).squeeze(1)
        if self.project is not None:
            logits = logits + (self.project(labels) * h).sum(dim=1)
        return logits


def center_by_mass(images: torch.Tensor) -> torch.Tensor:
    """Shifts each image ``(n, 1, 28, 28)`` in [-1, 1] by whole pixels so that its centre of mass (ink =
    ``(x + 1) / 2``) lies within half a pixel of (14, 14), filling with background: how MNIST placed its
    digits in the 28×28 field. The shift is chosen without gradients; the pixels pass gradients through.
    """
    n, _, h, w = images.shape
    with torch.no_grad():
        ink = (images[:, 0] + 1.0) * 0.5
        mass = ink.sum(dim=(1, 2)).clamp_min(1e-6)
        rows = torch.arange(h, dtype=images.dtype)
        cols = torch.arange(w, dtype=images.dtype)
        cy = (ink.sum(dim=2) @ rows) / mass
        cx = (ink.sum(dim=1) @ cols) / mass
        dy = torch.round(h / 2 - cy).clamp_(-(h // 2), h // 2).long()
        dx = torch.round(w / 2 - cx).clamp_(-(w // 2), w // 2).long()
        src_r = torch.arange(h)[None, :] - dy[:, None]  # output row i takes input row i - dy
        src_c = torch.arange(w)[None, :] - dx[:, None]
        keep = ((src_r >= 0) & (src_r < h))[:, :, None] & ((src_c >= 0) & (src_c < w))[:, None, :]
    out = images[:, 0].gather(1, src_r.clamp(0, h - 1)[:, :, None].expand(n, h, w))
    out = out.gather(2, src_c.clamp(0, w - 1)[:, None, :].expand(n, h, w))
    return torch.where(keep, out, torch.full_like(out, -1.0)).unsqueeze(1)


def _minibatch_std(h: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Per-position standard deviation across groups of ``group`` samples, averaged over channels: ``(n, p)``.

    A batch of near-identical fakes shows a small spread that real batches never have, so the discriminator
    can penalise a generator that drops variety (Karras et al. 2018, "Progressive Growing of GANs").
    """
    n, c, p = h.shape
    g = group if n % group == 0 else n
    y = h.view(g, n // g, c, p)
    std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=1)  # (n // g, p)
    return std.repeat(g, 1)


def _conv_transpose_to_one_channel(h: torch.Tensor, conv: nn.ConvTranspose2d) -> torch.Tensor:
    """``conv(h)`` for a 4×4 stride-2 padding-1 transposed convolution with one output channel.

    Written as a matmul (each input pixel's 4×4 output block) plus ``fold`` (overlap-add), which is what a
    transposed convolution is: ~6× faster on the CPU than oneDNN's kernel, which is slow for one channel.
    """
    n, c, height, width = h.shape
    blocks = h.permute(0, 2, 3, 1).reshape(n, height * width, c) @ conv.weight.reshape(c, 16)
    out = F.fold(blocks.transpose(1, 2), (2 * height, 2 * width), 4, stride=2, padding=1)
    return out + conv.bias.view(1, 1, 1, 1)


class _Bfloat16(nn.Module):
    """Runs ``module`` in bfloat16 (float32 in and out): oneDNN's bfloat16 transposed convolution is ~2× faster
    on this CPU (AVX-512 BF16), at ~0.4% relative error in the generator's hidden features."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = copy.deepcopy(module).to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.to(torch.bfloat16)).float()


@torch.no_grad()
def fuse_batchnorm(generator: Generator, *, bfloat16: bool = False) -> Generator:
    """An eval-mode copy for sampling: each BatchNorm folded into the layer before it (the same digits up to
    float rounding, ~10% faster), the fc's outputs reordered so that no channels_last copy is needed, and with
    ``bfloat16`` the hidden transposed convolution in bfloat16 (see :class:`GanSource`)."""
    g = copy.deepcopy(generator).eval()
    bn0, conv, bn1 = g.net[0], g.net[2], g.net[3]
    scale = bn0.weight / torch.sqrt(bn0.running_var + bn0.eps)
    fc = nn.Linear(g.fc.in_features, g.fc.out_features)
    weight = g.fc.weight * scale.repeat_interleave(49)[:, None]  # fc output c*49 + p feeds channel c
    bias = (bn0.bias - bn0.running_mean * scale).repeat_interleave(49)
    # Reorder the outputs to p*C + c, so that they already lie in channels_last order.
    c = g.cfg.g_channels
    fc.weight.copy_(weight.view(c, 49, -1).transpose(0, 1).reshape(49 * c, -1))
    fc.bias.copy_(bias.view(c, 49).t().reshape(-1))
    g.fc = fc
    g.fc_position_major = True
    g.net[2] = nn.utils.fusion.fuse_conv_bn_eval(conv, bn1, transpose=True)
    if bfloat16:  # the hidden transposed convolution: most of the generator's work
        g.net[2] = _Bfloat16(g.net[2])
    g.net[0], g.net[3] = nn.Identity(), nn.Identity()
    return g.requires_grad_(False)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] ``(n, 1, 28, 28)`` → MNIST-like uint8 ``(n, 28, 28)`` (0 background)."""
    return images.squeeze(1).add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """MNIST uint8 ``(n, 28, 28)`` → ``(n, 1, 28, 28)`` floats in [-1, 1], the generator's range."""
    return images.to(torch.float32).div_(127.5).sub_(1.0).unsqueeze(1)


# ---- losses --------------------------------------------------------------------------------------------


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``−[log D(x) + log(1 − D(G(z)))]`` with ``D = σ(logit)``, averaged over the batch."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating ``−log D(G(z))``, averaged over the batch."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``E ||∇_x D(x)||²`` on real data (Mescheder et al. 2018); ``real`` must require grad."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def wgan_gp_penalty(
    disc: Discriminator,
    real: torch.Tensor,
    fake: torch.Tensor,
    labels: torch.Tensor,
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """``E (||∇ D(x̂)|| − 1)²`` at random interpolates of real and fake (Gulrajani et al. 2017)."""
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=gen)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(mixed, labels).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


# ---- EMA and BatchNorm re-estimation -------------------------------------------------------------------


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p, 1.0 - decay)


@torch.no_grad()
def recalibrate_batchnorm(generator: Generator, *, batches: int = 40, batch_size: int = 250, seed: int = 0) -> None:
    """Re-estimates the generator's BatchNorm statistics from its own samples (classes balanced), then eval.

    The EMA weights never ran in train mode, so their running statistics are those of no network; this sets
    them to the exact averages over ``batches × batch_size`` samples (deterministic for a given ``seed``).
    """
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    generator.train()
    labels = torch.arange(batch_size) % NUM_CLASSES
    for _ in range(batches):
        generator(torch.randn(batch_size, generator.cfg.z_dim, generator=gen), labels)
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    generator.eval()


@torch.inference_mode()
def sample(
    generator: Generator, labels: torch.Tensor | np.ndarray, z: torch.Tensor | np.ndarray, batch_size: int = 1000
) -> npt.NDArray[np.uint8]:
    """uint8 digits ``(n, 28, 28)`` for the given labels and latents (generator in eval mode)."""
    generator.eval()
    labels = torch.as_tensor(labels, dtype=torch.int64)
    z = torch.as_tensor(z, dtype=torch.float32)
    out = torch.empty(len(labels), 28, 28, dtype=torch.uint8)
    for i in range(0, len(labels), batch_size):
        images = generator(z[i : i + batch_size], labels[i : i + batch_size])
        if generator.cfg.place_by_mass:
            images = center_by_mass(images)
        out[i : i + batch_size] = to_uint8(images)
    return out.numpy()


def sample_classes(generator: Generator, per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` digits of each class 0..9 (class-major order) and their labels, from a seeded z."""
    labels = np.repeat(np.arange(NUM_CLASSES), per_class)
    z = torch.randn(len(labels), generator.cfg.z_dim, generator=torch.Generator().manual_seed(seed))
    return sample(generator, labels, z), labels


# ---- checkpoints ---------------------------------------------------------------------------------------


def _config_dict(cfg: Any) -> dict[str, Any]:
    d = asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _train_config(d: dict[str, Any]) -> GanTrainConfig:
    d = dict(d)
    d["betas"] = tuple(d["betas"])
    return GanTrainConfig(**d)


def save_generator(
    path: str | Path,
    generator: Generator,
    *,
    metrics: dict[str, Any] | None = None,
    train_args: dict[str, Any] | None = None,
    step: int = 0,
) -> Path:
    """Writes a generator-only checkpoint (what a digit source needs): a few hundred kB to a few MB."""
    return save_checkpoint(
        path,
        CHECKPOINT_FORMAT,
        CHECKPOINT_VERSION,
        {
            "model_args": _config_dict(generator.cfg),
            "generator": generator.state_dict(),
            "step": step,
            "metrics": metrics or {},
            "train_args": train_args or {},
        },
    )


@dataclass
class LoadedGenerator:
    generator: Generator
    metrics: dict[str, Any]
    train_args: dict[str, Any]
    step: int


def load_generator(path: str | Path) -> LoadedGenerator:
    """Loads the sampling generator (EMA weights, eval mode) from a full or generator-only GAN checkpoint."""
    ck = load_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION)
    try:
        with kept_global_state():  # the initial weights (overwritten next) draw from torch's global RNG
            generator = Generator(GanConfig(**ck["model_args"]))
        generator.load_state_dict(ck["generator"])
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{path}: GAN checkpoint is damaged or inconsistent ({type(e).__name__}: {e})") from e
    return LoadedGenerator(
        generator.eval(), dict(ck.get("metrics") or {}), dict(ck.get("train_args") or {}), int(ck.get("step", 0))
    )


# ---- training ------------------------------------------------------------------------------------------


@dataclass
class GanTrainResult:
    generator: Generator  # the sampling generator: EMA weights, BatchNorm re-estimated, eval mode
    step: int
    seconds: float  # optimisation time, summed over resumed runs
    finished: bool  # False when the time budget stopped training before ``steps``
    history: list[dict[str, float]] = field(default_factory=list)


class _Trainer:
    """The training state: networks, optimisers, RNG streams and counters; saved and restored as one dict."""

    def __init__(self, model_cfg: GanConfig, train_cfg: GanTrainConfig, n_train: int):
        self.model_cfg, self.train_cfg = model_cfg, train_cfg
        torch.manual_seed(train_cfg.seed)
        self.G, self.D = Generator(model_cfg), Discriminator(model_cfg)
        self.G_ema = copy.deepcopy(self.G)
        self.G_ema.requires_grad_(False)
        betas = tuple(train_cfg.betas)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=train_cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=train_cfg.lr_d, betas=betas)
        self.shuffle = torch.Generator().manual_seed(train_cfg.seed)
        self.noise = torch.Generator().manual_seed(train_cfg.seed + 1)
        self.n_train = n_train
        self.order = torch.randperm(n_train, generator=self.shuffle)
        self.pos = 0
        self.step = 0
        self.seconds = 0.0
        self.history: list[dict[str, float]] = []

    def next_batch(self) -> torch.Tensor:
        b = self.train_cfg.batch_size
        if self.pos + b > self.n_train:  # drop the ragged end of an epoch: every batch has the same size
            self.order = torch.randperm(self.n_train, generator=self.shuffle)
            self.pos = 0
        idx = self.order[self.pos : self.pos + b]
        self.pos += b
        return idx

    def lr_scale(self) -> float:
        cfg = self.train_cfg
        if not cfg.lr_decay:
            return 1.0
        start = cfg.lr_decay_start * cfg.steps
        return min(1.0, (cfg.steps - self.step) / (cfg.steps - start))

    def train_step(self, real: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        cfg = self.train_cfg
        for opt, lr in ((self.opt_g, cfg.lr_g), (self.opt_d, cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * self.lr_scale()
        z = torch.randn(len(labels), self.model_cfg.z_dim, generator=self.noise)
        fake = self.G(z, labels)
        # ---- discriminator: −[log D(x) + log(1 − D(G(z)))] (+ penalty)
        self.D.requires_grad_(True)
        if cfg.penalty == "r1":
            real.requires_grad_(True)
        real_logits = self.D(real, labels)
        fake_logits = self.D(fake.detach(), labels)
        loss_d = discriminator_loss(real_logits, fake_logits)
        penalty = torch.zeros(())
        if cfg.penalty == "r1":
            penalty = r1_penalty(real_logits, real)
        elif cfg.penalty == "wgan-gp":
            penalty = wgan_gp_penalty(self.D, real, fake.detach(), labels, self.noise)
        self.opt_d.zero_grad(set_to_none=True)
        (loss_d + cfg.penalty_weight * penalty / (2.0 if cfg.penalty == "r1" else 1.0)).backward()
        self.opt_d.step()
        # ---- generator: the non-saturating −log D(G(z)); D's weights need no gradients here
        self.D.requires_grad_(False)
        loss_g = generator_loss(self.D(fake, labels))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.step += 1
        if cfg.ema_decay > 0:
            # Warm-up (as in TF's ExponentialMovingAverage with num_updates): early on the average follows
            # the generator closely instead of remembering its random initialisation.
            ema_update(self.G_ema, self.G, min(cfg.ema_decay, (1 + self.step) / (10 + self.step)))
        else:
            self.G_ema.load_state_dict(self.G.state_dict())
        with torch.no_grad():
            return {
                "loss_d": float(loss_d),
                "loss_g": float(loss_g),
                "penalty": float(penalty),
                "d_real": float(torch.sigmoid(real_logits).mean()),
                "d_fake": float(torch.sigmoid(fake_logits).mean()),
            }

    def sampler(self) -> Generator:
        """The EMA generator with re-estimated BatchNorm statistics, in eval mode (a copy)."""
        g = copy.deepcopy(self.G_ema)
        recalibrate_batchnorm(g, batches=self.train_cfg.bn_batches, seed=self.train_cfg.seed)
        return g

    def state(self, sampler: Generator, train_args: dict[str, Any]) -> dict[str, Any]:
        return {
            "model_args": _config_dict(self.model_cfg),
            "generator": sampler.state_dict(),
            "generator_train": self.G.state_dict(),
            "generator_ema": self.G_ema.state_dict(),
            "discriminator": self.D.state_dict(),
            "optimizers": {"generator": self.opt_g.state_dict(), "discriminator": self.opt_d.state_dict()},
            "step": self.step,
            "train_config": _config_dict(self.train_cfg),
            "train_args": train_args,
            "metrics": {},
            "rng": {
                "torch": torch.get_rng_state(),
                "shuffle": self.shuffle.get_state(),
                "noise": self.noise.get_state(),
            },
            "order": self.order,
            "pos": self.pos,
            "seconds": self.seconds,
            "history": self.history,
        }

    def restore(self, path: Path) -> None:
        ck = load_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION)
        if "discriminator" not in ck:
            raise CheckpointError(f"{path} holds only a generator (a shipped model); training cannot resume it")
        try:  # fields added since the file was written take their defaults
            saved_model = _config_dict(GanConfig(**ck["model_args"]))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: GAN training checkpoint is damaged ({type(e).__name__}: {e})") from e
        if saved_model != _config_dict(self.model_cfg):
            raise CheckpointError(
                f"{path} was trained with model {ck['model_args']}, not "
                f"{_config_dict(self.model_cfg)}; use another run directory to start over"
            )
        saved = _train_config(ck["train_config"])
        if _config_dict(saved) != _config_dict(self.train_cfg) and (_config_dict(saved) | {"steps": 0}) != (
            _config_dict(self.train_cfg) | {"steps": 0}
        ):
            raise CheckpointError(
                f"{path} was trained with {saved}; only `steps` may change when resuming "
                "(use another run directory to start over)"
            )
        try:
            self.G.load_state_dict(ck["generator_train"])
            self.G_ema.load_state_dict(ck["generator_ema"])
            self.D.load_state_dict(ck["discriminator"])
            self.opt_g.load_state_dict(ck["optimizers"]["generator"])
            self.opt_d.load_state_dict(ck["optimizers"]["discriminator"])
            torch.set_rng_state(ck["rng"]["torch"])
            self.shuffle.set_state(ck["rng"]["shuffle"])
            self.noise.set_state(ck["rng"]["noise"])
            self.order, self.pos = ck["order"], int(ck["pos"])
            self.step, self.seconds = int(ck["step"]), float(ck["seconds"])
            self.history = list(ck["history"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"{path}: GAN training checkpoint is damaged ({type(e).__name__}: {e})") from e


@isolated_training
def train_gan(
    model_cfg: GanConfig,
    train_cfg: GanTrainConfig,
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    *,
    checkpoint_path: str | Path | None = None,
    minutes: float | None = None,
    sample_every: int = 0,
    sample_dir: str | Path | None = None,
    log_every: int = 100,
    progress: bool = False,
    on_log: Callable[[dict[str, float]], None] | None = None,
    train_args: dict[str, Any] | None = None,
    score_every: int = 0,
    on_score: Callable[[int, float, Generator], None] | None = None,
) -> GanTrainResult:
    """Trains the conditional GAN; deterministic for a given ``train_cfg.seed`` and thread count on the CPU.

    Runs with ``train_cfg.threads`` torch threads; the caller's thread count and global RNGs are restored.

    Args:
        images, labels: the training digits, uint8 ``(n, 28, 28)`` and int ``(n,)``.
        checkpoint_path: if given, the full training state is saved here on Ctrl-C, when the time budget runs
            out and at the end; if the file exists when training starts, training resumes from its step
            (and ends with the same networks as an uninterrupted run).
        minutes: optimisation-time budget for this call; training stops cleanly (and saves) when it is spent.
        sample_every: every this many steps, write a 10×10 grid of EMA-generator samples (row k = digit k)
            as ``sample_dir/step_XXXXXX.png`` (0: never).
        log_every: every this many steps, append the losses to ``history`` and call ``on_log``.
        progress: show a tqdm progress bar.
        train_args: stored in the checkpoint (e.g. the script's arguments).
        score_every: every this many steps, call ``on_score(step, seconds, sampler)`` with the generator as
            it would be exported now (EMA, recalibrated BatchNorm); its time is not optimisation time, and the
            global RNGs are restored after it, so scoring never changes the trained networks.
    """
    if score_every < 0:
        raise ValueError(f"score_every must be >= 0, got {score_every}")
    images = np.asarray(images)
    labels = np.asarray(labels, dtype=np.int64)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8 or len(images) != len(labels):
        raise ValueError(
            f"need uint8 images (n, 28, 28) and n labels, got {images.shape} {images.dtype}, {labels.shape}"
        )
    if len(images) < train_cfg.batch_size:
        raise ValueError(f"batch_size {train_cfg.batch_size} exceeds the {len(images)} training digits")
    x_all = torch.from_numpy(np.ascontiguousarray(images))
    y_all = torch.from_numpy(labels)
    trainer = _Trainer(model_cfg, train_cfg, len(images))
    ck_path = Path(checkpoint_path) if checkpoint_path is not None else None
    if ck_path is not None and ck_path.exists():
        trainer.restore(ck_path)
    grid_z = torch.randn(100, model_cfg.z_dim, generator=torch.Generator().manual_seed(train_cfg.seed + 2))
    grid_labels = torch.arange(100) // 10
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=train_cfg.steps, initial=trainer.step, desc="train gan", unit="step")
    budget = math.inf if minutes is None else minutes * 60.0
    spent = 0.0
    train_args = train_args or {}

    def save(sampler: Generator) -> None:
        if ck_path is not None:
            save_checkpoint(ck_path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, trainer.state(sampler, train_args))

    def write_grid(sampler: Generator) -> None:
        from perceptgym.supervised.plots import save_digit_grid

        grid = sample(sampler, grid_labels, grid_z)
        save_digit_grid(grid, Path(sample_dir) / f"step_{trainer.step:06d}.png", ncols=10)

    try:
        with DeferredInterrupt() as interrupt:
            while trainer.step < train_cfg.steps and spent < budget:
                if interrupt.requested:
                    save(trainer.sampler())
                    raise KeyboardInterrupt
                t0 = time.perf_counter()
                idx = trainer.next_batch()
                row = trainer.train_step(from_uint8(x_all[idx]), y_all[idx])
                dt = time.perf_counter() - t0
                spent += dt
                trainer.seconds += dt
                if bar is not None:
                    bar.update(1)
                if log_every and trainer.step % log_every == 0:
                    row = {"step": trainer.step, "seconds": trainer.seconds, **row}
                    trainer.history.append(row)
                    if bar is not None:
                        bar.set_postfix(loss_d=f"{row['loss_d']:.3f}", loss_g=f"{row['loss_g']:.3f}")
                    if on_log:
                        on_log(row)
                if sample_every and sample_dir is not None and trainer.step % sample_every == 0:
                    write_grid(trainer.sampler())
                if score_every and on_score is not None and trainer.step % score_every == 0:
                    with kept_global_state():
                        on_score(trainer.step, trainer.seconds, trainer.sampler())
    finally:
        if bar is not None:
            bar.close()
    finished = trainer.step >= train_cfg.steps
    sampler = trainer.sampler()
    save(sampler)
    if sample_dir is not None and sample_every and trainer.step % sample_every:
        write_grid(sampler)
    return GanTrainResult(sampler, trainer.step, trainer.seconds, finished, trainer.history)


# ---- the digit source ----------------------------------------------------------------------------------


class GanSource:
    """A trained generator as a :class:`perceptgym.envs.digits.DigitSource`: fresh handwriting for any labels.

    ``z`` is drawn from the caller's numpy Generator (``rng.standard_normal``), so the same Generator state
    gives the same digits and torch's own RNG is never touched.

    Args:
        path: a GAN checkpoint (generator-only or full), or ``"gan"`` for the shipped one.
        batch_size: digits per forward pass (memory bound; results do not depend on it).
        threads: torch intra-op threads while sampling (None: leave torch's setting alone).
        bfloat16: run the generator's hidden transposed convolution in bfloat16, ~1.6× more digits per second.
            The digits differ from float32 sampling in ~4% of pixels (mostly by a grey level; a digit whose
            centre of mass sits near a half pixel may be placed one pixel apart); measured scores are the
            same (98.94% / 2.91× both, 10k digits). None (default): where the CPU does bfloat16 natively.
    """

    def __init__(
        self, path: str | Path = "gan", *, batch_size: int = 256, threads: int | None = 1, bfloat16: bool | None = None
    ):
        from perceptgym.supervised.perception import SHIPPED

        self.path = SHIPPED["gan"] if str(path) == "gan" else Path(path)
        loaded = load_generator(self.path)
        if bfloat16 is None:
            bfloat16 = native_bfloat16()
        self.bfloat16 = bfloat16
        with kept_global_state():  # fusing builds a layer, whose initial weights draw from torch's global RNG
            self.generator = fuse_batchnorm(loaded.generator, bfloat16=bfloat16)
        self.metrics = loaded.metrics
        self.z_dim = self.generator.cfg.z_dim
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.threads = batch_size, threads

    def __call__(self, labels: npt.NDArray[np.integer], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
        from perceptgym.supervised.perception import torch_threads

        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
            raise ValueError(f"digit labels must be in 0..9, got {labels[(labels < 0) | (labels > 9)][:5]}")
        z = rng.standard_normal((labels.size, self.z_dim), dtype=np.float32)
        with torch_threads(self.threads):
            return sample(self.generator, torch.from_numpy(labels), torch.from_numpy(z), self.batch_size)

    def __getstate__(self) -> dict:  # pickle by path, like MnistSource
        return {
            "path": str(self.path),
            "batch_size": self.batch_size,
            "threads": self.threads,
            "bfloat16": self.bfloat16,
        }

    def __setstate__(self, state: dict) -> None:
        self.__init__(
            state["path"], batch_size=state["batch_size"], threads=state["threads"], bfloat16=state.get("bfloat16")
        )

    def __repr__(self) -> str:
        return f"GanSource({str(self.path)!r})"


def retrain_for_demo(path: str | Path, *, seed: int = 0, quick: bool = False) -> Path:
    """Trains a generator with the shipped recipe (``quick``: 300 steps) and saves it at ``path``.

    The demo's ``--retrain`` uses it; ``scripts/train_gan.py`` is the full tool (run directory, sample grids,
    scores, resume).
    """
    from perceptgym.supervised.data import load_mnist

    data = load_mnist()
    train_cfg = GanTrainConfig(seed=seed, **({"steps": 300, "bn_batches": 8} if quick else {}))
    result = train_gan(GanConfig(), train_cfg, data.train_images, data.train_labels, progress=True)
    return save_generator(path, result.generator, step=result.step, train_args={"demo": True, "quick": quick})
