r"""Collects the runs of docs/results.md into machine-readable results and tables.

    python -m experiments.results --runs=runs/results --out=results

Reads every run folder under RUNS/mnist, RUNS/shift_mnist, RUNS/ablation and
RUNS/mnist_ablation (each written by `experiments.train`, MNIST runs also
analysed by `experiments.metamers --posthoc`) and writes

* OUT/mnist.json: one object per MNIST fi-RevNet run: logit and post-hoc
  nuisance-classifier train/test errors (%), test bits/dim;
* OUT/shift_mnist.json: one object per shiftMNIST run: train, clean-test and
  shifted-test errors (%);
* OUT/ablation.json, OUT/mnist_ablation.json: the shiftMNIST and MNIST rows of
  the ablations, with the settings they vary;
* OUT/tables.md: the same numbers as Markdown tables, for docs/results.md;
* FIGURES/: the shiftMNIST errors as a bar chart, the MNIST runs' metamer and
  interpolation figures and the spheres figure (RUNS/spheres), for docs/results.md.

Every row carries the run's epochs, wall time, hardware and the exact command
that trained it, read from the run folder. A run that has not finished
(its final_metrics.json missing) is an error, not a silent gap.
"""

import json
import pathlib
import shutil
import sys

import matplotlib.figure
from absl import app, flags

from experiments import commands
from invjax.train import checkpoints, writers

_RUNS = flags.DEFINE_string(
    "runs", "runs/results", "Folder with the mnist/, shift_mnist/, ablation/ and mnist_ablation/ runs.")
_OUT = flags.DEFINE_string("out", "results", "Folder the JSON files and tables are written to.")
_FIGURES = flags.DEFINE_string("figures", "docs/figures", "Folder the figures are written to.")

METAMER_METRICS = pathlib.Path("analysis") / "metamer_metrics.json"


def _run_facts(workdir: pathlib.Path) -> dict:
  """What every row says about its run: model, loss, epochs, wall time, hardware, command."""
  config = checkpoints.load_config(workdir)
  final_path = workdir / writers.FINAL_METRICS_FILE
  if not final_path.exists():
    raise FileNotFoundError(f"{final_path} does not exist: the run in {workdir} has not finished; rerun its command.")
  final = json.loads(final_path.read_text())
  records = writers.read_records(workdir)
  hardware = [record["hardware"] for record in records if "hardware" in record]
  return {
      "config": config,
      "final": final,
      "model": "cnn" if config.model.kind == "cnn" else "fi-revnet",
      "loss": "ice" if config.loss.nuisance_weight > 0 else "ce",
      "epochs": round(final["epochs"], 2),
      "wall_minutes": round(writers.wall_seconds(records) / 60, 1),
      "hardware": hardware[-1] if hardware else "unknown",
      "command": commands.last_recorded(workdir),
  }


def _common(facts: dict) -> dict:
  return {key: facts[key] for key in ("epochs", "wall_minutes", "hardware", "command")}


def _percent(value: float) -> float:
  return round(value, 2)


def _from_fraction(value: float | None) -> float | None:
  """A fraction as a percentage; None (JSON null) where the analysis did not measure it."""
  return None if value is None else _percent(100 * value)


def mnist_row(workdir: pathlib.Path) -> dict:
  facts = _run_facts(workdir)
  final = facts["final"]
  analysis_path = workdir / METAMER_METRICS
  if not analysis_path.exists():
    raise FileNotFoundError(
        f"{analysis_path} does not exist: run `python -m experiments.metamers --workdir={workdir} --posthoc`.")
  analysis = json.loads(analysis_path.read_text())
  if "posthoc_nuisance_classifier" not in analysis:
    raise ValueError(f"{analysis_path} has no post-hoc classifier: rerun experiments.metamers with --posthoc.")
  posthoc = analysis["posthoc_nuisance_classifier"]
  metamers = analysis.get("oracle", {}).get("metamers", {})
  return {
      "model": facts["model"],
      "loss": facts["loss"],
      "logit_train_error": _percent(final["train/logit_error"]),
      "logit_test_error": _percent(final["test/logit_error"]),
      "nuisance_train_error": _from_fraction(posthoc["train_error"]),
      "nuisance_test_error": _from_fraction(posthoc["test_error"]),
      "bits_per_dim": round(final["test/bits_per_dim"], 3),
      "metamers_oracle_logit_source_class": _from_fraction(metamers.get("logit_source_class")),
      "metamers_oracle_nuisance_source_class": _from_fraction(metamers.get("nuisance_source_class")),
      **_common(facts),
      "analysis_command": analysis["command"],
  }


def shift_mnist_row(workdir: pathlib.Path) -> dict:
  facts = _run_facts(workdir)
  final, config = facts["final"], facts["config"]
  return {
      "variant": config.variant,
      "model": facts["model"],
      "loss": facts["loss"],
      "train_error": _percent(final["train/logit_error"]),
      "test_error": _percent(final["test/logit_error"]),
      "test_shifted_error": _percent(final["test_shifted/logit_error"]),
      **_common(facts),
  }


def _ablation_settings(workdir: pathlib.Path) -> dict:
  """The settings the ablations vary, as read from the run's config."""
  config = checkpoints.load_config(workdir)
  textured = config.dataset == "shift_mnist/textured"
  return {"run": workdir.name, "nuisance_form": config.loss.nuisance_form,
          "nuisance_weight": config.loss.nuisance_weight, "mle_weight": config.loss.mle_weight,
          "nuisance_classifier_steps": config.nuisance_classifier.steps_per_batch,
          "texture_max": config.dataset_options.get("texture_max") if textured else None}


def ablation_row(workdir: pathlib.Path) -> dict:
  """A shiftMNIST row that also names the settings the ablation varies."""
  return {**_ablation_settings(workdir), **shift_mnist_row(workdir)}


def mnist_ablation_row(workdir: pathlib.Path) -> dict:
  """An MNIST row that also names the settings the ablation varies."""
  settings = _ablation_settings(workdir)
  del settings["texture_max"]
  return {**settings, **mnist_row(workdir)}


def _rows(folder: pathlib.Path, make_row) -> list[dict]:
  if not folder.is_dir():
    return []
  return [make_row(workdir) for workdir in sorted(folder.iterdir()) if (workdir / "config.json").exists()]


def markdown_table(rows: list[dict], columns: list[str]) -> str:
  """A Markdown table of `columns` of `rows` (the command last, as code)."""
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  for row in rows:
    cells = [f"`{row[c]}`" if c == "command" else str(row[c]) for c in columns]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


TABLES = {
    "mnist": ["model", "loss", "logit_train_error", "logit_test_error", "nuisance_train_error",
              "nuisance_test_error", "bits_per_dim", "epochs", "wall_minutes", "command"],
    "shift_mnist": ["variant", "model", "loss", "train_error", "test_error", "test_shifted_error", "epochs",
                    "wall_minutes", "command"],
    "mnist_ablation": ["loss", "nuisance_form", "nuisance_weight", "mle_weight", "nuisance_classifier_steps",
                       "logit_train_error", "logit_test_error", "nuisance_train_error", "nuisance_test_error",
                       "bits_per_dim", "epochs", "wall_minutes", "command"],
    "ablation": ["variant", "texture_max", "model", "loss", "nuisance_form", "nuisance_weight", "mle_weight",
                 "train_error", "test_error", "test_shifted_error", "epochs", "wall_minutes", "command"],
}


def shift_mnist_figure(rows: list[dict]):
  """Bars of clean-test and shifted-test error for each shiftMNIST run, one panel per variant."""
  variants = sorted({row["variant"] for row in rows})
  figure = matplotlib.figure.Figure(figsize=(5 * len(variants), 3.6))
  axes = figure.subplots(1, len(variants), squeeze=False)
  for axis, variant in zip(axes[0], variants):
    shown = [row for row in rows if row["variant"] == variant]
    positions = range(len(shown))
    for offset, (key, label) in zip((-0.2, 0.2), (("test_error", "clean test"), ("test_shifted_error", "shifted test"))):
      bars = axis.bar([p + offset for p in positions], [row[key] for row in shown], width=0.4, label=label)
      axis.bar_label(bars, fmt="%.1f", fontsize=8)
    axis.set_xticks(list(positions), [f"{row['model']}\n{row['loss']}" for row in shown])
    axis.set_ylim(0, 100)
    axis.set_ylabel("error (%)")
    axis.set_title(f"{variant} shiftMNIST")
  axes[0][0].legend(loc="upper left")
  figure.tight_layout()
  return figure


def write_figures(runs: pathlib.Path, results: dict, figures: pathlib.Path) -> list[pathlib.Path]:
  figures.mkdir(parents=True, exist_ok=True)
  written = []
  if results["shift_mnist"]:
    written.append(figures / "shift_mnist_errors.png")
    shift_mnist_figure(results["shift_mnist"]).savefig(written[-1], dpi=100)
  copies = {runs / "spheres" / "spheres_planes.png": figures / "spheres_planes.png"}
  for workdir in sorted((runs / "mnist").glob("*")):
    for name in ("metamers.png", "interpolations.png"):
      copies[workdir / "analysis" / name] = figures / f"mnist_{workdir.name}_{name}"
  for source, target in copies.items():
    if source.exists():
      shutil.copyfile(source, target)
      written.append(target)
  return written


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  runs, out = pathlib.Path(_RUNS.value), pathlib.Path(_OUT.value)
  try:
    results = {
        "mnist": _rows(runs / "mnist", mnist_row),
        "shift_mnist": _rows(runs / "shift_mnist", shift_mnist_row),
        "ablation": _rows(runs / "ablation", ablation_row),
        "mnist_ablation": _rows(runs / "mnist_ablation", mnist_ablation_row),
    }
  except (FileNotFoundError, ValueError) as error:
    print(f"Error: {error}", file=sys.stderr)
    sys.exit(1)
  if not any(results.values()):
    print(f"Error: no finished runs under {runs}/{{mnist,shift_mnist,ablation,mnist_ablation}}.", file=sys.stderr)
    sys.exit(1)
  out.mkdir(parents=True, exist_ok=True)
  tables = []
  for name, rows in results.items():
    (out / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    tables.append(f"### {name}\n\n{markdown_table(rows, TABLES[name])}\n")
    print(f"Wrote {out / name}.json ({len(rows)} rows)")
  (out / "tables.md").write_text("\n".join(tables))
  print("\n".join(tables))
  for path in write_figures(runs, results, pathlib.Path(_FIGURES.value)):
    print(f"Wrote {path}")


if __name__ == "__main__":
  app.run(main)
