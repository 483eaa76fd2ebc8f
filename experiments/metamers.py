r"""Metamers, nuisance interpolations and their metrics for a trained fi-RevNet (SPEC 4).

    python -m experiments.metamers --workdir=RUN [--oracle_workdir=CNN_RUN] [--posthoc]

Pairs test images (a, b) of different classes and writes into RUN/analysis/ (or --out):

* metamers.png: rows of (logit source a, metamer F^{-1}(z_s(a), z_n(b)), nuisance source b);
* figure1.png: the paper's Figure 1, one logit source and its metamers with
  --figure1_nuisances nuisance sources of other classes, all with the same logits;
* interpolations.png: z_s(a) fixed, z_n moving from a's to b's, one path per row;
* metamer_metrics.json: the logit-preservation error of the metamers and along
  the paths; with an oracle run (a CNN trained on clean data), the fractions of
  metamers (and of each path step) it puts in a's class, b's class or another;
  the logit error on the logit sources as evaluation feeds them and with the training's
  dequantisation noise added to each channel and to all (`dequantization.noise_sensitivity`);
  with --posthoc, the train and test errors of a fresh nuisance classifier
  trained on z_n of the training split, and the kernel dependence of the test
  z_n on the labels (`posthoc.mean_label_dependence`, in batches of the
  run's training batch size, as the training term; `_permuted`: the labels
  shuffled, the estimate's floor).
"""

import json
import os
import sys

import jax
import numpy as np
from absl import flags

from experiments import commands
from invjax import data, metamers, parallel, plotting, train
from invjax.analysis import batching, dequantization, features, oracle, posthoc
from invjax.train import run_folder

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder of a trained fi-RevNet.")
_ORACLE_WORKDIR = flags.DEFINE_string(
    "oracle_workdir", None, "Run folder of an oracle classifier (e.g. trained with configs/mnist_cnn.py)."
)
_OUT = flags.DEFINE_string("out", None, "Output folder (default: WORKDIR/analysis).")
_SPLIT = flags.DEFINE_string("split", "test", "Split the pairs are drawn from.")
_NUM_PAIRS = flags.DEFINE_integer(
    "num_pairs", 1000, "Pairs of different classes the metrics average over (at least figure_pairs and num_paths)."
)
_FIGURE_PAIRS = flags.DEFINE_integer("figure_pairs", 18, "Pairs shown in metamers.png (three per row).")
_NUM_PATHS = flags.DEFINE_integer("num_paths", 8, "Interpolation paths (rows of interpolations.png).")
_PATH_STEPS = flags.DEFINE_integer("path_steps", 9, "Steps of each interpolation path, endpoints included.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Examples per compiled call.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the pairing and of the post-hoc classifier.")
_FIGURE1_NUISANCES = flags.DEFINE_integer(
    "figure1_nuisances", 5, "Nuisance sources in figure1.png (the paper's Figure 1 layout); 0: no figure1.png.")
_MAX_EXAMPLES = flags.DEFINE_integer(
    "max_examples", 0, "Read only the first N examples of the split (0: all); e.g. 2000 for ImageNet.")
_POSTHOC = flags.DEFINE_bool(
    "posthoc", False, "Also train a post-hoc nuisance classifier on z_n (slow: encodes the splits)."
)
_POSTHOC_PARTS = flags.DEFINE_bool(
    "posthoc_parts", True, "With --posthoc, also train an MLP and a linear probe on each part of z_n "
    "(the final tensor's non-logit entries, each split latent) and a linear probe on all of it.")
_POSTHOC_EPOCHS = flags.DEFINE_integer("posthoc_epochs", 10, "Epochs of the post-hoc nuisance classifier.")
_POSTHOC_TRAIN_EXAMPLES = flags.DEFINE_integer("posthoc_train_examples", 0, "Training examples it uses (0: all).")
_POSTHOC_TEST_EXAMPLES = flags.DEFINE_integer("posthoc_test_examples", 0, "Test examples it is scored on (0: all).")
flags.mark_flag_as_required("workdir")


def _progress(what: str):
  return lambda done, total: print(f"  {what} {done}/{total}", flush=True)


def _nuisances(run, mesh, split: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
  """z_n and labels of the first `limit` examples (0: all) of a split, encoded batch by batch."""
  options = run.config.dataset_options
  batches = data.load(run.config.dataset, split, batch_size=_BATCH_SIZE.value, num_epochs=1, shuffle=False,
                      dequantize=False, drop_remainder=False, **options)
  available = data.num_examples(run.config.dataset, split, **options)
  total = min(limit, available) if limit else available
  report = _progress(f"encoded {split}")
  z_n, labels, done = [], [], 0
  for index, batch in enumerate(batches, start=1):
    z_n.append(np.asarray(metamers.encode(run.model, run.variables, batch["image"], mesh=mesh)[1])[batch["mask"]])
    labels.append(batch["label"][batch["mask"]])
    done += int(batch["mask"].sum())
    if index % 20 == 0 or done >= total:
      report(min(done, total), total)
    if done >= total:
      break
  return np.concatenate(z_n)[:total], np.concatenate(labels)[:total]


def _json_ready(tree):
  """Metrics (nested dicts of numbers, strings and arrays) as JSON-serialisable values, in order."""
  if isinstance(tree, dict):
    return {key: _json_ready(value) for key, value in tree.items()}
  return np.asarray(tree).tolist()


def _oracle_metrics(oracle_run, x_a, x_met, paths, y_a, y_b) -> tuple[dict, np.ndarray, np.ndarray]:
  """The oracle run's metrics, its classes of the metamers (P,) and of the path steps (paths, steps)."""
  oracle_jit = jax.jit(features.logits_function(oracle_run.model))
  oracle_logits = lambda x: batching.map_in_batches(
      lambda chunk: oracle_jit(oracle_run.variables, chunk), x, batch_size=_BATCH_SIZE.value
  )
  num_paths = len(paths)
  metrics = {
      "workdir": _ORACLE_WORKDIR.value,
      "error_on_logit_sources": float(np.mean(oracle_logits(x_a).argmax(-1) != y_a)),
      "metamers": oracle.oracle_agreement(oracle_logits, x_met, y_a, y_b),
      "paths": oracle.interpolation_oracle_agreement(oracle_logits, paths, y_a[:num_paths], y_b[:num_paths]),
  }
  path_classes = oracle_logits(paths.reshape(-1, *paths.shape[2:])).argmax(-1).reshape(paths.shape[:2])
  return metrics, oracle_logits(x_met).argmax(-1), path_classes


def _posthoc_metrics(run, mesh) -> dict:
  print("Post-hoc nuisance classifier: encoding the splits ...")
  train_set = _nuisances(run, mesh, "train", _POSTHOC_TRAIN_EXAMPLES.value)
  test_set = _nuisances(run, mesh, "test", _POSTHOC_TEST_EXAMPLES.value)
  # The MLP on all of z_n is the classifier reported at the top level; with --posthoc_parts the
  # linear probe and each part join it in the same pass (one training per part and probe).
  parts = {"all": slice(None), **(run.model.nuisance_parts() if _POSTHOC_PARTS.value else {})}
  probes = posthoc.PROBES if _POSTHOC_PARTS.value else {"mlp": posthoc.PROBES["mlp"]}
  by_part = posthoc.posthoc_by_part(
      jax.random.key(_SEED.value), train_set, test_set, parts, num_classes=run.config.num_classes, probes=probes,
      num_epochs=_POSTHOC_EPOCHS.value, report=lambda line: print(line, flush=True))
  test_dependence = lambda labels: posthoc.mean_label_dependence(
      test_set[0], labels, num_classes=run.config.num_classes, batch_size=min(run.config.batch_size, len(labels)))
  metrics = {
      **by_part["all"]["mlp"],
      "train_examples": len(train_set[1]), "test_examples": len(test_set[1]), "epochs": _POSTHOC_EPOCHS.value,
      "test_label_dependence": test_dependence(test_set[1]),
      "test_label_dependence_permuted": test_dependence(np.random.default_rng(_SEED.value).permutation(test_set[1])),
  }
  if _POSTHOC_PARTS.value:
    metrics["by_part"] = by_part
  return metrics


def _figure1(model, variables, mesh, images, labels, logit_source: int, title: str):
  """figure1.png and its metrics: images[logit_source] and its metamers with nuisance sources of other classes."""
  others = np.flatnonzero(labels != labels[logit_source])
  chosen = np.random.default_rng(_SEED.value).permutation(others)[:_FIGURE1_NUISANCES.value]
  nuisance_sources = images[chosen]
  x_met = np.asarray(metamers.metameric_sample(
      model, variables, np.repeat(images[logit_source][None], len(chosen), 0), nuisance_sources, mesh=mesh))
  logits = jax.jit(features.logits_function(model))
  source_logits = np.asarray(logits(variables, images[logit_source][None]))[0]
  metamer_logits = np.asarray(logits(variables, x_met))
  figure = plotting.logit_metamer_figure(
      images[logit_source], nuisance_sources, x_met, source_logits=source_logits,
      metamer_logits=metamer_logits, title=title)
  metrics = {
      "logit_source_label": labels[logit_source], "nuisance_source_labels": labels[chosen],
      "metamer_classes": metamer_logits.argmax(-1),
      "max_abs_logit_difference": np.max(np.abs(metamer_logits - source_logits)),
  }
  print(f"Figure 1: {len(chosen)} metamers of one logit source (label {labels[logit_source]}) with nuisance sources "
        f"of other classes; max |logit difference| over {len(source_logits)} logits: "
        f"{metrics['max_abs_logit_difference']:.3e}")
  return figure, metrics


def _load_runs():
  """The run and (with --oracle_workdir) the oracle run; exits with the reason if either cannot be used."""
  try:
    run = train.load_run(_WORKDIR.value)
    oracle_run = train.load_run(_ORACLE_WORKDIR.value) if _ORACLE_WORKDIR.value else None
  except (ValueError, FileNotFoundError) as error:
    print(f"Error: {error}", file=sys.stderr)
    sys.exit(1)
  if run.kind != "fi_revnet":
    print(f"Error: {_WORKDIR.value} holds a {run.kind} model; metamers need a fi-RevNet run.", file=sys.stderr)
    sys.exit(1)
  return run, oracle_run


def check_flags() -> None:
  """Raises a ValueError for the first bad count, size or path flag, before any work."""
  minimums = {"figure_pairs": (_FIGURE_PAIRS, 1), "num_paths": (_NUM_PATHS, 1), "path_steps": (_PATH_STEPS, 2),
              "batch_size": (_BATCH_SIZE, 1), "seed": (_SEED, 0), "figure1_nuisances": (_FIGURE1_NUISANCES, 0),
              "max_examples": (_MAX_EXAMPLES, 0), "posthoc_epochs": (_POSTHOC_EPOCHS, 1),
              "posthoc_train_examples": (_POSTHOC_TRAIN_EXAMPLES, 0),
              "posthoc_test_examples": (_POSTHOC_TEST_EXAMPLES, 0)}
  for name, (flag, minimum) in minimums.items():
    if flag.value < minimum:
      raise ValueError(f"--{name}={flag.value} must be >= {minimum}.")
  needed = max(_FIGURE_PAIRS.value, _NUM_PATHS.value)
  if _NUM_PAIRS.value < needed:
    raise ValueError(f"--num_pairs={_NUM_PAIRS.value} must be >= {needed}, the pairs the figures show "
                     "(--figure_pairs and --num_paths): raise it or lower those.")
  if _OUT.value and os.path.exists(_OUT.value) and not os.path.isdir(_OUT.value):
    raise ValueError(f"--out={_OUT.value} is a file: pass a folder (it is created if missing).")


def main(argv):
  commands.check_no_arguments(argv)
  with commands.one_line_errors():
    check_flags()
  run, oracle_run = _load_runs()
  with commands.one_line_errors():
    if _SPLIT.value not in data.splits(run.config.dataset):
      raise ValueError(f"--split={_SPLIT.value} is not a split of {run.config.dataset}: "
                       f"choose one of {data.splits(run.config.dataset)}.")
    out = str(commands.output_folder(_OUT.value or os.path.join(_WORKDIR.value, run_folder.ANALYSIS_DIR), "out"))
  mesh = parallel.make_data_mesh()
  model, variables = run.model, run.variables

  images, labels = data.as_numpy(run.config.dataset, _SPLIT.value, max_examples=_MAX_EXAMPLES.value,
                                 **run.config.dataset_options)
  num_pairs = max(_NUM_PAIRS.value, _FIGURE_PAIRS.value, _NUM_PATHS.value)
  a, b = oracle.pairs_of_different_classes(labels, num_pairs, np.random.default_rng(_SEED.value))
  x_a, x_b, y_a, y_b = images[a], images[b], labels[a], labels[b]
  print(f"Metamers of {num_pairs} pairs from {run.config.dataset}/{_SPLIT.value} ...")
  x_met = batching.map_in_batches(
      lambda logit_srcs, nuisance_srcs: metamers.metameric_sample(model, variables, logit_srcs, nuisance_srcs,
                                                                  mesh=mesh),
      x_a, x_b, batch_size=_BATCH_SIZE.value, report=_progress("metamers"),
  )
  num_paths = _NUM_PATHS.value
  print(f"Interpolations of {num_paths} pairs in {_PATH_STEPS.value} steps ...")
  paths = np.asarray(
      metamers.nuisance_interpolation(model, variables, x_a[:num_paths], x_b[:num_paths], _PATH_STEPS.value, mesh=mesh)
  )

  logits = jax.jit(features.logits_function(model))
  metamer_logits, source_logits = batching.map_in_batches(
      lambda *inputs: tuple(logits(variables, x) for x in inputs), x_met, x_a, batch_size=_BATCH_SIZE.value,
      report=_progress("logits of metamers and sources"),
  )
  path_logits = logits(variables, paths.reshape(-1, *paths.shape[2:])).reshape(*paths.shape[:2], -1)
  metrics = {
      "workdir": _WORKDIR.value,
      "command": commands.command_line("experiments.metamers"),
      "step": run.step,
      "split": _SPLIT.value,
      "logit_preservation": oracle.logit_preservation(metamer_logits, source_logits),
      "path_logit_preservation": oracle.logit_preservation(path_logits, source_logits[:num_paths]),
      "dequantization_noise_error": dequantization.noise_sensitivity(
          lambda x: logits(variables, x), x_a, y_a, jax.random.key(_SEED.value), batch_size=_BATCH_SIZE.value),
  }
  metamer_captions = [f"model {c}" for c in metamer_logits.argmax(-1)]
  path_captions = None
  if oracle_run is not None:
    metrics["oracle"], metamer_classes, path_classes = _oracle_metrics(oracle_run, x_a, x_met, paths, y_a, y_b)
    metamer_captions = [f"oracle {c}" for c in metamer_classes]
    path_captions = [[f"oracle {c}" for c in row] for row in path_classes]
  if _POSTHOC.value:
    metrics["posthoc_nuisance_classifier"] = _posthoc_metrics(run, mesh)

  shown = slice(0, _FIGURE_PAIRS.value)
  title = f"{os.path.basename(os.path.normpath(_WORKDIR.value))} (step {run.step})"
  figures = {
      "metamers.png": plotting.metamer_figure(
          x_a[shown], x_met[shown], x_b[shown], title=title,
          captions=[(f"label {ya}", met, f"label {yb}")
                    for ya, met, yb in zip(y_a, metamer_captions, y_b, strict=True)][shown],
      ),
      "interpolations.png": plotting.interpolation_figure(
          paths, nuisance_sources=x_b[:num_paths], captions=path_captions, title=title
      ),
  }
  if _FIGURE1_NUISANCES.value:
    figures["figure1.png"], metrics["figure1"] = _figure1(model, variables, mesh, images, labels, a[0], title)
  written = []
  for name, figure in figures.items():
    written.append(os.path.join(out, name))
    figure.savefig(written[-1], dpi=100)
  metrics = _json_ready(metrics)
  written.append(os.path.join(out, "metamer_metrics.json"))
  with open(written[-1], "w") as file:
    json.dump(metrics, file, indent=2)
  print(json.dumps(metrics, indent=2))
  print("\n".join(f"Wrote {path}" for path in written))


if __name__ == "__main__":
  commands.run(main)
