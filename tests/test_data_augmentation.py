"""Pad-crop-flip augmentation vs. an independent NumPy reference with the same offsets."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import data


def _reference(x, top, left, flipped, pad, fill=0.0):
    """Explicit per-pixel loops: out[i, r, c] = x[i, r + top - pad, c' + left - pad] or fill."""
    b, h, w, _ = x.shape
    out = np.full_like(x, fill)
    for i in range(b):
        for r in range(h):
            for c in range(w):
                cc = w - 1 - c if flipped[i] else c  # flip after the crop
                src_r, src_c = r + top[i] - pad, cc + left[i] - pad
                if 0 <= src_r < h and 0 <= src_c < w:
                    out[i, r, c] = x[i, src_r, src_c]
    return out


@pytest.mark.parametrize("pad,flip,shape", [(4, True, (6, 8, 8, 3)), (2, False, (5, 5, 7, 1)),
                                            (3, True, (4, 6, 6, 2))])
def test_matches_numpy_reference(pad, flip, shape):
    key = jax.random.key(7)
    x = np.random.default_rng(0).random(shape).astype(np.float32) + 0.1  # no zeros in x
    out = np.asarray(data.augment_pad_crop_flip(key, jnp.asarray(x), pad=pad, flip=flip))
    top, left, flipped = map(np.asarray, data.pad_crop_flip_offsets(key, shape[0], pad=pad, flip=flip))
    np.testing.assert_array_equal(out, _reference(x, top, left, flipped, pad))
    assert out.shape == x.shape and out.dtype == np.float32


def test_jit_and_draw_distribution():
    key = jax.random.key(0)
    x = jnp.asarray(np.random.default_rng(1).random((256, 8, 8, 3)).astype(np.float32))
    aug = jax.jit(functools.partial(data.augment_pad_crop_flip, pad=4, flip=True))
    np.testing.assert_array_equal(np.asarray(aug(key, x)), np.asarray(data.augment_pad_crop_flip(key, x)))
    top, left, flipped = map(np.asarray, data.pad_crop_flip_offsets(key, 256, pad=4, flip=True))
    # Offsets uniform over {0..8}: all 9 values appear; flips about half.
    assert set(top.tolist()) == set(range(9)) and set(left.tolist()) == set(range(9))
    assert 0.35 < flipped.mean() < 0.65
    # Per-example draws: the examples do not all get the same shift.
    assert len(set(zip(top.tolist(), left.tolist()))) > 20
    # Different keys, different augmentations.
    assert not np.array_equal(np.asarray(aug(jax.random.key(1), x)), np.asarray(aug(key, x)))


def test_identity_without_pad_or_flip_and_zero_fill():
    x = jnp.asarray(np.random.default_rng(2).random((3, 4, 4, 1)).astype(np.float32))
    np.testing.assert_array_equal(
        np.asarray(data.augment_pad_crop_flip(jax.random.key(0), x, pad=0, flip=False)), np.asarray(x)
    )
    # Explicit offsets: shift down-right by the full pad -> zero rows/cols on top/left.
    out = np.asarray(data.pad_crop_flip(x, jnp.array([0, 2, 4]), jnp.array([0, 2, 4]),
                                        jnp.array([False, False, True]), pad=2))
    np.testing.assert_array_equal(out[0, 2:, 2:], np.asarray(x)[0, :2, :2])
    assert np.all(out[0, :2] == 0) and np.all(out[0, :, :2] == 0)
    np.testing.assert_array_equal(out[1], np.asarray(x)[1])
    np.testing.assert_array_equal(out[2, :2, 2:][:, ::-1], np.asarray(x)[2, 2:, 2:])


def test_bad_inputs():
    with pytest.raises(ValueError, match="x must"):
        data.augment_pad_crop_flip(jax.random.key(0), jnp.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="pad"):
        data.augment_pad_crop_flip(jax.random.key(0), jnp.zeros((2, 4, 4, 1)), pad=-1)


def test_fill_value_and_run_options():
    """``fill`` pads with a pixel value (SGR: mid-range 0.5); ``augmentation`` builds the train
    step's function from the config keys ``augment`` / ``augment_kwargs``."""
    key = jax.random.key(3)
    x = np.random.default_rng(4).random((5, 6, 6, 3)).astype(np.float32)
    out = np.asarray(data.augment_pad_crop_flip(key, jnp.asarray(x), pad=3, fill=0.5))
    top, left, flipped = map(np.asarray, data.pad_crop_flip_offsets(key, 5, pad=3, flip=True))
    np.testing.assert_array_equal(out, _reference(x, top, left, flipped, 3, fill=0.5))
    assert np.any(out == 0.5)
    assert data.augmentation(False, {"fill": 0.5}) is None
    aug = data.augmentation(True, {"pad": 3, "fill": 0.5, "flip": False})
    top, left, _ = map(np.asarray, data.pad_crop_flip_offsets(key, 5, pad=3, flip=False))
    np.testing.assert_array_equal(np.asarray(aug(key, jnp.asarray(x))),
                                  _reference(x, top, left, np.zeros(5, bool), 3, fill=0.5))
    with pytest.raises(ValueError, match="augment_kwargs"):
        data.augmentation(True, {"crop": 28})
    with pytest.raises(ValueError, match="augment_kwargs.fill"):
        data.augmentation(True, {"fill": "mid"})
