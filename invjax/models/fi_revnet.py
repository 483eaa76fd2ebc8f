"""The fully invertible RevNet (fi-RevNet): a multi-scale Glow / i-RevNet hybrid.

Level l (of `num_levels`) is: squeeze (space-to-depth; `squeeze=False` skips it,
for vector data as (1, 1, d) maps), `steps_per_level[l]` flow
steps (ActNorm -> channel permutation -> coupling; one `blocks.FlowSteps`, a
scan over stacked parameters, differentiated as `backprop` says), then, except
after the last level and when `split` is on, half of the channels leave as a
nuisance latent.

With `split_prior`, each emitted latent z2 has Glow's learned prior given the
half z1 that stays, p(z2 | z1) = N(mu(z1), exp(s(z1))^2), as in the authors'
code. It is a density, not part of the map: z holds z2 itself (what metamers
swap and what the nuisance classifier reads, as in the authors' code), and
`density` also returns the latent the maximum-likelihood term models, z with
each z2 replaced by its standardised eps = (z2 - mu(z1)) exp(-s(z1))
(`blocks.SplitPrior`), and the log-det of that standardisation added:
-log p(x) = -log N(eps-latent) - logdet_density.
For the MNIST preset (CHW): 3x32x32 -> 12x16x16 -> split (6x16x16 out) ->
24x8x8 -> split (12x8x8 out) -> 48x4x4.

The output is one flat vector z of length d = H * W * C per example, in this
fixed order:

  z[:, :num_classes]   the logits z_s: channels 0..num_classes-1 of the final
                       tensor at the readout position ((H_f//2, W_f//2), or the
                       DC coefficient (0, 0) of an orthonormal 2D DCT when
                       readout='dct');
  z[:, num_classes:]   z_n, made of: the other entries of the final tensor
                       (row-major NHWC order, the logit entries removed), then
                       the latent split off after level 1, level 2, ...
                       (each flattened row-major NHWC).
"""

from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from invjax import blocks
from invjax.blocks import flow_steps

READOUTS = ("center", "dct")
_check_choice = flow_steps.check_choice


class FiRevNet(blocks.Bijection):
  """Bijection from NHWC images of `image_shape` to flat latents `(B, d)`."""

  image_shape: tuple[int, int, int] = (32, 32, 3)
  num_classes: int = 10
  num_levels: int = 3
  steps_per_level: int | Sequence[int] = 16
  split: bool = True
  split_prior: bool = False
  squeeze: bool = True
  width: int = 128
  coupling: Literal["additive", "affine"] = "additive"
  permutation: Literal["reverse", "shuffle", "conv1x1"] = "reverse"
  readout: Literal["center", "dct"] = "center"
  dropout: float = 0.1
  compute_dtype: jnp.dtype | None = None
  backprop: Literal["autodiff", "remat", "reversible"] = "autodiff"

  # --- static geometry -------------------------------------------------------

  def level_shapes(self) -> tuple[list[tuple[int, int, int]], tuple[int, int, int]]:
    """Shapes (H, W, C) of the latent emitted after each split, and of the final tensor."""
    height, width, channels = self.image_shape
    if not self.squeeze:
      if self.split and self.num_levels > 1:
        raise ValueError("split=True needs squeeze=True: without squeezes the channel count cannot grow.")
      return [], (height, width, channels)
    if height % 2**self.num_levels or width % 2**self.num_levels:
      raise ValueError(
          f"image_shape {self.image_shape}: height and width must be divisible by "
          f"2 ** num_levels = {2**self.num_levels}; pad the images or use fewer levels."
      )
    emitted = []
    for level in range(self.num_levels):
      height, width, channels = height // 2, width // 2, 4 * channels
      if self.split and level < self.num_levels - 1:
        channels //= 2
        emitted.append((height, width, channels))
    return emitted, (height, width, channels)

  @property
  def latent_size(self) -> int:
    return int(np.prod(self.image_shape))

  def nuisance_parts(self) -> dict[str, slice]:
    """Where each part of z_n = z[:, num_classes:] lies: "final" (the final tensor's entries other
    than the logits), then "split_1", "split_2", ... (the latent split off after level 1, 2, ...)."""
    emitted_shapes, final_shape = self.level_shapes()
    sizes = {"final": int(np.prod(final_shape)) - self.num_classes}
    sizes.update({f"split_{level}": int(np.prod(shape)) for level, shape in enumerate(emitted_shapes, start=1)})
    parts, start = {}, 0
    for name, size in sizes.items():
      parts[name] = slice(start, start + size)
      start += size
    return parts

  def _readout_offset(self) -> int:
    """Flat index, within the final tensor, of the first logit."""
    _, (height, width, channels) = self.level_shapes()
    row, col = (0, 0) if self.readout == "dct" else (height // 2, width // 2)
    return (row * width + col) * channels

  # --- modules ---------------------------------------------------------------

  def setup(self):
    _check_choice("coupling", self.coupling, flow_steps.COUPLINGS)
    _check_choice("permutation", self.permutation, flow_steps.PERMUTATIONS)
    _check_choice("backprop", self.backprop, flow_steps.BACKPROPS)
    _check_choice("readout", self.readout, READOUTS)
    if isinstance(self.num_levels, bool) or not isinstance(self.num_levels, int) or self.num_levels < 1:
      raise ValueError(f"num_levels={self.num_levels!r} must be an integer >= 1.")
    steps = self.steps_per_level
    steps = [steps] * self.num_levels if isinstance(steps, int) else list(steps)
    if len(steps) != self.num_levels:
      raise ValueError(f"steps_per_level has {len(steps)} entries for {self.num_levels} levels.")
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in steps):
      raise ValueError(f"steps_per_level={self.steps_per_level!r} must be an integer >= 1 or one per level.")
    _, (_, _, final_channels) = self.level_shapes()
    if not 0 < self.num_classes <= final_channels:
      raise ValueError(
          f"num_classes={self.num_classes} must be in [1, {final_channels}], the channel "
          "count of the final tensor from which logits are read."
      )
    self.levels = [
        blocks.Chain(([blocks.Squeeze()] if self.squeeze else []) + [
            blocks.FlowSteps(
                num_steps=num_steps,
                permutation=self.permutation,
                coupling=self.coupling,
                width=self.width,
                dropout=self.dropout,
                compute_dtype=self.compute_dtype,
                first_seed=1000 * level,
                backprop=self.backprop,
            )
        ])
        for level, num_steps in enumerate(steps)
    ]
    self.dct = blocks.DCT2D() if self.readout == "dct" else None
    emitted_shapes, _ = self.level_shapes()
    self.split_priors = [blocks.SplitPrior() for _ in emitted_shapes] if self.split_prior else []

  # --- the two directions ----------------------------------------------------

  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    """Maps images `(B, H, W, C)` to latents `z (B, d)` and log|det dz/dx| `(B,)`."""
    z, logdet, _, _ = self.density(x, train)
    return z, logdet

  def density(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """(z, log|det dz/dx|, the latent the density models, its log-det): the last two equal the first
    two without `split_prior`; with it, the split latents are standardised by their priors (module doc)."""
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.image_shape):
      raise ValueError(
          f"FiRevNet expects images of shape (batch, {', '.join(map(str, self.image_shape))}) "
          f"(NHWC); got {x.shape}."
      )
    blocks.bijection.require_batch(x, "FiRevNet")
    if x.dtype not in (jnp.float32, jnp.float64):
      raise ValueError(f"FiRevNet expects float32 images in [-1, 1]; got {x.dtype}: convert them with "
                       "x.astype(jnp.float32) (compute_dtype='bfloat16' runs the coupling networks in bfloat16).")
    logdet = blocks.bijection.zero_logdet(x)
    prior_logdet = logdet  # the split priors' standardisations, sum of -s(z1)
    emitted, standardised = [], []
    for level, chain in enumerate(self.levels):
      x, level_logdet = chain(x, train=train)
      logdet = logdet + level_logdet
      if self.split and level < self.num_levels - 1:
        if self.split_priors:
          kept_and_eps, level_prior_logdet = self.split_priors[level](x)
          standardised.append(blocks.split_channels(kept_and_eps)[1])
          prior_logdet = prior_logdet + level_prior_logdet
        x, latent = blocks.split_channels(x)
        emitted.append(latent)
    if self.dct is not None:
      x, _ = self.dct(x)
    z = self._flatten(x, emitted)
    if not self.split_priors:
      return z, logdet, z, logdet
    return z, logdet, self._flatten(x, standardised), logdet + prior_logdet

  def inverse(self, z: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    """Maps latents `z (B, d)` back to images and log|det dx/dz| `(B,)`."""
    if z.ndim != 2 or z.shape[1] != self.latent_size:
      raise ValueError(
          f"FiRevNet.inverse expects latents of shape (batch, {self.latent_size}); got {z.shape}."
      )
    x, emitted = self._unflatten(z)
    if self.dct is not None:
      x, _ = self.dct.inverse(x)
    logdet = blocks.bijection.zero_logdet(z)
    for level in reversed(range(self.num_levels)):
      if self.split and level < self.num_levels - 1:
        x = blocks.merge_channels(x, emitted[level])
      x, level_logdet = self.levels[level].inverse(x, train=train)
      logdet = logdet + level_logdet
    return x, logdet

  # --- flat latent layout ----------------------------------------------------

  def _flatten(self, final: jax.Array, emitted: list[jax.Array]) -> jax.Array:
    batch = final.shape[0]
    final = final.reshape(batch, -1)
    start, stop = self._readout_offset(), self._readout_offset() + self.num_classes
    parts = [final[:, start:stop], final[:, :start], final[:, stop:]]
    parts += [latent.reshape(batch, -1) for latent in emitted]
    return jnp.concatenate(parts, axis=1)

  def _unflatten(self, z: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
    batch = z.shape[0]
    emitted_shapes, final_shape = self.level_shapes()
    final_size = int(np.prod(final_shape))
    offset = self._readout_offset()
    logits, rest = z[:, : self.num_classes], z[:, self.num_classes : final_size]
    final = jnp.concatenate([rest[:, :offset], logits, rest[:, offset:]], axis=1)
    emitted, start = [], final_size
    for shape in emitted_shapes:
      size = int(np.prod(shape))
      emitted.append(z[:, start : start + size].reshape(batch, *shape))
      start += size
    return final.reshape(batch, *final_shape), emitted


def split_latent(z: jax.Array, num_classes: int) -> tuple[jax.Array, jax.Array]:
  """`(z_s, z_n)`: the logits and the nuisance part of a flat latent."""
  return z[..., :num_classes], z[..., num_classes:]


def merge_latent(z_s: jax.Array, z_n: jax.Array) -> jax.Array:
  """Inverse of `split_latent`."""
  return jnp.concatenate([z_s, z_n], axis=-1)
