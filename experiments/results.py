r"""Collects the runs of docs/results.md into machine-readable results and tables.

    python -m experiments.results --runs=runs/results --out=results

Reads every run folder under RUNS/mnist, RUNS/shift_mnist and RUNS/ablation
(each written by `experiments.train`, MNIST runs also analysed by
`experiments.metamers --posthoc`) and writes

* OUT/mnist.json: one object per MNIST fi-RevNet run: logit and post-hoc
  nuisance-classifier train/test errors (%), test bits/dim;
* OUT/shift_mnist.json: one object per shiftMNIST run: train, clean-test and
  shifted-test errors (%);
* OUT/ablation.json: the shiftMNIST rows of the nuisance-objective ablation;
* OUT/tables.md: the same numbers as Markdown tables, for docs/results.md.

Every row carries the run's epochs, wall time, hardware and the exact command
that trained it, read from the run folder. A run that has not finished
(its final_metrics.json missing) is an error, not a silent gap.
"""

import json
import pathlib
import sys

from absl import app, flags

from experiments import commands
from invjax.train import checkpoints, writers

_RUNS = flags.DEFINE_string("runs", "runs/results", "Folder with the mnist/, shift_mnist/ and ablation/ runs.")
_OUT = flags.DEFINE_string("out", "results", "Folder the JSON files and tables are written to.")

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
  return {
      "model": facts["model"],
      "loss": facts["loss"],
      "logit_train_error": _percent(final["train/logit_error"]),
      "logit_test_error": _percent(final["test/logit_error"]),
      "nuisance_train_error": _percent(100 * posthoc["train_error"]),
      "nuisance_test_error": _percent(100 * posthoc["test_error"]),
      "bits_per_dim": round(final["test/bits_per_dim"], 3),
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


def ablation_row(workdir: pathlib.Path) -> dict:
  row = shift_mnist_row(workdir)
  loss = checkpoints.load_config(workdir).loss
  return {"run": workdir.name, "nuisance_form": loss.nuisance_form, "nuisance_weight": loss.nuisance_weight,
          "mle_weight": loss.mle_weight, **row}


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
    "ablation": ["variant", "nuisance_form", "nuisance_weight", "mle_weight", "train_error", "test_error",
                 "test_shifted_error", "epochs", "wall_minutes", "command"],
}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  runs, out = pathlib.Path(_RUNS.value), pathlib.Path(_OUT.value)
  try:
    results = {
        "mnist": _rows(runs / "mnist", mnist_row),
        "shift_mnist": _rows(runs / "shift_mnist", shift_mnist_row),
        "ablation": _rows(runs / "ablation", ablation_row),
    }
  except (FileNotFoundError, ValueError) as error:
    print(f"Error: {error}", file=sys.stderr)
    sys.exit(1)
  if not any(results.values()):
    print(f"Error: no finished runs under {runs}/{{mnist,shift_mnist,ablation}}.", file=sys.stderr)
    sys.exit(1)
  out.mkdir(parents=True, exist_ok=True)
  tables = []
  for name, rows in results.items():
    (out / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    tables.append(f"### {name}\n\n{markdown_table(rows, TABLES[name])}\n")
    print(f"Wrote {out / name}.json ({len(rows)} rows)")
  (out / "tables.md").write_text("\n".join(tables))
  print("\n".join(tables))


if __name__ == "__main__":
  app.run(main)
