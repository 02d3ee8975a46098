"""Independent NumPy / SciPy float64 implementations of the losses in nst_tf.losses.

Written from the formulas (see the nst_tf.losses docstring), not from the TF code: Gram by
einsum, sorting by argsort per projection, quantile resampling by numpy.interp, matrix square
roots by scipy.linalg.sqrtm.
"""

import warnings

import numpy as np
import scipy.linalg


def np_gram(f):
    b, h, w, c = f.shape
    flat = f.reshape(b, h * w, c)
    return np.einsum("bnc,bnd->bcd", flat, flat) / (h * w)


def np_gram_loss_and_grad(f, target):
    b, h, w, c = f.shape
    diff = np_gram(f) - target
    loss = np.mean(diff ** 2)
    d_gram = 2 * diff / diff.size
    flat = f.reshape(b, h * w, c)
    d_flat = np.einsum("bnc,bcd->bnd", flat, d_gram + np.transpose(d_gram, (0, 2, 1))) / (h * w)
    return loss, d_flat.reshape(f.shape)


def np_tv_and_grad(x, kind):
    down = x[:, 1:] - x[:, :-1]
    right = x[:, :, 1:] - x[:, :, :-1]
    grad = np.zeros_like(x)
    if kind == "l2":
        loss = np.mean(down ** 2) + np.mean(right ** 2)
        g_down, g_right = 2 * down / down.size, 2 * right / right.size
    else:
        loss = np.mean(np.abs(down)) + np.mean(np.abs(right))
        g_down, g_right = np.sign(down) / down.size, np.sign(right) / right.size
    grad[:, 1:] += g_down
    grad[:, :-1] -= g_down
    grad[:, :, 1:] += g_right
    grad[:, :, :-1] -= g_right
    return loss, grad


def np_sliced_wasserstein_and_grad(f, target, directions):
    b, h, w, c = f.shape
    n = h * w
    proj = f.reshape(b, n, c) @ directions                      # [B, N, P]
    tproj = target.reshape(target.shape[0], -1, c) @ directions  # [Bt, M, P]
    m = tproj.shape[1]
    p = directions.shape[1]
    q_img = (np.arange(n) + 0.5) / n
    q_tgt = (np.arange(m) + 0.5) / m
    loss = 0.0
    d_proj = np.zeros_like(proj)
    for i in range(b):
        for k in range(p):
            order = np.argsort(proj[i, :, k], kind="stable")
            ref = np.interp(q_img, q_tgt, np.sort(tproj[i % target.shape[0], :, k]))
            diff = proj[i, order, k] - ref
            loss += np.sum(diff ** 2)
            d_proj[i, order, k] = 2 * diff
    count = b * p * n
    grad = (d_proj / count) @ directions.T
    return loss / count, grad.reshape(f.shape)


def np_gaussian_w2(f, target):
    """W2² with SciPy's sqrtm, batch mean; a different algorithm from the TF eigen route."""
    out = []
    for i in range(f.shape[0]):
        x = f[i].reshape(-1, f.shape[-1])
        y = target[i % target.shape[0]].reshape(-1, f.shape[-1])
        mx, my = x.mean(0), y.mean(0)
        cx = (x - mx).T @ (x - mx) / len(x)
        cy = (y - my).T @ (y - my) / len(y)
        with warnings.catch_warnings():  # singular Σ (dead ReLU channels): sqrtm still fine
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            root = np.real(scipy.linalg.sqrtm(cy))
            cross = np.real(scipy.linalg.sqrtm(root @ cx @ root))
        out.append(np.sum((mx - my) ** 2) + np.trace(cx) + np.trace(cy) - 2 * np.trace(cross))
    return np.mean(out)


def np_mean_std_loss(f, target, eps=1e-5):
    def stats(a):
        flat = a.reshape(a.shape[0], -1, a.shape[-1])
        return flat.mean(1), np.sqrt(flat.var(1) + eps)
    m1, s1 = stats(f)
    m2, s2 = stats(target)
    return np.mean((m1 - m2) ** 2) + np.mean((s1 - s2) ** 2)


