"""Faster equivalent forms of the convolutions of feed-forward networks (pure functions on a
kernel; :class:`~nst_tf.layers.conv.ReflectConv2D` chooses them with ``fast=True``).

* :func:`upsample2_conv3`: "upsample x2 → reflect pad 1 → 3x3 conv" as one 2x2 sub-pixel conv
  on the low-resolution input (4/9 of the multiply-adds, no upsampled copy);
* :func:`space_to_depth_conv`: a stride-1 conv with few output channels (the 9x9 RGB output
  conv) on the space-to-depth grid, where it fills the SIMD lanes.

Both sum the same products in another order, so they equal the direct form up to float rounding.

Example:
    >>> import numpy as np, tensorflow as tf
    >>> x, k = tf.random.normal([1, 5, 6, 2]), tf.random.normal([3, 3, 2, 4])
    >>> from nst_tf.layers.padding import reflect_pad
    >>> from nst_tf.layers.resampling import nearest_upsample
    >>> direct = tf.nn.conv2d(reflect_pad(nearest_upsample(x, 2), 1, 1), k, 1, "VALID")
    >>> bool(np.allclose(upsample2_conv3(x, k), direct, atol=1e-5))
    True
"""

import tensorflow as tf


def upsample2_conv3_kernel(kernel):
    """Kernel ``[2, 2, Cin, 4*Cout]`` that turns "upsample x2 → reflect pad 1 → 3x3 conv" into
    one 2x2 conv on the edge-padded low-resolution input (see :func:`upsample2_conv3`).

    Along one axis, output pixel ``2i`` reads low-res pixels ``i, i+1`` (of the input padded by
    one edge pixel) with taps ``[w0, w1 + w2]`` and pixel ``2i - 1`` reads the same two with
    ``[w0 + w1, w2]``. Output channels are ordered (row phase, column phase, Cout) with the odd
    phase first, for ``tf.nn.depth_to_space``.
    """
    def phases(w):  # w: taps along axis 0 -> [(odd tap0, odd tap1), (even tap0, even tap1)]
        return ((w[0] + w[1], w[2]), (w[0], w[1] + w[2]))

    taps = [[None, None], [None, None]]                       # taps[t][s]: [Cin, 4*Cout]
    rows = phases(kernel)                                     # rows[p][t]: [3, Cin, Cout]
    for t in range(2):
        for s in range(2):
            parts = []
            for p in range(2):
                cols = phases(rows[p][t])                     # cols[q][s]: [Cin, Cout]
                parts += [cols[0][s], cols[1][s]]
            taps[t][s] = tf.concat(parts, axis=-1)
    return tf.stack([tf.stack(taps[0]), tf.stack(taps[1])])


def upsample2_conv3(x, kernel):
    """``conv3x3_valid(reflect_pad(nearest_upsample(x, 2), 1), kernel)`` without materializing
    the upsampled image: 4/9 of the multiply-adds and no large pad/resize copies.

    Reflect-padding the upsampled image by one pixel equals upsampling ``x`` edge-padded by one
    pixel (``SYMMETRIC``), so every output pixel is a 2x2 window of that padded input with one of
    four phase kernels (:func:`upsample2_conv3_kernel`). The results equal the direct form up to
    float rounding (taps are pre-summed).
    """
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    phases = tf.nn.conv2d(padded, upsample2_conv3_kernel(kernel), 1, "VALID")   # [B,H+1,W+1,4C]
    return tf.nn.depth_to_space(phases, 2)[:, 1:-1, 1:-1, :]


def space_to_depth_kernel(kernel, block):
    """Kernel ``[kk, kk, block²·Cin, block²·Cout]`` of a stride-1 ``k x k`` conv rewritten on the
    ``tf.nn.space_to_depth(block)`` grid, ``kk = ceil((k - 1) / block) + 1`` (zero taps where a
    phase pair does not meet). Channel orders follow ``space_to_depth`` / ``depth_to_space``.
    """
    k = int(kernel.shape[0])
    taps = -(-(k - 1) // block) + 1
    # index[d, p, a]: kernel row read by block offset d, input phase p, output phase a (k: zero).
    index = [[[block * d + p - a if 0 <= block * d + p - a < k else k
               for a in range(block)] for p in range(block)] for d in range(taps)]
    padded = tf.pad(kernel, [[0, 1], [0, 1], [0, 0], [0, 0]])      # row/column k is zero
    rows = tf.gather(padded, index, axis=0)                        # [kk, p, a, k+1, Cin, Cout]
    both = tf.gather(rows, index, axis=3)                          # [kk, p, a, kk, q, b, Cin, Cout]
    both = tf.transpose(both, [0, 3, 1, 4, 6, 2, 5, 7])            # [kk, kk, p, q, Cin, a, b, Cout]
    cin, cout = int(kernel.shape[2]), int(kernel.shape[3])
    return tf.reshape(both, [taps, taps, block * block * cin, block * block * cout])


def space_to_depth_conv(padded, kernel, block=4):
    """Stride-1 VALID conv of ``padded`` computed on the space-to-depth grid.

    For convs with few output channels (the 9x9 RGB output conv) the direct kernel uses a
    fraction of the SIMD lanes; on the ``block x block`` grid the same conv has ``block²`` times
    more input and output channels and a ``kk x kk`` kernel, which runs several times faster on
    the CPU despite the zero taps. The input is zero-extended to a multiple of ``block`` (those
    rows only reach outputs that are cropped away); the result equals ``tf.nn.conv2d(padded,
    kernel, 1, "VALID")`` up to float rounding.
    """
    k = int(kernel.shape[0])
    taps = -(-(k - 1) // block) + 1
    shape = tf.shape(padded)
    out_h, out_w = shape[1] - k + 1, shape[2] - k + 1
    reach = block * (taps - 1)                                     # rows consumed beyond the output
    ext_h = (-(out_h + reach)) % block + (out_h + reach) - shape[1]
    ext_w = (-(out_w + reach)) % block + (out_w + reach) - shape[2]
    grid = tf.pad(padded, [[0, 0], [0, ext_h], [0, ext_w], [0, 0]])
    out = tf.nn.conv2d(tf.nn.space_to_depth(grid, block),
                       space_to_depth_kernel(kernel, block), 1, "VALID")
    return tf.nn.depth_to_space(out, block)[:, :out_h, :out_w, :]
