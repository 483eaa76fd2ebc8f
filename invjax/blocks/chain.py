"""Composition of bijections."""

from collections.abc import Sequence

from invjax.blocks import bijection


class Chain(bijection.Bijection):
  r"""f = f_n o ... o f_1 for `layers = (f_1, ..., f_n)`.

    forward:  apply f_1, ..., f_n in order;  log|det| = sum_i log|det f_i|
    inverse:  apply f_n^-1, ..., f_1^-1 in that order; log-dets add up likewise.
  """

  layers: Sequence[bijection.Bijection]

  def __call__(self, x, train=False):
    logdet = bijection.zero_logdet(x)
    for layer in self.layers:
      x, layer_logdet = layer(x, train=train)
      logdet = logdet + layer_logdet
    return x, logdet

  def inverse(self, y, train=False):
    logdet = bijection.zero_logdet(y)
    for layer in reversed(self.layers):
      y, layer_logdet = layer.inverse(y, train=train)
      logdet = logdet + layer_logdet
    return y, logdet
