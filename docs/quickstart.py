# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # invjax quick start
#
# A fully invertible RevNet (fi-RevNet) classifier on MNIST, its exact inverse,
# and its *metamers*: inputs that carry the logits of one image and everything
# else of another. About two minutes on a laptop CPU.
#
# This is a [jupytext](https://jupytext.readthedocs.io) notebook; open it in
# Jupyter with jupytext installed, or make an `.ipynb` with
# `jupytext --to ipynb docs/quickstart.py`. It needs `pip install 'invjax[train]'`
# (data and figures) and the MNIST files in `INVJAX_MNIST_DIR` (or internet access
# for TFDS's download). `tests/test_quickstart.py` runs it.

# %%
import jax
import jax.numpy as jnp
import numpy as np
import optax

from invjax import data, losses, metamers, models, plotting

TRAIN_STEPS = 200
BATCH_SIZE = 64

# %% [markdown]
# ## A fi-RevNet
#
# `fi_revnet_mnist` is the paper's MNIST model (3 levels of 16 flow steps, width
# 128); a smaller one trains in seconds. Inputs are 32x32x3 in [-1, 1]. The model
# maps an image to a latent vector z of the same size, 3072 numbers, and a
# log-determinant; the first 10 entries of z are the logits z_s, the rest the
# nuisance variables z_n. Training inputs get uniform dequantisation noise of
# one grey level (`data.dequantize`), also the batch from which ActNorm
# initialises: the two blank channels of an MNIST input are constant, and
# would otherwise get an infinite scale.

# %%
model = models.fi_revnet_mnist(steps_per_level=2, width=32, dropout=0.0)
images, labels = data.as_numpy("mnist", "train", max_examples=10_000)
test_images, test_labels = data.as_numpy("mnist", "test", max_examples=1_000)
init_batch = data.dequantize(jax.random.key(1), images[:BATCH_SIZE])
variables = jax.jit(model.init)(jax.random.key(0), init_batch)  # ActNorm initialises from this batch
z, logdet = jax.jit(model.apply)(variables, test_images[:8])
print("latent", z.shape, "log-det", logdet.shape)

# %% [markdown]
# ## The inverse is exact
#
# `model.inverse` computes F^-1 in closed form: no optimisation, no
# approximation, float rounding only.

# %%
inverse = jax.jit(lambda variables, z: model.apply(variables, z, method=model.inverse)[0])
reconstruction_error = float(jnp.max(jnp.abs(inverse(variables, z) - test_images[:8])))
print(f"max |F^-1(F(x)) - x| = {reconstruction_error:.1e}")
assert reconstruction_error < 1e-4

# %% [markdown]
# ## Train with cross-entropy
#
# A few hundred Adamax steps (the optimizer of the paper's authors) on the
# logits z_s. `invjax.train.train_and_evaluate` runs the full, resumable
# training job, with the iCE objective; see the README.

# %%
optimizer = optax.adamax(1e-3)
params = variables["params"]
optimizer_state = optimizer.init(params)


def logits(params, x):
  z, _ = model.apply({"params": params}, x)
  return models.split_latent(z, 10)[0]


@jax.jit
def train_step(params, optimizer_state, x, y, key):
  x = data.dequantize(key, x)
  params, optimizer_state, loss, _ = losses.cross_entropy_step(
      lambda params: logits(params, x), optimizer, params, optimizer_state, y)
  return params, optimizer_state, loss


order = np.random.default_rng(0).permutation(len(images))
for step in range(TRAIN_STEPS):
  batch = order[step * BATCH_SIZE % len(images):][:BATCH_SIZE]
  params, optimizer_state, loss = train_step(
      params, optimizer_state, images[batch], labels[batch], jax.random.fold_in(jax.random.key(2), step))
  if step % 100 == 0 or step == TRAIN_STEPS - 1:
    print(f"step {step}: cross-entropy {float(loss):.3f}")

variables = {"params": params}
test_error = float(jnp.mean(jnp.argmax(jax.jit(logits)(params, test_images), -1) != test_labels))
print(f"test error {100 * test_error:.1f}% on {len(test_labels)} test images")

# %% [markdown]
# ## Metamers
#
# The metamer of a logit source a and a nuisance source b is
# F^-1(z_s(a), z_n(b)): the model gives it exactly a's logits. A model trained
# with cross-entropy alone is excessively invariant: its metamers look like b,
# the image whose logits they do not carry.

# %%
a, b = test_images[:6], test_images[6:12]
x_met = metamers.metameric_sample(model, variables, a, b)
logit_gap = float(jnp.max(jnp.abs(logits(params, x_met) - logits(params, a))))
print(f"max |z_s(metamer) - z_s(a)| = {logit_gap:.1e}")
captions = [(f"label {label_a}", f"predicted {label_a_hat}", f"label {label_b}")
            for label_a, label_a_hat, label_b in zip(
                test_labels[:6], np.argmax(logits(params, x_met), -1), test_labels[6:12], strict=True)]
figure = plotting.metamer_figure(np.asarray(a), np.asarray(x_met), np.asarray(b), captions=captions)
figure.savefig("quickstart_metamers.png", dpi=100)
figure
