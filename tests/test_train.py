"""Training: the two-player step, sharding, resumption, failures and config checks."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mnist_cnn, mnist_ice
from invjax import data, independence, losses, parallel, train
from invjax.analysis import features
from invjax.train import run_folder
from invjax.train import state as state_lib
from invjax.train import step as step_lib

from testing_utils import ONE_DEVICE_XLA_FLAGS

REPO = pathlib.Path(__file__).resolve().parents[1]


def micro_config(**overrides):
  """The iCE config shrunk so that a step compiles and runs in seconds."""
  config = mnist_ice.get_config("tiny")
  config.model.steps_per_level = 1
  config.model.width = 8
  config.nuisance_classifier.hidden = (32,)
  config.nuisance_classifier.steps_per_batch = 2
  config.batch_size = 16
  config.eval_batch_size = 64
  config.eval_examples = 128
  config.train_eval_examples = 128
  config.total_steps = 4
  config.log_every_steps = 2
  config.eval_every_steps = 4
  config.checkpoint_every_steps = 2
  for name, value in overrides.items():
    target = config
    *path, leaf = name.split(".")
    for part in path:
      target = target[part]
    target[leaf] = value
  return config


@pytest.fixture(scope="module")
def mnist_batch():
  batches = data.load("mnist", "train", batch_size=16, seed=0, num_epochs=1, dequantize=False)
  return next(iter(batches))


def _setup(config, batch):
  parts = state_lib.build(config, steps_per_epoch=100)
  state = parts.create_state(jnp.asarray(batch["image"]), jax.random.key(0))
  step = jax.jit(step_lib.make_train_step(config, parts.model, parts.nuisance_classifier,
                                          parts.flow_tx, parts.nuisance_tx))
  return parts, state, step


def _params_equal(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=False))


@pytest.mark.slow
def test_loss_decreases_on_real_mnist(mnist_batch):
  config = micro_config(**{"optimizer.learning_rate": 3e-3, "model.dropout": 0.0,
                            "model.width": 16, "model.steps_per_level": 2})
  _, state, step = _setup(config, mnist_batch)
  cross_entropies = []
  for _ in range(20):
    state, metrics = step(state, mnist_batch, jax.random.key(1))
    cross_entropies.append(float(metrics["cross_entropy"]))
  assert np.mean(cross_entropies[-3:]) < 0.5 * np.mean(cross_entropies[:3]), cross_entropies


def test_cnn_trains_with_the_same_step(mnist_batch):
  config = mnist_cnn.get_config("tiny")
  config.batch_size = 16
  _, state, step = _setup(config, mnist_batch)
  first = None
  for _ in range(10):
    state, metrics = step(state, mnist_batch, jax.random.key(1))
    first = first or float(metrics["loss"])
  assert float(metrics["loss"]) < first


def test_players_only_move_their_own_parameters(mnist_batch):
  frozen_flow = micro_config(**{"optimizer.learning_rate": 0.0})
  _, state, step = _setup(frozen_flow, mnist_batch)
  new_state, _ = step(state, mnist_batch, jax.random.key(1))
  assert _params_equal(new_state.flow, state.flow)
  assert not _params_equal(new_state.nuisance, state.nuisance)

  frozen_classifier = micro_config(**{"nuisance_classifier.learning_rate": 0.0})
  _, state, step = _setup(frozen_classifier, mnist_batch)
  new_state, _ = step(state, mnist_batch, jax.random.key(1))
  assert _params_equal(new_state.nuisance, state.nuisance)
  assert not _params_equal(new_state.flow, state.flow)


def _half_mean_squared_norm(logits, z_n, labels):
  return 0.5 * np.mean(np.sum(np.square(logits), axis=-1))


def _reference_kernel_cka(logits, z_n, labels):
  """CKA of a Gaussian kernel on z_n (median bandwidth) and the label kernel, written out in numpy."""
  flat = np.asarray(z_n, np.float64).reshape(len(labels), -1)
  squared_distances = np.sum(np.square(flat[:, None] - flat[None]), axis=-1)
  centring = np.eye(len(labels)) - 1.0 / len(labels)
  feature_gram = centring @ np.exp(-squared_distances / np.median(squared_distances)) @ centring
  label_gram = centring @ (labels[:, None] == labels[None]).astype(np.float64) @ centring
  hsic = lambda a, b: np.trace(a @ b)
  return hsic(feature_gram, label_gram) / np.sqrt(hsic(feature_gram, feature_gram) * hsic(label_gram, label_gram))


@pytest.mark.parametrize("weight_name,term,expected_term", [
    pytest.param("logit_penalty_weight", "logit_penalty", _half_mean_squared_norm, marks=pytest.mark.slow),
    ("label_dependence_weight", "label_dependence", _reference_kernel_cka),
])
def test_extra_loss_term_is_added_with_its_weight(mnist_batch, weight_name, term, expected_term):
  config = micro_config(**{f"loss.{weight_name}": 0.5, "loss.nuisance_weight": 0.0,
                            "loss.mle_weight": 0.0, "model.dropout": 0.0, "dequantize": False})
  parts, state, step = _setup(config, mnist_batch)
  _, metrics = step(state, mnist_batch, jax.random.key(1))
  z, _ = parts.model.apply({"params": state.flow["model"]}, jnp.asarray(mnist_batch["image"]))
  logits, z_n = np.asarray(z[:, :config.num_classes]), np.asarray(z[:, config.num_classes:])
  expected = expected_term(logits, z_n, mnist_batch["label"])
  np.testing.assert_allclose(metrics[term], expected, rtol=1e-4)
  np.testing.assert_allclose(metrics["loss"], metrics["cross_entropy"] + 0.5 * expected, rtol=1e-4)


def test_penalties_read_only_the_part_of_z_n_the_config_names(mnist_batch):
  config = micro_config(**{"loss.class_mean_gap_weight": 0.5, "loss.penalised_part": "final",
                           "loss.nuisance_weight": 0.0, "loss.mle_weight": 0.0, "model.dropout": 0.0,
                           "dequantize": False})
  parts, state, step = _setup(config, mnist_batch)
  _, metrics = step(state, mnist_batch, jax.random.key(1))
  z, _ = parts.model.apply({"params": state.flow["model"]}, jnp.asarray(mnist_batch["image"]))
  z_n, labels = z[:, config.num_classes:], jnp.asarray(mnist_batch["label"])
  final = independence.class_mean_gap(z_n[:, parts.model.nuisance_parts()["final"]], labels, config.num_classes)
  np.testing.assert_allclose(metrics["class_mean_gap"], final, rtol=1e-4)
  assert abs(float(final) - float(independence.class_mean_gap(z_n, labels, config.num_classes))) > 1e-3


def test_label_dependence_is_one_for_the_labels_and_near_its_floor_for_noise():
  labels = np.arange(512) % 10
  label_features = 3.0 * jax.nn.one_hot(labels, 10)
  np.testing.assert_allclose(losses.label_dependence(label_features, labels, 10), 1.0, rtol=1e-5)
  noise = jax.random.normal(jax.random.key(0), (512, 64))
  half_noise = noise.at[:, :8].add(2.0 * jax.nn.one_hot(labels, 8) * (labels[:, None] < 8))
  independent = float(losses.label_dependence(noise, labels, 10))
  dependent = float(losses.label_dependence(half_noise, labels, 10))
  assert independent < 0.1 < dependent, (independent, dependent)
  np.testing.assert_allclose(losses.label_dependence(100.0 * half_noise, labels, 10), dependent, rtol=1e-4)


@pytest.mark.slow
def test_reset_classifier_forgets_its_past_only_on_reset_steps(mnist_batch):
  """Two states that differ only in the nuisance classifier's history train alike at a
  reset step (a multiple of reset_every_steps) and differently at any other step."""
  config = micro_config(**{"nuisance_classifier.reset_every_steps": 3})
  parts, state, step = _setup(config, mnist_batch)
  other_init = parts.create_state(jnp.asarray(mnist_batch["image"]), jax.random.key(7))
  other = state.replace(nuisance=other_init.nuisance, nuisance_opt_state=other_init.nuisance_opt_state)
  assert not _params_equal(other.nuisance, state.nuisance)
  for at_step, forgets in ((3, True), (4, False)):
    a, _ = step(state.replace(step=jnp.int32(at_step)), mnist_batch, jax.random.key(1))
    b, _ = step(other.replace(step=jnp.int32(at_step)), mnist_batch, jax.random.key(1))
    assert _params_equal(a.nuisance, b.nuisance) == forgets
    assert _params_equal(a.flow, b.flow) == forgets


def test_replayed_classifier_trains_on_the_last_k_batches(mnist_batch):
  """With replay_batches = K the nuisance classifier's updates read the last K batches' z_n: step 0 fills
  every slot with its batch, step s overwrites slot s % K only, the stored z_n change the classifier's
  update (`test_sharded_step_equals_single_device_step` compares the buffer on 1 and 8 devices)."""
  config = micro_config(**{"nuisance_classifier.replay_batches": 3})
  _, state, step = _setup(config, mnist_batch)
  assert state.nuisance_replay["labels"].shape == (16, 3)
  first, _ = step(state, mnist_batch, jax.random.key(1))
  labels = np.asarray(mnist_batch["label"])
  np.testing.assert_array_equal(first.nuisance_replay["labels"], np.repeat(labels[:, None], 3, axis=1))
  stored = np.asarray(first.nuisance_replay["z_n"])
  np.testing.assert_array_equal(stored[:, 0], stored[:, 2])

  other_batch = {**mnist_batch, "image": mnist_batch["image"][::-1], "label": mnist_batch["label"][::-1]}
  second, _ = step(first, other_batch, jax.random.key(2))
  np.testing.assert_array_equal(second.nuisance_replay["labels"][:, 1], labels[::-1])
  np.testing.assert_array_equal(second.nuisance_replay["labels"][:, [0, 2]], first.nuisance_replay["labels"][:, [0, 2]])
  np.testing.assert_array_equal(second.nuisance_replay["z_n"][:, [0, 2]], stored[:, [0, 2]])
  assert not np.allclose(second.nuisance_replay["z_n"][:, 1], stored[:, 1])

  forgotten = first.replace(nuisance_replay={**first.nuisance_replay, "z_n": jnp.zeros_like(stored)})
  assert not _params_equal(step(forgotten, other_batch, jax.random.key(2))[0].nuisance, second.nuisance)


def test_sharded_step_equals_single_device_step(mnist_batch):
  """Over 8 devices as over one, with the nuisance classifier's replay buffer (replay_batches = 2)."""
  config = micro_config(**{"nuisance_classifier.replay_batches": 2})
  _, state, step = _setup(config, mnist_batch)
  single_state, single_metrics = step(state, mnist_batch, jax.random.key(1))

  mesh = parallel.make_data_mesh()
  sharded_batch = jax.device_put(mnist_batch, parallel.batch_sharding(mesh))
  replicated_state = jax.device_put(state, parallel.replicated(mesh))
  sharded_state, sharded_metrics = step(replicated_state, sharded_batch, jax.random.key(1))
  assert len(sharded_batch["image"].sharding.device_set) == 8
  np.testing.assert_allclose(sharded_metrics["loss"], single_metrics["loss"], rtol=1e-5)
  # Adamax's first step moves a parameter by lr * g / (|g| + 1e-8): for a gradient
  # near 1e-7 the batch sum's rounding, which sharding reorders, shows at a few
  # thousandths of the learning rate (1e-3), hence atol = 1e-2 * lr.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               sharded_state.flow, single_state.flow)
  np.testing.assert_allclose(sharded_state.nuisance_replay["z_n"], single_state.nuisance_replay["z_n"],
                             rtol=1e-5, atol=1e-5)


def test_resumed_run_equals_uninterrupted_run(micro_run, tmp_path):
  straight_dir, straight = micro_run
  train.train_and_evaluate(micro_config(total_steps=2), str(tmp_path / "resumed"))
  resumed = train.train_and_evaluate(micro_config(), str(tmp_path / "resumed"))
  assert resumed["step"] == straight["step"] == 4
  a, b = train.load_run(straight_dir), train.load_run(tmp_path / "resumed")
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7), a.variables, b.variables)
  for name in ("test/logit_error", "test/bits_per_dim"):
    np.testing.assert_allclose(resumed[name], straight[name], rtol=1e-4)
  records = run_folder.read_records(tmp_path / "resumed")
  assert [record["step"] for record in records if record.get("event") == run_folder.JOB_START] == [0, 2]
  assert 0 < run_folder.wall_seconds(records) < 600


def test_run_writes_metrics_and_loads_for_analysis(micro_run):
  workdir, final = micro_run
  assert {"test/logit_error", "test/nuisance_error", "test/bits_per_dim", "train/logit_error"} <= set(final)
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  assert len(lines) >= 3
  assert list((workdir / "tensorboard").iterdir())
  run = train.load_run(workdir)
  assert run.kind == "fi_revnet" and run.step == 4
  z, _ = run.model.apply(run.variables, jnp.zeros((2, 32, 32, 3)))
  assert z.shape == (2, 3072)
  # One definition of the model's logits: the analyses' (features.logits_function on the split's
  # images) and the training evaluation's agree to the example.
  images, labels = data.as_numpy("mnist", "test", max_examples=128)
  logits = features.logits_function(run.model)(run.variables, images)
  assert np.sum(np.argmax(logits, -1) != labels) == round(final["test/logit_error"] / 100 * 128)  # in %


@pytest.mark.parametrize("overrides,message", [
    ({"dataset": "cifar10"}, "config.dataset must be one of"),
    ({"batch_size": 12}, "multiple of the 8 devices"),
    ({"loss.nuisance_weight": -1.0}, "must be a finite number >= 0"),
    ({"loss.nuisance_form": "reversed"}, "nuisance_form must be one of"),
    ({"model.kind": "resnet"}, "config.model.kind must be one of"),
    ({"loss.logit_penalty_weight": -0.1}, "logit_penalty_weight=-0.1 must be a finite number >= 0"),
    ({"loss.label_dependence_weight": -1.0}, "label_dependence_weight=-1.0 must be a finite number >= 0"),
    ({"model.kind": "cnn", "loss.nuisance_weight": 0.0, "loss.mle_weight": 0.0,
      "loss.label_dependence_weight": 1.0}, "A CNN has no nuisance latent"),
    ({"nuisance_classifier.reset_every_steps": -1}, "reset_every_steps=-1 must be an integer >= 0"),
])
def test_bad_config_values_are_rejected(overrides, message):
  with pytest.raises(ValueError, match=message):
    train.validate(micro_config(**overrides), num_devices=8)


def _train_command(workdir, total_steps):
  return [
      sys.executable, "-m", "experiments.train", "--config=configs/mnist_ice.py:tiny",
      f"--workdir={workdir}", f"--config.total_steps={total_steps}", "--config.model.steps_per_level=1",
      "--config.model.width=8", "--config.checkpoint_every_steps=5", "--config.log_every_steps=5",
      "--config.eval_every_steps=1000", "--config.eval_examples=500", "--config.train_eval_examples=500",
  ]


@pytest.mark.slow  # 80 s on the 2-core CPU; fast: test_resumed_run_equals_uninterrupted_run and the SIGTERM tests
def test_killed_job_resumes_from_its_last_checkpoint(tmp_path):
  env = {**os.environ, "XLA_FLAGS": ONE_DEVICE_XLA_FLAGS}
  job = subprocess.Popen(_train_command(tmp_path, 100_000), cwd=REPO, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  checkpoints = tmp_path / "checkpoints"
  deadline = time.monotonic() + 240
  while time.monotonic() < deadline and not any(p.name.isdigit() and int(p.name) >= 10
                                                for p in checkpoints.glob("*")):
    time.sleep(0.5)
  job.send_signal(signal.SIGKILL)
  job.wait()
  saved = max(int(p.name) for p in checkpoints.glob("*") if p.name.isdigit())
  assert saved >= 10
  finished = subprocess.run(_train_command(tmp_path, saved + 5), cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
  assert finished.returncode == 0, finished.stderr[-3000:]
  assert f"Resumed from step {saved}" in finished.stderr
  assert train.load_run(tmp_path).step == saved + 5
