"""The 3D-PIUNet refinement network (Morik et al., IEEE TMI 2025).

A 3-D convolutional U-Net that maps a pseudo-inverse (eLORETA) source estimate, seen as a
vector field on a 32³ grid with three orientation channels, to a refined estimate on the
same grid.

Architecture (as in the paper's public code, an adaptation of OpenAI's improved-diffusion
U-Net with ``channel_mult=(1, 2, 4)``, ``num_res_blocks=2``, ``attention_resolutions=(4,)``,
``num_heads=4``, ``resblock_updown=True``):

- stem: Conv3d 3³, 3 → w;
- encoder: two residual blocks per level with widths w, 2w, 4w at 32³, 16³, 8³; between
  levels a residual block that downsamples by 2×2×2 average pooling; one 4-head
  self-attention block after each residual block of the 8³ level;
- middle (8³): residual block, self-attention, residual block;
- decoder: three residual blocks per level, each taking the previous output concatenated
  with one encoder skip (channel concatenation); attention after each at 8³; a residual
  block that upsamples (nearest, ×2) closes each of the two deeper levels;
- head: GroupNorm → SiLU → Conv3d 3³, w → 3.

A residual block is GroupNorm → SiLU → Conv3d 3³ → GroupNorm → SiLU → Conv3d 3³, plus a
skip (identity, or a 1³ convolution where the width changes). Resampling happens inside the
block, between the first activation and the first convolution, on both paths. GroupNorm
uses 32 groups where the channel count is a multiple of 32 and 4 groups otherwise (the
reference rule; a network widened by :func:`widen` keeps the narrow network's groups,
``norm_width``), and always computes in float32 (so fp16/bf16 inference stays accurate).

The reference's diffusion timestep embedding is dropped: it is fed a constant, so in each
residual block it only adds a constant per-channel bias after the first convolution, which
that convolution's bias already provides. With it the reference counts 0.70 M / 2.77 M /
11.07 M parameters for w = 8 / 16 / 32; this network has the same layers minus that
embedding MLP: 0.681 M / 2.714 M / 10.834 M.

The module has static shapes and only uses Conv3d, GroupNorm, SiLU, average pooling,
nearest upsampling, reshape, matmul and softmax, so it compiles with ``torch.compile``,
exports with ``torch.export`` and to ONNX (opset 17), and parses with TensorRT's ONNX parser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "GRID_SIZE",
    "PIUNET_PRESETS",
    "PIUNet",
    "PIUNetSpec",
    "count_parameters",
    "reference_num_groups",
    "widen",
]

GRID_SIZE = 32
"""Edge length of the cubic volume the network sees (29³ source lattice padded to 32³)."""


@dataclass(frozen=True)
class PIUNetSpec:
    """Hyper-parameters of one :class:`PIUNet` size.

    Attributes
    ----------
    width : int
        Channels at the finest level (w); the levels have w, 2w, 4w channels.
    reference_params : int
        Parameter count of the reference implementation at this width, including its
        constant timestep-embedding MLP (which this implementation folds away).
    reference_gflop : float
        Cost per sample (GFLOP) reported for the reference network at this width.
    """

    width: int
    reference_params: int
    reference_gflop: float


PIUNET_PRESETS: dict[int, PIUNetSpec] = {
    8: PIUNetSpec(width=8, reference_params=696_323, reference_gflop=4.5),
    16: PIUNetSpec(width=16, reference_params=2_773_379, reference_gflop=17.6),
    32: PIUNetSpec(width=32, reference_params=11_069_699, reference_gflop=69.2),
}
"""The three sizes of the paper (width → spec). Width 32 is the paper's network; width 8 is
almost as accurate (NEMD 0.21 vs 0.20) at a sixteenth of the cost."""


def reference_num_groups(channels: int) -> int:
    """Number of GroupNorm groups the reference uses for ``channels`` channels.

    32 groups when ``channels`` is a multiple of 32, else 4 groups.
    """
    return 32 if channels % 32 == 0 else 4


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm that always computes in float32 and returns the input's dtype.

    In float32 this is exactly :class:`torch.nn.GroupNorm`. Under fp16/bf16 it keeps the
    mean/variance reduction in float32 (the reference does the same), and in an exported
    half-precision graph it appears as ``Cast`` → normalisation → ``Cast``, which keeps
    TensorRT's strongly typed builds accurate.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if x.dtype != torch.float32:
            return super().forward(x.float()).to(x.dtype)
        return super().forward(x)


def _norm(channels: int, norm_scale: int = 1) -> GroupNorm32:
    """GroupNorm with the reference's grouping of ``channels / norm_scale`` channels (a network
    widened ``norm_scale`` times keeps the narrow network's groups; see :func:`widen`)."""
    return GroupNorm32(reference_num_groups(channels // norm_scale), channels)


def _check_divisible(size: int, levels: int) -> None:
    if size % (2 ** (levels - 1)) != 0:
        raise ValueError(
            f"grid_size={size} must be divisible by 2**(levels-1)={2 ** (levels - 1)} "
            f"for a U-Net with {levels} levels."
        )


class ResBlock(nn.Module):
    """Residual block, optionally resampling by a factor of 2 in every spatial axis.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts of input and output.
    resample : {None, "down", "up"}
        ``"down"``: 2×2×2 average pooling; ``"up"``: nearest-neighbour ×2. Applied to both
        the residual path (after the first activation) and the skip path.
    norm_scale : int
        GroupNorm groups as the reference gives ``channels / norm_scale`` channels.

    Shapes
    ------
    (B, in_channels, D, H, W) → (B, out_channels, D', H', W'), with D' = D/2 (down),
    2D (up) or D.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        resample: Literal["down", "up"] | None = None,
        norm_scale: int = 1,
    ) -> None:
        super().__init__()
        if resample not in (None, "down", "up"):
            raise ValueError(f"resample={resample!r} is not valid; choose None, 'down' or 'up'.")
        self.resample = resample
        self.norm1 = _norm(in_channels, norm_scale)
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _norm(out_channels, norm_scale)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1)
        if in_channels == out_channels:
            self.skip: nn.Module = nn.Identity()
        else:
            self.skip = nn.Conv3d(in_channels, out_channels, 1)

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "down":
            return F.avg_pool3d(x, kernel_size=2, stride=2)
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = F.silu(self.norm1(x))
        if self.resample is not None:
            h = self._resample(h)
            x = self._resample(x)
        h = self.conv1(h)
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all voxels of a (small) volume, with a residual.

    GroupNorm → 1³ conv to q, k, v → softmax(qᵀk / √d) per head → 1³ conv → + input.
    The channel layout of the qkv projection follows the reference (heads outermost, then
    q/k/v, then the head's channels), so its weights map one to one.

    Parameters
    ----------
    channels : int
        Channels C (divisible by ``num_heads``).
    num_heads : int
        Number of heads.
    spatial : tuple of int
        The static spatial shape (D, H, W) this block runs at (8³ in PIUNet). Stored so
        that every reshape is static (except the batch axis).
    norm_scale : int
        GroupNorm groups as the reference gives ``channels / norm_scale`` channels.

    Shapes
    ------
    (B, C, D, H, W) → (B, C, D, H, W).
    """

    def __init__(self, channels: int, num_heads: int, spatial: tuple[int, int, int],
                 norm_scale: int = 1) -> None:
        super().__init__()
        if channels % num_heads != 0:
            raise ValueError(
                f"channels={channels} must be divisible by num_heads={num_heads} for attention."
            )
        self.channels = channels
        self.num_heads = num_heads
        self.head_channels = channels // num_heads
        self.spatial = tuple(int(s) for s in spatial)
        self.tokens = math.prod(self.spatial)
        self.norm = _norm(channels, norm_scale)
        self.qkv = nn.Conv3d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv3d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ch, t = self.head_channels, self.tokens
        qkv = self.qkv(self.norm(x)).reshape(-1, 3 * ch, t)  # (B·heads, 3·ch, T)
        q, k, v = qkv.split(ch, dim=1)  # each (B·heads, ch, T)
        scale = 1.0 / math.sqrt(math.sqrt(ch))  # split between q and k (fp16-friendly)
        logits = torch.matmul((q * scale).transpose(1, 2), k * scale)  # (B·heads, T, T)
        if logits.dtype == torch.float32:
            weight = torch.softmax(logits, dim=-1)
        else:  # reduced precision: softmax in float32 (as the reference does)
            weight = torch.softmax(logits.float(), dim=-1).to(logits.dtype)
        out = torch.matmul(v, weight.transpose(1, 2))  # (B·heads, ch, T)
        out = out.reshape(-1, self.channels, *self.spatial)
        return x + self.proj_out(out)


class PIUNet(nn.Module):
    """3D-PIUNet: U-Net refinement of a pseudo-inverse source volume.

    Parameters
    ----------
    width : int
        Channels at the finest level (8, 16 or 32 in :data:`PIUNET_PRESETS`; any multiple of
        ``num_heads`` works).
    in_channels, out_channels : int
        Orientation channels of input and output (3: x, y, z current density).
    grid_size : int
        Edge length of the cubic input volume (32).
    channel_mult : tuple of int
        Width multiplier per level (finest first).
    num_res_blocks : int
        Residual blocks per encoder level (the decoder has one more per level).
    num_heads : int
        Attention heads at the coarsest level.
    norm_width : int, optional
        Group every GroupNorm as the reference groups the network of this width (a divisor
        of ``width``); None (the default, and the reference): as this width's. A network
        widened by :func:`widen` keeps the narrow network's groups this way.

    Shapes
    ------
    forward: (B, in_channels, G, G, G) float → (B, out_channels, G, G, G), G = grid_size.
    The input is expected in the scaled domain (max |x| = 1 per sample; see
    :class:`rtsource.models.volume.VolumeMapper`).

    Examples
    --------
    >>> net = PIUNet(width=8).eval()
    >>> net(torch.zeros(1, 3, 32, 32, 32)).shape
    torch.Size([1, 3, 32, 32, 32])
    """

    def __init__(
        self,
        width: int = 8,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        grid_size: int = GRID_SIZE,
        channel_mult: tuple[int, ...] = (1, 2, 4),
        num_res_blocks: int = 2,
        num_heads: int = 4,
        norm_width: int | None = None,
    ) -> None:
        super().__init__()
        if norm_width is not None and (norm_width < 1 or width % norm_width != 0):
            raise ValueError(f"norm_width={norm_width} is not valid: it must divide "
                             f"width={width} (e.g. {width // 2}), or be None.")
        self.norm_width = None if norm_width is None else int(norm_width)
        ns = 1 if norm_width is None else width // norm_width
        if width < 1 or (width * channel_mult[-1]) % num_heads != 0:
            raise ValueError(
                f"width={width} is not valid: the coarsest level's width "
                f"({width}×{channel_mult[-1]}) must be divisible by num_heads={num_heads}."
            )
        levels = len(channel_mult)
        _check_divisible(grid_size, levels)
        self.width = int(width)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.grid_size = int(grid_size)
        self.channel_mult = tuple(int(m) for m in channel_mult)
        self.num_res_blocks = int(num_res_blocks)
        self.num_heads = int(num_heads)
        coarse = grid_size // 2 ** (levels - 1)
        spatial = (coarse, coarse, coarse)

        def level_blocks(lvl: int, cin: int, cout: int) -> list[nn.Module]:
            blocks: list[nn.Module] = [ResBlock(cin, cout, norm_scale=ns)]
            if lvl == levels - 1:
                blocks.append(AttentionBlock(cout, num_heads, spatial, norm_scale=ns))
            return blocks

        self.stem = nn.Conv3d(in_channels, width, 3, padding=1)
        skip_channels = [width]
        ch = width
        encoder: list[nn.Module] = []
        for lvl, mult in enumerate(self.channel_mult):
            for _ in range(num_res_blocks):
                encoder.append(nn.Sequential(*level_blocks(lvl, ch, width * mult)))
                ch = width * mult
                skip_channels.append(ch)
            if lvl != levels - 1:
                encoder.append(ResBlock(ch, ch, resample="down", norm_scale=ns))
                skip_channels.append(ch)
        self.encoder = nn.ModuleList(encoder)

        self.middle = nn.Sequential(
            ResBlock(ch, ch, norm_scale=ns), AttentionBlock(ch, num_heads, spatial, norm_scale=ns),
            ResBlock(ch, ch, norm_scale=ns)
        )

        decoder: list[nn.Module] = []
        for lvl in reversed(range(levels)):
            mult = self.channel_mult[lvl]
            for i in range(num_res_blocks + 1):
                blocks = level_blocks(lvl, ch + skip_channels.pop(), width * mult)
                ch = width * mult
                if lvl > 0 and i == num_res_blocks:
                    blocks.append(ResBlock(ch, ch, resample="up", norm_scale=ns))
                decoder.append(nn.Sequential(*blocks))
        self.decoder = nn.ModuleList(decoder)

        self.head = nn.Sequential(_norm(ch, ns), nn.SiLU(), nn.Conv3d(ch, out_channels, 3, padding=1))

    @classmethod
    def from_preset(cls, width: int) -> PIUNet:
        """Build one of the paper's sizes (8, 16 or 32) from :data:`PIUNET_PRESETS`."""
        if width not in PIUNET_PRESETS:
            raise ValueError(
                f"No PIUNet preset for width={width!r}; choose one of {sorted(PIUNET_PRESETS)}."
            )
        return cls(width=PIUNET_PRESETS[width].width)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable); ``PIUNet(**net.config)`` rebuilds it
        (``norm_width`` only where set, so the reference's configuration is unchanged)."""
        config = {
            "width": self.width,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "grid_size": self.grid_size,
            "channel_mult": list(self.channel_mult),
            "num_res_blocks": self.num_res_blocks,
            "num_heads": self.num_heads,
        }
        if self.norm_width is not None:
            config["norm_width"] = self.norm_width
        return config

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Shape of one sample, (in_channels, G, G, G)."""
        g = self.grid_size
        return (self.in_channels, g, g, g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Refine a batch of source volumes.

        Parameters
        ----------
        x : torch.Tensor, shape (B, in_channels, G, G, G)
            Scaled pseudo-inverse volumes.

        Returns
        -------
        torch.Tensor, shape (B, out_channels, G, G, G)
            Refined volumes (same scaled domain).
        """
        h = self.stem(x)
        skips = [h]
        for block in self.encoder:
            h = block(h)
            skips.append(h)
        h = self.middle(h)
        for block in self.decoder:
            h = block(torch.cat([h, skips.pop()], dim=1))
        return self.head(h)


def widen(model: PIUNet, width: int, *, noise: float = 1e-3, seed: int = 0) -> PIUNet:
    """A wider copy of ``model`` that starts from its function (Net2WiderNet).

    Every hidden channel of the narrow network becomes ``f = width / model.width`` copies
    in the wide one: a convolution's output channel ``j`` copies the narrow channel
    ``j // f`` (bias included) and its weights on duplicated input channels are divided by
    ``f``, so the sum over the copies equals the narrow sum; GroupNorm scales and shifts are
    copied; in attention the query weights are divided by √f, because duplicated head
    channels multiply qᵀk by f while the wider head divides it by √(f·d) instead of √d. The
    orientation channels of the stem's input and the head's output are not widened.
    Gaussian noise of ``noise`` × the narrow convolution weight's standard deviation breaks
    the symmetry between copies, which would otherwise receive equal gradients. The global
    torch random state is left as it was.

    The copy computes the narrow function (up to ``noise`` and rounding): its GroupNorms keep
    the narrow network's groups of the copied channels (``norm_width``). The reference's rule
    (:func:`reference_num_groups`) would regroup some layers from width 8 to 16 (16 channels
    in 4 groups become 32 in 32 groups), which changes the function: on the training
    distribution a regrouped copy of the shipped width-8 network scores worse than an all-zero
    output (validation loss 0.913 vs 0.765; the kept groups 0.589, as the narrow network:
    ``python bench/widen_start.py configs/train-w16.toml``).

    Source: T. Chen, I. Goodfellow, J. Shlens, "Net2Net: accelerating learning via knowledge
    transfer", ICLR 2016 (the Net2WiderNet operator).

    Parameters
    ----------
    model : PIUNet
        The narrow network (not modified).
    width : int
        The new width, a multiple of ``model.width`` (e.g. 16 from 8).
    noise : float
        Relative standard deviation of the symmetry-breaking noise (0: an exact copy).
    seed : int
        Seed of that noise.

    Returns
    -------
    PIUNet
        A float32 network on the CPU with ``width``, ``norm_width`` = the narrow network's
        (its ``norm_width`` or width) and otherwise ``model``'s configuration.

    Raises
    ------
    ValueError
        ``width`` is not a multiple of ``model.width`` greater than it.
    """
    if width <= model.width or width % model.width != 0:
        raise ValueError(
            f"Cannot widen a width-{model.width} PIUNet to width={width}: the new width must "
            f"be a multiple of {model.width} greater than it (e.g. {2 * model.width}).")
    f = width // model.width
    cfg = dict(model.config, width=int(width), norm_width=model.norm_width or model.width)
    cfg["channel_mult"] = tuple(cfg["channel_mult"])
    with torch.random.fork_rng(devices=[]):  # its random init is overwritten below
        wide = PIUNet(**cfg)
    gen = torch.Generator().manual_seed(int(seed))
    narrow_modules = dict(model.named_modules())

    def index(n_new: int, n_old: int) -> torch.Tensor:
        if n_new == n_old:
            return torch.arange(n_old)
        return torch.arange(n_new) // f

    with torch.no_grad():
        for name, new in wide.named_modules():
            old = narrow_modules[name]
            if isinstance(new, nn.GroupNorm):
                idx = index(new.num_channels, old.num_channels)
                new.weight.copy_(old.weight.detach().float().cpu()[idx])
                new.bias.copy_(old.bias.detach().float().cpu()[idx])
            elif isinstance(new, nn.Conv3d):
                w_old = old.weight.detach().float().cpu()
                o_new, i_new = new.weight.shape[:2]
                o_old, i_old = w_old.shape[:2]
                if name.endswith(".qkv"):  # channels ordered (head, q/k/v, head channel)
                    heads = model.num_heads
                    ch_old, ch_new = o_old // (3 * heads), o_new // (3 * heads)
                    j = torch.arange(o_new)
                    head, rest = j // (3 * ch_new), j % (3 * ch_new)
                    part, c = rest // ch_new, rest % ch_new
                    out_idx = head * 3 * ch_old + part * ch_old + c // f
                    gain = torch.where(part == 0, f ** -0.5, 1.0)
                else:
                    out_idx = index(o_new, o_old)
                    gain = torch.ones(o_new)
                in_idx = index(i_new, i_old)
                w = w_old[out_idx][:, in_idx] * (1.0 / f if i_new != i_old else 1.0)
                w = w * gain.view(-1, 1, 1, 1, 1)
                if noise > 0 and (o_new != o_old or i_new != i_old):
                    w = w + noise * w_old.std() * torch.randn(w.shape, generator=gen)
                new.weight.copy_(w)
                if new.bias is not None:
                    new.bias.copy_(old.bias.detach().float().cpu()[out_idx] * gain)
    return wide
