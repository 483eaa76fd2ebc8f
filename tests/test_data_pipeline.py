"""Batching, seeds, padding masks, dequantisation, sharding and processes; spheres."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from invjax import data
from invjax.data import pipeline


def _first(batches):
  return next(iter(batches))


def test_train_batch_format(tfds_dir):
  batch = _first(data.load("mnist", "train", batch_size=32, data_dir=tfds_dir))
  assert set(batch) == {"image", "label", "mask"}
  assert batch["image"].shape == (32, 32, 32, 3) and batch["image"].dtype == np.float32
  assert batch["label"].shape == (32,) and batch["label"].dtype == np.int32
  assert batch["mask"].dtype == bool and batch["mask"].all()
  assert data.input_shape("mnist") == (32, 32, 3) and data.NUM_CLASSES["mnist"] == 10


def test_seeded_shuffling_is_deterministic_and_repeatable(tfds_dir):
  batches = data.load("mnist", "train", batch_size=64, seed=3, data_dir=tfds_dir)
  first, again = _first(batches), _first(batches)
  other = _first(data.load("mnist", "train", batch_size=64, seed=3, data_dir=tfds_dir))
  different = _first(data.load("mnist", "train", batch_size=64, seed=4, data_dir=tfds_dir))
  for batch in (again, other):
    np.testing.assert_array_equal(batch["image"], first["image"])
  assert not np.array_equal(different["label"], first["label"])


def test_train_epochs_visit_every_example_once(tfds_dir):
  batches = data.load(
      "mnist", "train", batch_size=1000, num_epochs=2, data_dir=tfds_dir, dequantize=False
  )
  labels = [batch["label"] for batch in batches]
  assert batches.num_batches == len(labels) == 120
  epoch_one, epoch_two = np.concatenate(labels[:60]), np.concatenate(labels[60:])
  assert np.bincount(epoch_one).tolist() == np.bincount(epoch_two).tolist()
  assert not np.array_equal(epoch_one, epoch_two)  # Reshuffled.


def test_eval_pads_last_batch_with_masked_examples(tfds_dir):
  batches = data.load("mnist", "test", batch_size=3000, data_dir=tfds_dir)
  collected = list(batches)
  assert batches.num_batches == len(collected) == 4
  assert [int(batch["mask"].sum()) for batch in collected] == [3000, 3000, 3000, 1000]
  last = collected[-1]
  np.testing.assert_array_equal(last["image"][~last["mask"]], -1.0)
  _, labels = data.as_numpy("mnist", "test", data_dir=tfds_dir)
  np.testing.assert_array_equal(np.concatenate([b["label"][b["mask"]] for b in collected]), labels)


def test_dequantize_adds_one_bin_of_uniform_noise_centred_on_the_pixel():
  images = -jnp.ones((64, 32, 32, 3))
  noisy = jax.jit(data.dequantize)(jax.random.key(0), images)
  noise = np.asarray(noisy - images)
  assert noise.min() >= -1 / 256 and noise.max() <= 1 / 256  # "<" up to float rounding.
  assert noise.min() < -0.99 / 256 and noise.max() > 0.99 / 256
  assert abs(noise.mean()) < 1e-4
  np.testing.assert_array_equal(noisy, data.dequantize(jax.random.key(0), images))


def test_dequantize_under_jit_keeps_the_sharding():
  mesh = jax.make_mesh((8,), ("data",))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  images = jax.device_put(jnp.zeros((16, 32, 32, 3)), sharding)
  noisy = jax.jit(data.dequantize)(jax.random.key(1), images)
  assert noisy.sharding.is_equivalent_to(images.sharding, images.ndim)


def test_train_is_dequantized_by_default_with_seeded_noise(tfds_dir):
  clean = _first(data.load("mnist", "train", batch_size=16, data_dir=tfds_dir, dequantize=False))
  noisy = _first(data.load("mnist", "train", batch_size=16, data_dir=tfds_dir))
  noise = noisy["image"] - clean["image"]
  assert -1 / 256 <= noise.min() < 0.0 < noise.max() <= 1 / 256  # one bin, centred on the pixel
  again = _first(data.load("mnist", "train", batch_size=16, data_dir=tfds_dir))
  np.testing.assert_array_equal(noisy["image"], again["image"])
  test_batch = _first(data.load("mnist", "test", batch_size=16, data_dir=tfds_dir))
  raw = (test_batch["image"] + 1) * 127.5
  np.testing.assert_allclose(raw, np.round(raw), atol=1e-3)  # No noise off the train split.


def test_mesh_gives_globally_sharded_arrays(tfds_dir):
  mesh = jax.make_mesh((8,), ("data",))
  options = dict(batch_size=64, data_dir=tfds_dir, dequantize=False)
  sharded = _first(data.load("mnist", "train", mesh=mesh, **options))
  local = _first(data.load("mnist", "train", **options))
  for key in ("image", "label", "mask"):
    assert isinstance(sharded[key], jax.Array)
    assert sharded[key].sharding.spec[0] == "data"
    assert len(sharded[key].addressable_shards) == 8
    np.testing.assert_array_equal(np.asarray(sharded[key]), local[key])
  noisy = _first(data.load("mnist", "train", batch_size=64, data_dir=tfds_dir, mesh=mesh))
  assert noisy["image"].sharding.spec[0] == "data"


def test_processes_read_disjoint_slices_and_yield_equal_batch_counts(monkeypatch):
  whole = data.as_numpy("spheres", "test", num_examples=1001)[0]
  monkeypatch.setattr(jax, "process_count", lambda: 3)
  shares = []
  for index in range(3):
    monkeypatch.setattr(jax, "process_index", lambda index=index: index)
    assert pipeline.local_batch_size(300) == 100
    batches = list(data.load("spheres", "test", batch_size=300, num_examples=1001))
    assert len(batches) == 4  # ceil(334 / 100) on every process.
    shares.append(np.concatenate([batch["image"][batch["mask"]] for batch in batches]))
  np.testing.assert_array_equal(np.concatenate(shares), whole)
  with pytest.raises(ValueError, match="multiple of the 3 processes"):
    pipeline.local_batch_size(256)


def test_spheres():
  batch = _first(data.load("spheres", "train", batch_size=2000, seed=0))
  assert batch["image"].shape == (2000, 100) and batch["image"].dtype == np.float32
  norms = np.linalg.norm(batch["image"], axis=1)
  np.testing.assert_allclose(norms, np.where(batch["label"] == 0, 1.0, 10.0), rtol=1e-5)
  assert 900 < batch["label"].sum() < 1100
  again = _first(data.load("spheres", "train", batch_size=2000, seed=0))
  np.testing.assert_array_equal(again["image"], batch["image"])
  other = _first(data.load("spheres", "train", batch_size=2000, seed=1))
  assert not np.array_equal(other["image"], batch["image"])
  test_a = _first(data.load("spheres", "test", batch_size=100, seed=0))
  test_b = _first(data.load("spheres", "test", batch_size=100, seed=5))
  np.testing.assert_array_equal(test_a["image"], test_b["image"])  # Fixed by data_seed only.
  small = _first(
      data.load("spheres", "train", batch_size=8, dimension=3, inner_radius=2.0, outer_radius=5.0)
  )
  assert small["image"].shape == (8, 3)
  assert data.input_shape("spheres", dimension=3) == (3,)


def test_spheres_train_epochs_are_fresh_draws():
  first, second = data.load("spheres", "train", batch_size=10, num_epochs=2, num_examples=10)
  assert not np.array_equal(first["image"], second["image"])


def test_spheres_reject_dequantization():
  with pytest.raises(ValueError, match="dequantize"):
    data.load("spheres", "train", batch_size=8, dequantize=True)
