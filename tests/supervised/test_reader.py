"""The reader's fast path (folded preprocessing and BatchNorm, bfloat16 with float32 near-ties) and its cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perceptgym.supervised import classifier as C
from perceptgym.supervised.perception import DigitReader, ReadingCache


@pytest.fixture(scope="module")
def mnist():
    from perceptgym.supervised.data import load_mnist

    return load_mnist()


def reference_logits(model, preprocess, images: np.ndarray) -> np.ndarray:
    return C.predict_logits(model, preprocess, images).numpy()


def trained_looking(cfg: C.ClassifierConfig) -> C.DigitClassifier:
    """A random model whose BatchNorm layers have non-trivial statistics and affine parameters."""
    gen = torch.Generator().manual_seed(3)
    model = C.DigitClassifier(cfg)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen))
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=gen))
            m.bias.data.copy_(torch.randn(n, generator=gen))
    return model.eval()


@pytest.mark.parametrize(
    "cfg", [C.ClassifierConfig(), C.ClassifierConfig(batchnorm=True, channels=(8, 16)), C.ClassifierConfig(arch="mlp")]
)
def test_inference_net_equals_the_module_it_was_folded_from(cfg, mnist):
    model, preprocess = trained_looking(cfg), C.preprocess_for(cfg)
    net = C.InferenceNet(model, preprocess)
    images = mnist.test_images[:500]
    ref = reference_logits(model, preprocess, images)
    got = net(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(got.argmax(1), ref.argmax(1))
    by_numpy = net.numpy(images)  # the path of batches up to NUMPY_UP_TO images
    np.testing.assert_allclose(by_numpy, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(by_numpy.argmax(1), ref.argmax(1))


def test_bfloat16_is_refused_where_the_cpu_lacks_it(monkeypatch):
    monkeypatch.setattr(C, "native_bfloat16", lambda: False)
    with pytest.raises(ValueError, match="bfloat16"):
        C.InferenceNet(C.DigitClassifier(C.ClassifierConfig()).eval(), C.MNIST_STANDARDISE, bfloat16=True)
    with pytest.raises(ValueError, match="precision"):
        DigitReader("cnn", precision="float16")


@pytest.mark.skipif(not C.native_bfloat16(), reason="this CPU has no native bfloat16")
def test_bfloat16_reader_re_reads_near_ties_in_float32(mnist):
    reader = DigitReader("cnn", precision="bfloat16")
    images = mnist.test_images[:2000]
    net = reader.net
    x = torch.from_numpy(images)
    exact = net.float32(x).numpy()
    fast = net(x).numpy()
    top2 = np.sort(fast, axis=1)[:, -2:]
    close = top2[:, 1] - top2[:, 0] < C.TIE_MARGIN
    # near-ties are the float32 logits exactly; the rest are bfloat16 (different, but close)
    np.testing.assert_array_equal(fast[close], exact[close])
    assert not np.array_equal(fast[~close], exact[~close])
    np.testing.assert_allclose(fast, exact, atol=0.2)
    np.testing.assert_array_equal(reader(images)[0], exact.argmax(1))
    single = reader(images[:1])[0]  # below bfloat16_from: float32 throughout
    assert single[0] == exact[0].argmax()


def test_cache_reads_like_the_reader_through_repeats_duplicates_and_overflow(mnist):
    plain, cached = DigitReader("cnn"), DigitReader("cnn", cache_size=300)
    images = mnist.test_images
    batches = [images[:200], images[100:300], images[:50], np.concatenate([images[:40]] * 3), images[250:500]]
    for batch in batches:
        a, b = plain(batch), cached(batch)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert 0 < len(cached._cache) <= 300


def test_a_fingerprint_collision_is_a_miss_not_a_wrong_reading(mnist, monkeypatch):
    monkeypatch.setattr(ReadingCache, "fingerprints", lambda self, words: np.zeros(len(words), np.uint64))
    plain, cached = DigitReader("cnn"), DigitReader("cnn", cache_size=100)
    images = mnist.test_images[:64]  # every image has the same fingerprint now
    for _ in range(2):
        np.testing.assert_array_equal(plain(images)[0], cached(images)[0])
    assert len(cached._cache) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnn", "mlp"])
@pytest.mark.parametrize("precision", ["float32", "auto"])
def test_shipped_readers_give_the_float32_labels_on_the_whole_test_set(name, precision, mnist):
    reader = DigitReader(name, precision=precision)
    ref = reference_logits(reader.model, reader.preprocess, mnist.test_images)
    p = np.exp(ref - ref.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    one_by_one = np.array([reader(image)[0][0] for image in mnist.test_images])  # the numpy path
    np.testing.assert_array_equal(one_by_one, ref.argmax(1))
    whole = reader(mnist.test_images)
    in_256 = [np.concatenate(x) for x in zip(*(reader(b) for b in np.array_split(mnist.test_images, 40)), strict=True)]
    for labels, conf in (whole, in_256):
        np.testing.assert_array_equal(labels, ref.argmax(1))
        # bfloat16 (where "auto" picks it) moves a confidence by at most ~0.6% (measured: 0.55%)
        np.testing.assert_allclose(conf, p.max(1), atol=0.02 if reader.net.bfloat16 else 1e-5)


def test_keras_init_gives_glorot_uniform_weights_and_zero_biases():
    torch.manual_seed(0)
    model = C.DigitClassifier(C.ClassifierConfig(arch="mlp"))
    C.keras_init(model)
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            fan_out, fan_in = m.weight.shape
            bound = (6 / (fan_in + fan_out)) ** 0.5
            w = m.weight.detach()
            assert 0.95 * bound < float(w.abs().max()) <= bound
            assert float(w.std()) == pytest.approx(bound / 3**0.5, rel=0.05)
            assert torch.count_nonzero(m.bias) == 0
    _, cfg = C.recipe("mlp")  # the seed's tutorial: Keras' defaults, no augmentation
    assert (cfg.init, cfg.adam_eps, cfg.augment, cfg.batch_size, cfg.epochs) == ("keras", 1e-7, "none", 32, 5)
    with pytest.raises(ValueError, match="init"):
        C.TrainConfig(init="he")


@pytest.mark.slow
def test_shipped_mlp_is_in_the_tutorials_accuracy_range(mnist):
    labels, _ = DigitReader("mlp")(mnist.test_images)
    assert 0.975 <= (labels == mnist.test_labels).mean() <= 0.98


def test_a_reader_pickles_with_its_precision_and_cache_setting(mnist):
    import pickle

    reader = DigitReader("cnn", precision="auto", cache_size=10)
    again = pickle.loads(pickle.dumps(reader))
    assert (again.precision, again.cache_size, again.net.bfloat16) == ("auto", 10, C.native_bfloat16())
    np.testing.assert_array_equal(again(mnist.test_images[:100])[0], reader(mnist.test_images[:100])[0])
