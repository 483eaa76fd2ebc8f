r"""Collects the runs of docs/results.md into machine-readable results and tables.

    python -m experiments.results --runs=MY_RUNS                  # into MY_RUNS/results, MY_RUNS/figures
    python -m experiments.results --runs=runs/results --out=results --figures=docs/figures  # the published ones

Reads every run folder under RUNS/<group> for each group of `collect.GROUPS`
(each written by `experiments.train`, MNIST runs also analysed by
`experiments.metamers --posthoc`) and writes

* OUT/mnist.json, OUT/mnist_full.json: one object per MNIST fi-RevNet run of the
  small and of the paper's model: logit and post-hoc nuisance-classifier
  train/test errors (%), test bits/dim, the oracle's reading of metamers;
* OUT/shift_mnist.json, OUT/shift_mnist_full.json: one object per shiftMNIST run:
  train, clean-test, shifted-test and no-feature errors (%);
* OUT/textured_curve.json: textured shiftMNIST against texture images per class;
* OUT/ablation.json, OUT/mnist_ablation.json: the shiftMNIST and MNIST rows of
  the ablations, with the settings they vary;
* OUT/tables.md: the same numbers as Markdown tables, for docs/results.md;
* FIGURES/: the shiftMNIST errors as a bar chart, the MNIST runs' metamer and
  interpolation figures and the spheres figure (RUNS/spheres), for docs/results.md.

Every row carries the run's epochs, wall time, hardware and the exact command
that trained it, read from the run folder, and the model's size. A run that has
not finished (its final_metrics.json missing) is an error, not a silent gap
(`--skip_unfinished` leaves such runs out and names them). A row of an
existing OUT/<group>.json whose run has no folder under RUNS/<group> is kept, and
named: results collected before survive a new machine or a cleaned RUNS until
their runs are trained again.

OUT and FIGURES default to RUNS/results and RUNS/figures, so collecting a folder
of one's own runs never touches the repository's published results/ and
docs/figures/ (`make results` names those explicitly). A row of OUT/<group>.json
is replaced only by the run it was collected from: a row whose recorded
--workdir is another folder than RUNS/<group>/<run> (or names none) is replaced
only with --replace_rows; otherwise the command stops before writing anything.
"""

import json
import pathlib
import sys

from absl import app, flags

from experiments import collect, commands

_RUNS = flags.DEFINE_string(
    "runs", "runs/results", "Folder with a subfolder of runs per group (mnist/, shift_mnist/, ...).")
_OUT = flags.DEFINE_string("out", None, "Folder the JSON files and tables are written to (default RUNS/results).")
_FIGURES = flags.DEFINE_string("figures", None, "Folder the figures are written to (default RUNS/figures).")
_REPLACE_ROWS = flags.DEFINE_bool(
    "replace_rows", False, "Replace rows of OUT/<group>.json collected from runs in another folder than RUNS.")
_SKIP_UNFINISHED = flags.DEFINE_bool(
    "skip_unfinished", False, "Leave out runs still in progress (each is named) instead of stopping with an error.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  runs = pathlib.Path(_RUNS.value)
  out = pathlib.Path(_OUT.value) if _OUT.value else runs / "results"
  figures = pathlib.Path(_FIGURES.value) if _FIGURES.value else runs / "figures"
  results = {}
  try:
    for name, make_row in collect.GROUPS.items():
      collected = collect.rows(runs / name, make_row, _SKIP_UNFINISHED.value)
      if _SKIP_UNFINISHED.value:
        for workdir in collect.run_folders(runs / name):
          if not collect.is_finished(workdir):
            print(f"Left out {workdir}: not finished")
      earlier_path = out / f"{name}.json"
      earlier = json.loads(earlier_path.read_text()) if earlier_path.exists() else []
      kept = collect.rows_without_folders(earlier, runs / name)
      foreign = collect.rows_from_other_folders(earlier, runs / name)
      if foreign and not _REPLACE_ROWS.value:
        raise ValueError(
            f"{earlier_path} has rows of runs in another folder than {runs / name} ("
            + ", ".join(collect.recorded_workdir(row) or row["command"] for row in foreign)
            + f"), which the runs there would replace: pass another --out (default: {runs / 'results'}), "
            "or --replace_rows to replace them.")
      if kept:
        print(f"Kept {len(kept)} rows of {earlier_path} whose runs have no folder under {runs / name}: "
              + ", ".join(collect.run_name(row) or row["command"] for row in kept))
      results[name] = sorted(collected + kept, key=lambda row: collect.run_name(row) or "")
    if any(results.values()):
      commands.output_folder(out, "out")
      commands.output_folder(figures, "figures")
  except (FileNotFoundError, ValueError) as error:
    print(f"Error: {error}", file=sys.stderr)
    sys.exit(1)
  if not any((runs / name).is_dir() for name in collect.GROUPS) or not any(results.values()):
    print(f"Error: no finished runs under {runs}/{{{','.join(collect.GROUPS)}}}.", file=sys.stderr)
    sys.exit(1)
  tables = []
  for name, rows in results.items():
    (out / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    tables.append(f"### {name}\n\n{collect.markdown_table(rows, collect.TABLES[name])}\n")
    print(f"Wrote {out / name}.json ({len(rows)} rows)")
  (out / "tables.md").write_text("\n".join(tables))
  print("\n".join(tables))
  for path in collect.write_figures(runs, results, figures):
    print(f"Wrote {path}")


if __name__ == "__main__":
  app.run(main)
