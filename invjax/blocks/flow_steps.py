r"""Flow steps (ActNorm -> channel permutation -> coupling), one or many as a scan.

`FlowStep` is one step of Glow / the fi-RevNet:

    forward:  u = P(ActNorm(x)),  y = Coupling(u)
    inverse:  u = Coupling^-1(y), x = ActNorm^-1(P^-1(u))
    log|det dy/dx| = log|det ActNorm| + log|det P| + log|det Coupling|.

`FlowSteps` is n such steps f_n o ... o f_1 with parameters stacked along a
leading axis (`params["steps"]`), run as one `jax.lax.scan`
(`invjax.blocks.reversible`), so the compiled program holds one step however
deep the chain is. Step i draws its permutation from seed `first_seed + i`, as
an unrolled chain of `FlowStep(seed=first_seed + i)` would: the scan hands each
step its slice of the stacked `step_constants`.

`backprop` chooses how gradients are computed: "autodiff" differentiates the
scan and stores every step's activations (memory grows with n and the
coupling networks' width); "remat" differentiates it too, but stores only each
step's input and runs the step again in the backward pass (`jax.checkpoint`;
the same gradients, memory grows with n alone); "reversible" rebuilds each
step's input from its output with the exact inverse (memory independent of
n). The last two cost about one more coupling-network evaluation per step.
All three compute the same function and the same gradients up to float
rounding.

Initialisation is data-dependent as in an unrolled chain: `init` runs the steps
in order on the given batch, each ActNorm normalising what reaches it.
"""

import functools
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from invjax.blocks import actnorm, bijection, coupling, permutations, reversible

PERMUTATIONS = {
    "reverse": permutations.ReversePermutation,
    "shuffle": permutations.ShufflePermutation,
    "conv1x1": permutations.InvertibleConv1x1,
}
COUPLINGS = {"additive": coupling.AdditiveCoupling, "affine": coupling.AffineCoupling}
BACKPROPS = ("autodiff", "remat", "reversible")


def check_choice(name: str, value, allowed) -> None:
  if value not in allowed:
    raise ValueError(f"{name} must be one of {sorted(allowed)}; got {value!r}.")


class _StepSettings(bijection.Bijection):
  """What a flow step is made of; shared by one step and a scanned chain of them."""

  permutation: Literal["reverse", "shuffle", "conv1x1"] = "reverse"
  coupling: Literal["additive", "affine"] = "additive"
  width: int = 128
  dropout: float = 0.1
  compute_dtype: jnp.dtype | None = None


class FlowStep(_StepSettings):
  """ActNorm -> permutation (`seed`, or explicit `constants`) -> coupling."""

  seed: int = 0

  def setup(self):
    check_choice("permutation", self.permutation, PERMUTATIONS)
    check_choice("coupling", self.coupling, COUPLINGS)
    self.actnorm = actnorm.ActNorm()
    self.channel_mixer = PERMUTATIONS[self.permutation](seed=self.seed)
    self.coupling_layer = COUPLINGS[self.coupling](
        width=self.width, dropout=self.dropout, compute_dtype=self.compute_dtype)

  def mix(self, x, constants=None):
    """The first stage, P(ActNorm(x))."""
    x, norm_logdet = self.actnorm(x)
    x, mix_logdet = self.channel_mixer(x, constants=constants)
    return x, norm_logdet + mix_logdet

  def unmix(self, y, constants=None):
    y, mix_logdet = self.channel_mixer.inverse(y, constants=constants)
    y, norm_logdet = self.actnorm.inverse(y)
    return y, norm_logdet + mix_logdet

  def condition(self, x1, train=False):
    """NN(x1) of the second stage, the coupling."""
    return self.coupling_layer.condition(x1, train)

  def __call__(self, x, train=False, constants=None):
    u, mix_logdet = self.mix(x, constants)
    y, coupling_logdet = self.coupling_layer(u, train=train)
    return y, mix_logdet + coupling_logdet

  def inverse(self, y, train=False, constants=None):
    u, coupling_logdet = self.coupling_layer.inverse(y, train=train)
    x, mix_logdet = self.unmix(u, constants)
    return x, mix_logdet + coupling_logdet


class FlowSteps(_StepSettings):
  """`num_steps` FlowSteps as one scan over stacked parameters (see the module doc)."""

  num_steps: int = 1
  first_seed: int = 0
  backprop: Literal["autodiff", "remat", "reversible"] = "autodiff"

  def _step(self) -> FlowStep:
    return FlowStep(permutation=self.permutation, coupling=self.coupling, width=self.width,
                    dropout=self.dropout, compute_dtype=self.compute_dtype, parent=None)

  def _constants(self, channels: int):
    """Every step's permutation constants, stacked: leaves of shape (num_steps, ...)."""
    check_choice("permutation", self.permutation, PERMUTATIONS)
    per_step = [PERMUTATIONS[self.permutation](seed=self.first_seed + i, parent=None).step_constants(channels)
                for i in range(self.num_steps)]
    return jax.tree.map(lambda *leaves: np.stack(leaves), *per_step)

  @nn.compact
  def _stacked_params(self, x_init: jax.Array, through_inverse: bool):
    step, constants = self._step(), self._constants(x_init.shape[-1])
    method = FlowStep.inverse if through_inverse else FlowStep.__call__

    def init_steps(key):
      def init_step(x, inputs):
        step_key, index = inputs
        step_constants = jax.tree.map(lambda table: jnp.asarray(table)[index], constants)
        variables = step.init(step_key, x, constants=step_constants, method=method)
        y, _ = step.apply(variables, x, constants=step_constants, method=method)
        return y, variables["params"]

      inputs = (jax.random.split(key, self.num_steps), jnp.arange(self.num_steps))
      _, params = jax.lax.scan(init_step, x_init, inputs, reverse=through_inverse)
      return params

    return self.param("steps", init_steps)

  def _stages(self, channels: int, train: bool) -> tuple[reversible.Stage, reversible.CouplingStage]:
    """The two stages of every step: ActNorm + permutation, then the coupling."""
    step, constants = self._step(), self._constants(channels)
    coupling_class = COUPLINGS[self.coupling]

    def step_constants(index):
      return jax.tree.map(lambda table: jnp.asarray(table)[index], constants)

    def mix(params, index, key, x):
      return step.apply({"params": params}, x, step_constants(index), method=FlowStep.mix)

    def unmix(params, index, key, y):
      return step.apply({"params": params}, y, step_constants(index), method=FlowStep.unmix)

    def condition(params, index, key, x1):
      rngs = {} if key is None else {"dropout": jax.random.wrap_key_data(key)}
      return step.apply({"params": params}, x1, train, rngs=rngs, method=FlowStep.condition)

    return (reversible.Stage(mix, unmix),
            reversible.CouplingStage(condition, coupling_class.transform, coupling_class.untransform))

  def _step_keys(self, train: bool):
    """Dropout key data of each step, `(num_steps, ...)` uint32, or None without dropout."""
    if not train or self.dropout == 0.0:
      return None
    return jax.random.key_data(jax.random.split(self.make_rng("dropout"), self.num_steps))

  def __call__(self, x, train=False):
    check_choice("backprop", self.backprop, BACKPROPS)
    params = self._stacked_params(jax.lax.stop_gradient(x), through_inverse=False)
    if self.backprop == "reversible":
      chain = reversible.reversible_chain
    else:
      chain = functools.partial(reversible.chain_forward, remat=self.backprop == "remat")
    return chain(self._stages(x.shape[-1], train), params, self._step_keys(train), x)

  def inverse(self, y, train=False):
    params = self._stacked_params(jax.lax.stop_gradient(y), through_inverse=True)
    stages = self._stages(y.shape[-1], train)
    return reversible.chain_inverse(stages, params, self._step_keys(train), y)
