"""FLOPs of a JAX program counted from its matrix products and convolutions.

XLA's cost analysis counts the body of a loop once, and the flow steps of a
fi-RevNet level run as one `lax.scan`; compiled for XLA:CPU it also leaves out
the products handed to the matmul library. Counting the products in the traced
program (`jax.make_jaxpr`), scan bodies times their length, gives the number a
speed or an accelerator estimate is about.
"""

import math

import jax
import jax.extend


def product_flops(jaxpr) -> float:
  """FLOPs of the matrix products and convolutions in `jaxpr`, scan bodies times their length
  (a `cond` counts its costliest branch)."""
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      (contracting, _), _ = eqn.params["dimension_numbers"]
      lhs, out = eqn.invars[0].aval, eqn.outvars[0].aval
      total += 2.0 * math.prod(out.shape) * math.prod(lhs.shape[d] for d in contracting)
    elif name == "conv_general_dilated":
      rhs, out = eqn.invars[1].aval, eqn.outvars[0].aval
      out_features = rhs.shape[eqn.params["dimension_numbers"].rhs_spec[0]]
      total += 2.0 * math.prod(out.shape) * math.prod(rhs.shape) / out_features
    inner = [p for v in eqn.params.values() for p in (v if isinstance(v, (tuple, list)) else (v,))
             if isinstance(p, (jax.extend.core.Jaxpr, jax.extend.core.ClosedJaxpr))]
    inner_flops = [product_flops(getattr(p, "jaxpr", p)) for p in inner]
    if name == "cond":
      total += max(inner_flops, default=0.0)
    elif name == "scan":
      total += eqn.params["length"] * sum(inner_flops)
    else:
      total += sum(inner_flops)
  return total
