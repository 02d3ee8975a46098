"""Warp, flow, occlusion masks, blending, temporal loss and warping error against known motion
and independent NumPy (float64) computations."""

import numpy as np
import pytest

from video_helpers import photo, translating_frames

pytest.importorskip("cv2")  # the `video` extra is part of `test`: this never skips in CI

from nst_tf.video.consistency import (blend_with_previous, occlusion_mask,  # noqa: E402
                                      warping_error)
from nst_tf.video.flow import estimate_flow  # noqa: E402
from nst_tf.video.warp import warp  # noqa: E402


def constant_flow(shape, dx, dy):
    flow = np.zeros(shape[:2] + (2,), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def test_warp_sign_lines_up_a_translated_frame():
    a, b = (f.astype(np.float32) / 255 for f in translating_frames(2, step=(3, 2)))
    # b's content sits 3 px left and 2 px up: a(p) = b(p - (3, 2)); the flow a -> b is (-3, -2).
    out, inside = warp(b, constant_flow(a.shape, -3, -2))
    assert np.array_equal(inside[2:, 3:], np.ones_like(inside[2:, 3:]))
    assert not inside[:2].any() and not inside[:, :3].any()
    np.testing.assert_allclose(out[inside], a[inside], atol=1e-6)
    wrong, _ = warp(b, constant_flow(a.shape, 3, 2))
    assert np.abs(wrong[inside] - a[inside]).mean() > 0.02


def test_warp_bilinear_matches_numpy_interpolation(rng):
    image = rng.random((7, 9, 3)).astype(np.float32)
    flow = rng.uniform(-1.5, 1.5, (7, 9, 2)).astype(np.float32)
    out, inside = warp(image, flow)
    for y in range(7):
        for x in range(9):
            sx, sy = x + float(flow[y, x, 0]), y + float(flow[y, x, 1])
            if not inside[y, x]:
                assert not (0 <= sx <= 8 and 0 <= sy <= 6)
                continue
            x0, y0 = min(int(np.floor(sx)), 7), min(int(np.floor(sy)), 5)
            fx, fy = sx - x0, sy - y0
            expected = ((1 - fx) * (1 - fy) * image[y0, x0].astype(np.float64)
                        + fx * (1 - fy) * image[y0, x0 + 1] + (1 - fx) * fy * image[y0 + 1, x0]
                        + fx * fy * image[y0 + 1, x0 + 1])
            np.testing.assert_allclose(out[y, x], expected, atol=1e-5)


def test_occlusion_mask_of_a_translation_is_the_entering_border():
    shape = (20, 30)
    backward = constant_flow(shape, 3, -2)   # frame t(p) = frame t-1(p + (3, -2))
    forward = constant_flow(shape, -3, 2)
    mask = occlusion_mask(backward, forward)
    expected = np.zeros(shape, np.float32)
    expected[2:, :27] = 1.0                    # p + (3, -2) inside the 30x20 frame
    np.testing.assert_array_equal(mask, expected)


def test_occlusion_mask_flags_inconsistent_flow_and_motion_boundaries():
    shape = (16, 16)
    backward = constant_flow(shape, 2, 0)
    forward = constant_flow(shape, -2, 0)
    forward[:, :8] = 0.0                       # the reverse flow disagrees on the left half
    mask = occlusion_mask(backward, forward, boundaries=False)
    # p + (2, 0) lands in the disagreeing half for x + 2 < 8; |w̃ + ŵ|² = 4 > 0.01·4 + 0.5.
    assert not mask[:, :6].any() and mask[:, 6:14].all() and not mask[:, 14:].any()
    step = constant_flow(shape, 0, 0)
    step[:, 8:, 0] = 4.0                       # a motion boundary at x = 8
    consistent = occlusion_mask(step, -step, boundaries=True)
    assert not consistent[:, 7:9].any() and consistent[:, :7].all()
    assert occlusion_mask(step, -step, boundaries=False)[:, 7:9].all()


def test_dis_flow_is_within_a_fifth_of_a_pixel_on_a_real_shift():
    image = photo()
    a = image[40:168, 40:168].astype(np.float32) / 255
    b = image[38:166, 43:171].astype(np.float32) / 255  # content moved 3 px left, 2 px down
    flow = estimate_flow(a, b)                           # a(p) = b(p + (-3, 2))
    core = flow[16:-16, 16:-16]
    error = np.sqrt((core[..., 0] + 3) ** 2 + (core[..., 1] - 2) ** 2)
    assert error.mean() < 0.2, error.mean()
    warped, _ = warp(b, flow)
    assert np.abs(warped[16:-16, 16:-16] - a[16:-16, 16:-16]).mean() < 0.02


def test_blend_with_previous_follows_the_mask():
    stylized = np.zeros((2, 3, 3), np.float32)
    warped = np.ones((2, 3, 3), np.float32)
    mask = np.array([[1, 0, 0.5], [0, 1, 1]], np.float32)
    out = blend_with_previous(stylized, warped, mask, strength=0.6, keep_statistics=False)
    np.testing.assert_allclose(out[..., 0], 0.6 * mask)
    rng = np.random.default_rng(1)
    stylized, warped = rng.random((2, 8, 9, 3)).astype(np.float32) * 0.5 + 0.2
    kept = blend_with_previous(stylized, warped, np.ones((8, 9)), strength=0.5)
    np.testing.assert_allclose(kept.mean((0, 1)), stylized.mean((0, 1)), atol=1e-5)
    np.testing.assert_allclose(kept.std((0, 1)), stylized.std((0, 1)), rtol=1e-4)
    raw = 0.5 * (stylized + warped)  # same pattern as the plain blend, contrast restored
    corr = np.corrcoef(kept[..., 0].ravel(), raw[..., 0].ravel())[0, 1]
    assert corr > 0.999
    with pytest.raises(ValueError, match="strength"):
        blend_with_previous(stylized, warped, mask, strength=1.5)


def numpy_warping_error(frames, shift):
    """Lai et al.'s error for a clip whose content moves by a whole-pixel ``shift`` per frame:
    V̂_{t+1}(p) = V_{t+1}(p - shift), valid where p - shift is inside; float64 slices."""
    dx, dy = shift
    errors = []
    for a, b in zip(frames[:-1], frames[1:]):
        a, b = a.astype(np.float64), b.astype(np.float64)
        h, w = a.shape[:2]
        diff = a[dy:, dx:] - b[:h - dy, :w - dx]
        errors.append(np.mean(diff ** 2))
    return float(np.mean(errors))


def test_warping_error_matches_an_independent_numpy_computation(rng):
    frames = [f.astype(np.float32) / 255 for f in translating_frames(5, step=(2, 1))]
    frames = [np.clip(f + 0.05 * rng.standard_normal(f.shape), 0, 1).astype(np.float32)
              for f in frames]  # independent per-frame noise: a flickering "stylization"
    index = {id(f): t for t, f in enumerate(frames)}

    def exact(a, b):  # frame t(p) = frame u(p - (u - t)·(2, 1))
        steps = index[id(b)] - index[id(a)]
        return constant_flow(a.shape, -2 * steps, -steps)

    got = warping_error(frames, flow=exact)
    assert got == pytest.approx(numpy_warping_error(frames, (2, 1)), rel=1e-5)
    pairs = warping_error(frames, flow=exact, per_pair=True)
    assert len(pairs) == 4 and np.mean(pairs) == pytest.approx(got)
    # Scored against the clean input's flow (DIS), the noise is what remains: ~2·0.05².
    clean = [f.astype(np.float32) / 255 for f in translating_frames(5, step=(2, 1))]
    dis = warping_error(frames, reference=clean)
    assert dis == pytest.approx(2 * 0.05 ** 2, rel=0.35)
    index.update({id(f): t for t, f in enumerate(clean)})
    assert warping_error(clean, flow=exact) < 1e-10


def test_warping_error_rejects_bad_sequences():
    from nst_tf.errors import ImageError

    one = [np.zeros((16, 16, 3), np.float32)]
    with pytest.raises(ImageError, match="at least two frames"):
        warping_error(one)
    with pytest.raises(ImageError, match="fewer frames"):
        warping_error(one * 3, reference=one * 2)
    frames = np.zeros((3, 16, 16, 3), np.float32)
    with pytest.raises(ImageError, match=r"must be \[T, H, W, 3\] frames, got shape \(16, 16, 3\)"):
        warping_error(frames[0])
    still = lambda a, b: np.zeros(a.shape[:2] + (2,), np.float32)  # noqa: E731
    with pytest.raises(ImageError, match=r"frame 2 has shape \(16, 8, 3\), frame 1 \(16, 16, 3\)"):
        warping_error([frames[0], frames[1], frames[2][:, :8]], flow=still)


def test_motion_boundaries_of_a_flow_two_pixels_tall():
    """Two samples are enough for a difference: rows whose vertical motion differs by 5 px are
    a boundary (|dv/dy|^2 = 25 against 0.01 |flow|^2 + 0.002 <= 0.252)."""
    from nst_tf.video.consistency import motion_boundaries

    flow = np.zeros((2, 3, 2), np.float32)
    flow[1, :, 1] = 5.0
    assert motion_boundaries(flow).all()
    assert not motion_boundaries(np.zeros((2, 3, 2), np.float32)).any()


def test_temporal_strength_is_a_number_in_the_closed_interval():
    from nst_tf.errors import ConfigError
    from nst_tf.video.consistency import check_strength

    for good in (0, 0.0, 0.5, 1, 1.0, np.float32(1.0)):
        check_strength(good)
    for bad in (-0.01, 1.01, True, "0.5", None, float("nan")):
        with pytest.raises(ConfigError, match=r"temporal strength must be a number in \[0, 1\]"):
            check_strength(bad)


def test_temporal_loss_matches_numpy(rng):
    from nst_tf.losses import temporal_loss

    x = rng.random((1, 5, 6, 3)).astype(np.float32)
    target = rng.random((1, 5, 6, 3)).astype(np.float32)
    mask = (rng.random((1, 5, 6)) > 0.4).astype(np.float32)
    expected = np.sum(mask[..., None].astype(np.float64) * (x - target.astype(np.float64)) ** 2)
    expected /= x.size
    assert float(temporal_loss(x, target, mask)) == pytest.approx(expected, rel=1e-5)


def test_progress_shows_frames_rate_and_eta(fake_clock):
    """Frames every 0.5 s after a first one of 4 s (the model's tracing): 2 fps, and the ETA of
    the frames left at that rate; a log gets the first line, every 10 % and the last."""
    import io

    from nst_tf.video.stylize import Progress

    log = io.StringIO()
    bar = Progress(20, stream=log, clock=fake_clock)
    for done, seconds in enumerate([4.0] + [0.5] * 19, 1):
        fake_clock.advance(seconds)
        bar.update(done)
    lines = log.getvalue().splitlines()
    assert lines[0] == "frame 1/20  0.25 fps  ETA 1:16"          # 19 frames at 4 s
    assert lines[1] == "frame 2/20  2.00 fps  ETA 0:09"          # 18 frames at 0.5 s
    assert lines[-1] == "frame 20/20  2.00 fps"
    assert [line.split()[1] for line in lines] == ["1/20", "2/20", "4/20", "6/20", "8/20",
                                                   "10/20", "12/20", "14/20", "16/20", "18/20",
                                                   "20/20"]
