"""tinyzo.data corruptions: determinism, dtype/shape/range, severity order, what each one does, bad input."""

import io
from pathlib import Path

import numpy as np
import pytest

import tinyzo
import tinyzo.data as td
from tinyzo.data.corruptions import SEVERITY_PARAMS

NAMES = [
    "gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise",
    "defocus_blur", "gaussian_blur", "motion_blur", "zoom_blur",
    "brightness", "contrast", "fog", "pixelate", "jpeg", "elastic_transform",
    "rotate", "shear", "translate", "scale",
]
# Corruptions that draw random numbers (the others ignore the seed).
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "motion_blur", "fog",
          "elastic_transform", "rotate", "shear", "translate"}


@pytest.fixture(scope="module")
def digits():
    return td.load("digits").x_test  # uint8[360, 8, 8]


def test_names():
    assert td.corruptions() == NAMES
    assert list(SEVERITY_PARAMS) == NAMES and all(len(v) == 5 for v in SEVERITY_PARAMS.values())


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(name, digits):
    x = digits[:40]
    a, b = td.corrupt(x, name, 3, seed=7), td.corrupt(x, name, 3, seed=7)
    np.testing.assert_array_equal(a, b)
    c = td.corrupt(x, name, 3, seed=8)
    if name in RANDOM:
        assert not np.array_equal(a, c)
    else:
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(x, digits[:40])  # the input is not modified


@pytest.mark.parametrize("name", NAMES)
def test_severity_increases_the_change_on_digits(name, digits):
    """Mean |corrupted - clean| on the 360 bundled test digits grows strictly with severity."""
    change = [np.abs(td.corrupt(digits, name, s, seed=0).astype(np.float64) - digits).mean() for s in range(1, 6)]
    assert change[0] > 0, change
    assert all(np.diff(change) > 0), change


@pytest.mark.parametrize("name", NAMES)
def test_dtype_shape_range_preserved(name, digits):
    rgb = np.repeat(digits[:6, :, :, None], 3, axis=3)
    rgb[..., 1] //= 2  # make the channels differ
    cases = [digits[:6], digits[:6, :, :, None], rgb,
             digits[:6].astype(np.float32) / 255, digits[:6].astype(np.float64) / 255,
             td.fit_to_model(digits[:4], (32, 32, 3))]
    for x in cases:
        y = td.corrupt(x, name, 5, seed=1)
        assert y.dtype == x.dtype and y.shape == x.shape
        if x.dtype != np.uint8:
            assert y.min() >= 0 and y.max() <= 1
    empty = digits[:0]
    assert td.corrupt(empty, name, 1).shape == empty.shape


def _moments(img):
    """Centroid (y, x) and the orientation (radians) of the principal axis of a float image."""
    h, w = img.shape
    yy, xx = np.mgrid[:h, :w]
    m = img.sum()
    cy, cx = (img * yy).sum() / m, (img * xx).sum() / m
    myy, mxx = (img * (yy - cy) ** 2).sum() / m, (img * (xx - cx) ** 2).sum() / m
    mxy = (img * (yy - cy) * (xx - cx)).sum() / m
    return cy, cx, 0.5 * np.arctan2(2 * mxy, mxx - myy), myy + mxx


def _bar(n=1, size=33):
    x = np.zeros((n, size, size), np.float32)
    c = size // 2
    x[:, c - 1: c + 2, 6: size - 6] = 1.0  # a horizontal bar through the centre
    return x


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_rotate_turns_a_bar_by_the_severity_angle(severity):
    x = _bar(8)
    y = td.corrupt(x, "rotate", severity, seed=severity)
    angle = SEVERITY_PARAMS["rotate"][severity - 1]
    for img in y:
        _, _, theta, _ = _moments(img.astype(np.float64))
        assert abs(abs(theta) - angle) < 0.02, (theta, angle)  # bilinear resampling error on a 33x33 bar


def test_translate_moves_the_centroid_by_the_table_shift():
    x = np.zeros((6, 32, 32), np.float32)
    x[:, 12:20, 13:19] = 1.0
    y = td.corrupt(x, "translate", 4, seed=3)
    shift = SEVERITY_PARAMS["translate"][3] * 32
    for img in y:
        cy, cx, _, _ = _moments(img.astype(np.float64))
        # bilinear interpolation keeps the first moment exactly while nothing leaves the image
        assert abs(abs(cy - 15.5) - shift) < 1e-4 and abs(abs(cx - 15.5) - shift) < 1e-4


def test_scale_shrinks_about_the_centre():
    x = np.zeros((1, 33, 33), np.float32)
    x[:, 6:27, 6:27] = 1.0
    for s in range(1, 6):
        f = SEVERITY_PARAMS["scale"][s - 1]
        cy, cx, _, spread = _moments(td.corrupt(x, "scale", s)[0].astype(np.float64))
        _, _, _, spread0 = _moments(x[0].astype(np.float64))
        assert abs(cy - 16) < 1e-6 and abs(cx - 16) < 1e-6
        assert abs(np.sqrt(spread / spread0) - f) < 0.03  # pixel-grid discretisation of the edges


def test_shear_tilts_vertical_lines():
    x = np.zeros((4, 33, 33), np.float32)
    x[:, 6:27, 15:18] = 1.0  # a vertical bar
    for img in td.corrupt(x, "shear", 2, seed=0):
        _, _, theta, _ = _moments(img.astype(np.float64))
        # a vertical line x = c becomes x = c -+ k (y - c): its angle to the x axis is atan(1 / k)
        assert abs(abs(theta) - np.arctan2(1, SEVERITY_PARAMS["shear"][1])) < 0.03


def test_intensity_corruptions_follow_their_formulas():
    black = np.zeros((2, 8, 8), np.uint8)
    for s, c in enumerate(SEVERITY_PARAMS["brightness"], 1):
        np.testing.assert_array_equal(td.corrupt(black, "brightness", s), np.full_like(black, np.floor(c * 255 + .5)))
    rgb = np.zeros((1, 4, 4, 3), np.float32)
    rgb[..., 0], rgb[..., 1] = 0.5, 0.25  # HSV: value 0.5, hue and saturation kept when brightened
    y = td.corrupt(rgb, "brightness", 5)
    np.testing.assert_allclose(y[..., 0], 0.8, rtol=1e-6)
    np.testing.assert_allclose(y[..., 1], 0.4, rtol=1e-6)
    np.testing.assert_allclose(y[..., 2], 0.0)
    x = np.linspace(0, 1, 64, dtype=np.float64).reshape(1, 8, 8)
    y = td.corrupt(x, "contrast", 2)
    np.testing.assert_allclose(y - 0.5, (x - 0.5) * SEVERITY_PARAMS["contrast"][1], atol=1e-6)  # float32 math
    flat = np.full((3, 16, 16), 0.5, np.float32)
    for name in ("defocus_blur", "gaussian_blur", "motion_blur", "zoom_blur", "pixelate", "contrast", "elastic_transform"):
        np.testing.assert_allclose(td.corrupt(flat, name, 5), flat, atol=1e-6, err_msg=name)


def test_noise_statistics():
    """Noise levels as the table says (bounds: > 10 standard errors of the estimates on 40,960 samples)."""
    x = np.full((10, 64, 64), 0.5, np.float32)
    for s, sd in enumerate(SEVERITY_PARAMS["gaussian_noise"], 1):
        d = td.corrupt(x, "gaussian_noise", s, seed=s) - x
        assert abs(d.std() / sd - 1) < 0.05 and abs(d.mean()) < 0.01
    for s, amount in enumerate(SEVERITY_PARAMS["impulse_noise"], 1):
        y = td.corrupt(x, "impulse_noise", s, seed=s)
        assert set(np.unique(y)) <= {0.0, 0.5, 1.0}
        assert abs((y != 0.5).mean() - amount) < 0.01
        assert abs((y == 1).mean() - (y == 0).mean()) < 0.01
    for s, c in enumerate(SEVERITY_PARAMS["shot_noise"], 1):
        y = td.corrupt(x, "shot_noise", s, seed=s).astype(np.float64)
        assert abs(y.mean() - 0.5) < 0.01 and abs(y.var() / (0.5 / c) - 1) < 0.1  # Poisson: var = mean / c
    for s, sd in enumerate(SEVERITY_PARAMS["speckle_noise"], 1):
        d = td.corrupt(x, "speckle_noise", s, seed=s) - x
        assert abs(d.std() / (0.5 * sd) - 1) < 0.05


def test_jpeg_matches_pillow():
    """Our block-DCT quantization against libjpeg (through Pillow) at the same quality, 4:4:4, no subsampling."""
    from PIL import Image
    from scipy import ndimage

    rng = np.random.default_rng(0)
    gray = ndimage.gaussian_filter(rng.random((64, 64)), 2)
    gray = ((gray - gray.min()) / np.ptp(gray) * 255).astype(np.uint8)
    rgb = np.stack([gray, gray[::-1], gray[:, ::-1]], axis=-1)
    for img in (gray, rgb):
        for s, q in enumerate(SEVERITY_PARAMS["jpeg"], 1):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, "JPEG", quality=q, subsampling=0)
            ref = np.asarray(Image.open(buf)).astype(np.float64)
            ours = td.corrupt(img[None], "jpeg", s)[0].astype(np.float64)
            err = np.abs(ref - img).mean()
            # libjpeg uses an integer DCT and rounds between stages: the two agree to a fraction
            # of the compression error itself.
            assert np.abs(ours - ref).mean() < 0.25 * err, (img.ndim, q)


@pytest.mark.parametrize("bad", [0, 6, -1, 2.0, True, "3", None])
def test_bad_severity(bad, digits):
    with pytest.raises(td.DataError, match="severity must be an integer 1..5"):
        td.corrupt(digits[:2], "fog", bad)


def test_numpy_integer_severity_is_accepted(digits):
    np.testing.assert_array_equal(td.corrupt(digits[:2], "fog", np.int64(3)), td.corrupt(digits[:2], "fog", 3))


def test_bad_name(digits):
    with pytest.raises(td.DataError, match="unknown corruption 'gausian_noise'.*did you mean 'gaussian_noise'") as e:
        td.corrupt(digits[:2], "gausian_noise", 1)
    assert all(n in str(e.value) for n in NAMES)
    assert isinstance(e.value, tinyzo.TinyzoError)
    with pytest.raises(td.DataError, match="unknown corruption"):
        td.corrupt(digits[:2], "snow", 1)


@pytest.mark.parametrize("x, match", [
    (np.zeros((2, 8, 8), np.int8), "pre-quantized features"),
    (np.zeros((2, 8, 8), np.int16), "dtype int16 not supported"),
    (np.zeros((2, 8, 8), np.int32), "dtype int32 not supported"),
    (np.full((2, 8, 8), 1.5, np.float32), r"in \[0, 1\]"),
    (np.full((2, 8, 8), np.nan, np.float32), r"in \[0, 1\]"),
    (np.zeros((8, 8), np.uint8), "shape"),
    (np.zeros((2, 8, 8, 2), np.uint8), "C 1 or 3"),
    ([[[0]]], "numpy array"),
])
def test_bad_images(x, match):
    with pytest.raises(td.DataError, match=match):
        td.corrupt(x, "gaussian_noise", 1)


def test_every_corruption_is_documented():
    doc = (Path(__file__).parents[1] / "docs" / "data.md").read_text()
    for name in NAMES:
        assert f"`{name}`" in doc, name
