"""2-d convolution (NCHW input, OIHW weight, groups) as im2col + one large float GEMM.

The patches of all images are gathered into
``cols[c, kh, kw, n, oh, ow] = x_pad[n, c, oh*s + kh*d, ow*s + kw*d]`` (eq. 1). With
P = N*OH*OW output pixels and K = C/G*KH*KW taps per group g, the convolution is one matrix
product per group, written with the pixels as rows:

    Y[g] (P, O/G) = cols[g]^T (P, K) @ W[g]^T (K, O/G)                                 (eq. 2)

and its backward is two more: ``dW[g]^T (K, O/G) = cols[g] (K, P) @ dY[g] (P, O/G)`` and
``dcols[g] (P, K) = dY[g] (P, O/G) @ W[g] (O/G, K)``, after which ``col2im`` adds ``dcols``
back onto the padded input (the adjoint of eq. 1: each patch entry adds into the pixel it was
copied from).

NOTE: the orientation matters for speed. OpenBLAS sgemm is 4-30x faster (measured, see
docs/training.md) when the long pixel axis P is the row axis of the output than when it is the
shared inner axis or the column axis, so every product above keeps P as rows.
"""

from __future__ import annotations

import numba
import numpy as np

from npquant.nn.tensor import Function, Tensor


def _pair(v: int | tuple[int, int], name: str) -> tuple[int, int]:
    """(v, v) for an int, or the 2-tuple itself; a TypeError/ValueError names the argument."""
    if isinstance(v, int | np.integer) and not isinstance(v, bool):
        return int(v), int(v)
    if isinstance(v, tuple | list) and len(v) == 2 and all(
        isinstance(e, int | np.integer) and not isinstance(e, bool) for e in v
    ):
        return int(v[0]), int(v[1])
    raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """floor((size + 2p - d(k-1) - 1) / s) + 1, the PyTorch formula."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def im2col(xp: np.ndarray, kh: int, kw: int, stride: tuple[int, int],
           dilation: tuple[int, int], oh: int, ow: int) -> np.ndarray:
    """Gather patches of the padded input ``xp`` (N, C, Hp, Wp) into (C, KH, KW, N, OH, OW), eq. 1.

    One strided slice copy per kernel tap (KH*KW NumPy copies), no Python loop over pixels.
    """
    n, c = xp.shape[:2]
    (sh, sw), (dh, dw) = stride, dilation
    xt = xp.transpose(1, 0, 2, 3)
    cols = np.empty((c, kh, kw, n, oh, ow), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = xt[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                               j * dw: j * dw + sw * (ow - 1) + 1: sw]
    return cols


def col2im(dcols: np.ndarray, hp: int, wp: int, stride: tuple[int, int],
           dilation: tuple[int, int]) -> np.ndarray:
    """Adjoint of ``im2col``: add patches (G, N, OH, OW, C/G, KH, KW) back into (N, C, Hp, Wp)."""
    g, n, oh, ow, cg, kh, kw = dcols.shape
    dxp = np.zeros((n, g * cg, hp, wp), dtype=dcols.dtype)
    _col2im_kernel(np.ascontiguousarray(dcols), stride[0], stride[1], dilation[0], dilation[1],
                   dxp)
    return dxp


@numba.njit(cache=True)
def _col2im_kernel(dcols, sh, sw, dh, dw, dxp):
    """dxp[n, g*Cg + c, y*sh + i*dh, x*sw + j*dw] += dcols[g, n, y, x, c, i, j].

    A plain loop in the memory order of ``dcols``; overlapping patches (stride < kernel) hit
    the same pixel and are summed. (The NumPy version, one strided add per tap, was 10x
    slower.)
    """
    g_len, n_len, oh, ow, cg, kh, kw = dcols.shape
    for g in range(g_len):
        for n in range(n_len):
            for y in range(oh):
                for x in range(ow):
                    for c in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                dxp[n, g * cg + c, y * sh + i * dh, x * sw + j * dw] += \
                                    dcols[g, n, y, x, c, i, j]


INFERENCE_CHUNK = 64  # images per im2col + GEMM when no gradient is needed (Conv2dFn.forward)


def _bmm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched a @ b over the group axis; one plain 2-d BLAS call when there is one group."""
    if a.shape[0] == 1:
        return (a[0] @ b[0])[None]
    return np.matmul(a, b)


class Conv2dFn(Function):
    """y = conv2d(x, w) + b with stride, zero padding, dilation and groups (eq. 2)."""

    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation, groups):
        chunk = INFERENCE_CHUNK
        if not any(ctx.needs_input_grad) and x.shape[0] > chunk:
            # Inference keeps nothing for a backward: run the batch a chunk at a time, so that
            # the patch matrix stays small (at batch 1000 the ResNet's first 3x3 layers would
            # gather 226 MB of patches per call). Each output row is the same dot product
            # (eq. 2) either way.
            return np.concatenate([
                Conv2dFn.forward(ctx, x[s:s + chunk], w, b, stride, padding, dilation, groups)
                for s in range(0, x.shape[0], chunk)])
        n, c, h, wd = x.shape
        o, cg, kh, kw = w.shape
        ph, pw = padding
        oh = conv_output_size(h, kh, stride[0], ph, dilation[0])
        ow = conv_output_size(wd, kw, stride[1], pw, dilation[1])
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        cols = im2col(xp, kh, kw, stride, dilation, oh, ow)
        colsg = cols.reshape(groups, cg * kh * kw, n * oh * ow)      # (G, K, P)
        wg = w.reshape(groups, o // groups, cg * kh * kw)            # (G, O/G, K)
        y_rows = _bmm(colsg.transpose(0, 2, 1), wg.transpose(0, 2, 1))  # eq. 2: (G, P, O/G)
        y = y_rows.reshape(groups, n, oh, ow, o // groups).transpose(1, 0, 4, 2, 3)
        y = y.reshape(n, o, oh, ow)  # a copy into NCHW
        if b is not None:
            y += b.reshape(1, o, 1, 1)
        ctx.colsg, ctx.wg, ctx.w_shape = colsg, wg, w.shape
        ctx.xp_shape, ctx.x_shape = xp.shape, x.shape
        ctx.stride, ctx.padding, ctx.dilation, ctx.groups = stride, padding, dilation, groups
        return y

    @staticmethod
    def backward(ctx, grad):
        groups = ctx.groups
        o, cg, kh, kw = ctx.w_shape
        n, _, oh, ow = grad.shape
        # dY with pixels as rows, (G, P, O/G): an NHWC copy viewed per group.
        g_rows = np.ascontiguousarray(grad.transpose(0, 2, 3, 1)).reshape(n * oh * ow, groups, -1)
        g_rows = g_rows.transpose(1, 0, 2)
        dx = dw = db = None
        if ctx.needs_input_grad[1]:
            dw = _bmm(ctx.colsg, g_rows).transpose(0, 2, 1).reshape(ctx.w_shape)
        if len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2]:
            db = grad.sum(axis=(0, 2, 3))
        if ctx.needs_input_grad[0]:
            dcols = _bmm(g_rows, ctx.wg).reshape(groups, n, oh, ow, cg, kh, kw)
            dxp = col2im(dcols, ctx.xp_shape[2], ctx.xp_shape[3], ctx.stride, ctx.dilation)
            ph, pw = ctx.padding
            dx = np.ascontiguousarray(
                dxp[:, :, ph: ph + ctx.x_shape[2], pw: pw + ctx.x_shape[3]])
        return (dx, dw) if len(ctx.needs_input_grad) == 2 else (dx, dw, db)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, *,
           stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
           dilation: int | tuple[int, int] = 1, groups: int = 1) -> Tensor:
    """2-d cross-correlation as ``torch.nn.functional.conv2d``: x (N,C,H,W), weight (O,C/G,KH,KW).

    Padding is zero padding (real 0). Raises ValueError on a shape mismatch, printing both
    shapes, and on an empty output.
    """
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    dilation = _pair(dilation, "dilation")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(f"stride {stride} and dilation {dilation} must be >= 1, "
                         f"padding {padding} >= 0")
    if x.ndim != 4:
        raise ValueError(f"conv2d input must be 4-d NCHW, got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d weight must be 4-d OIHW, got shape {weight.shape}")
    o, cg, kh, kw = weight.shape
    if not isinstance(groups, int) or groups < 1 or o % groups:
        raise ValueError(f"groups={groups!r} must be a positive int dividing out_channels {o}")
    if x.shape[1] != cg * groups:
        raise ValueError(f"conv2d input shape {x.shape} has {x.shape[1]} channels but weight "
                         f"shape {weight.shape} with groups={groups} expects {cg * groups}")
    if bias is not None and bias.shape != (o,):
        raise ValueError(f"conv2d bias shape {bias.shape} != ({o},) for weight {weight.shape}")
    if x.dtype != weight.dtype:
        raise TypeError(f"conv2d input dtype {x.dtype} != weight dtype {weight.dtype}")
    oh = conv_output_size(x.shape[2], kh, stride[0], padding[0], dilation[0])
    ow = conv_output_size(x.shape[3], kw, stride[1], padding[1], dilation[1])
    if oh < 1 or ow < 1:
        raise ValueError(f"conv2d input shape {x.shape} too small for kernel {(kh, kw)} with "
                         f"padding {padding} and dilation {dilation}")
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    if bias is None:
        return Conv2dFn.apply(x, weight, b=None, **kwargs)
    return Conv2dFn.apply(x, weight, bias, **kwargs)
