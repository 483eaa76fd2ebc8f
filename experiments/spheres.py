r"""Decision boundaries of a fi-RevNet on the concentric spheres (SPEC 4).

    python -m experiments.spheres --out=runs/spheres

1. Trains a small vector fi-RevNet (`analysis.spheres.sphere_flow`) with
   cross-entropy on z_s, on fresh draws of the spheres data (radii 1, 10, d = 100).
2. Trains a nuisance classifier on z_n of the frozen flow (`analysis.posthoc`).
3. Draws the decisions of both classifiers on two planes through the origin:
   through a point x of the inner sphere and a point x' of the outer sphere, and
   through x and its metamer F^{-1}(z_s(x), z_n(x')).

Writes OUT/spheres_planes.png and OUT/spheres_metrics.json and prints their paths.
"""

import json
import os

import jax
import numpy as np
from absl import app, flags

from invjax import data, metamers, plotting
from invjax.analysis import features, planes, posthoc, spheres

_OUT = flags.DEFINE_string("out", "runs/spheres", "Output directory.")
_STEPS = flags.DEFINE_integer("steps", 300, "Training steps of the flow.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Training batch size.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate of the flow.")
_NUISANCE_EXAMPLES = flags.DEFINE_integer(
    "nuisance_examples", 10_000, "Fresh examples the nuisance classifier trains on."
)
_NUISANCE_EPOCHS = flags.DEFINE_integer("nuisance_epochs", 10, "Epochs of the nuisance classifier.")
_RESOLUTION = flags.DEFINE_integer("resolution", 201, "Grid points per plane axis.")
_EXTENT = flags.DEFINE_float(
    "extent", 12.0, "The planes are drawn over coordinates in [-extent, extent], widened to show the marked points."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the data stream and the initialisations.")


def _first_of_class(images: np.ndarray, labels: np.ndarray, label: int) -> np.ndarray:
  return images[np.flatnonzero(labels == label)[0]]


def main(argv):
  del argv
  os.makedirs(_OUT.value, exist_ok=True)
  flow_key, nuisance_key = jax.random.split(jax.random.key(_SEED.value))
  model = spheres.sphere_flow()

  print(f"Training the flow for {_STEPS.value} steps (batch {_BATCH_SIZE.value}) ...")
  train_batches = data.load("spheres", "train", batch_size=_BATCH_SIZE.value, seed=_SEED.value)
  variables = spheres.train_flow_classifier(
      flow_key, model, train_batches, num_steps=_STEPS.value, learning_rate=_LEARNING_RATE.value,
      report=lambda step, m: print(f"  step {step:5d}/{_STEPS.value}  loss {m['loss']:.4f}  error {m['error']:.3f}"),
  )
  logits_fn = jax.jit(features.logits_function(model))
  logit_classifier = lambda points: logits_fn(variables, spheres.as_model_input(model, points))

  test_images, test_labels = data.as_numpy("spheres", "test")
  logit_test_error = float(np.mean(np.argmax(logit_classifier(test_images), -1) != test_labels))
  print(f"Logit classifier test error: {logit_test_error:.4f}")

  print(f"Training a nuisance classifier on z_n of {_NUISANCE_EXAMPLES.value} fresh examples ...")
  nuisance_images, nuisance_labels = data.as_numpy(
      "spheres", "train", num_examples=_NUISANCE_EXAMPLES.value, seed=_SEED.value + 1
  )
  z_n_of = lambda points: metamers.encode(model, variables, spheres.as_model_input(model, points))[1]
  result = posthoc.posthoc_nuisance_errors(
      nuisance_key, (z_n_of(nuisance_images), nuisance_labels), (z_n_of(test_images), test_labels),
      num_classes=spheres.NUM_CLASSES, num_epochs=_NUISANCE_EPOCHS.value,
      report=lambda epoch, loss: print(f"  epoch {epoch}/{_NUISANCE_EPOCHS.value}  loss {loss:.4f}"),
  )
  print(f"Nuisance classifier error: train {result.train_error:.4f}, test {result.test_error:.4f}")
  nuisance_classifier = lambda points: result.classifier.apply(result.variables, z_n_of(points))

  inner, outer = _first_of_class(test_images, test_labels, 0), _first_of_class(test_images, test_labels, 1)
  metamer = metamers.metameric_sample(
      model, variables, spheres.as_model_input(model, inner[None]), spheres.as_model_input(model, outer[None])
  ).reshape(-1)
  plane_of_data = planes.plane_through(inner, outer)
  plane_of_metamer = planes.plane_through(inner, metamer)
  panels = []
  for plane, marked, plane_name in [
      (plane_of_data, {"x (inner)": inner, "x' (outer)": outer}, "plane through x, x'"),
      (plane_of_metamer, {"x (inner)": inner, "metamer": metamer}, "plane through x and its metamer"),
  ]:
    marked = {name: np.asarray(plane.coordinates(point)) for name, point in marked.items()}
    extent = max(_EXTENT.value, 1.1 * max(np.max(np.abs(coordinates)) for coordinates in marked.values()))
    for classifier, classifier_name in [
        (logit_classifier, "logit classifier"), (nuisance_classifier, "nuisance classifier")
    ]:
      decisions, axis = planes.decision_grid(classifier, plane, extent=extent, resolution=_RESOLUTION.value)
      panels.append(plotting.PlanePanel(
          f"{classifier_name},\n{plane_name}", np.asarray(decisions), np.asarray(axis), marked
      ))
  figure = plotting.decision_plane_figure(
      panels, circle_radii=(1.0, 10.0), class_names=("inner sphere (r=1)", "outer sphere (r=10)"),
      title=f"fi-RevNet (CE, {_STEPS.value} steps) on the concentric spheres, d = 100",
  )
  figure_path = os.path.join(_OUT.value, "spheres_planes.png")
  figure.savefig(figure_path, dpi=100)

  metrics = {
      "logit_classifier_test_error": logit_test_error,
      "nuisance_classifier_train_error": result.train_error,
      "nuisance_classifier_test_error": result.test_error,
      "metamer_radius": float(np.linalg.norm(metamer)),
      "metamer_logit_class": int(np.argmax(logit_classifier(metamer[None]), -1)[0]),
      "metamer_nuisance_class": int(np.argmax(nuisance_classifier(metamer[None]), -1)[0]),
  }
  metrics_path = os.path.join(_OUT.value, "spheres_metrics.json")
  with open(metrics_path, "w") as file:
    json.dump(metrics, file, indent=2)
  print(json.dumps(metrics, indent=2))
  print(f"Wrote {figure_path}\nWrote {metrics_path}")


if __name__ == "__main__":
  app.run(main)
