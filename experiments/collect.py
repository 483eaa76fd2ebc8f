"""Rows, tables and figures of docs/results.md, read from finished run folders.

`experiments.results` is the command around these functions; they hold no flags,
so other code and tests can import them.
"""

import json
import math
import pathlib
import shlex
import shutil

import matplotlib.figure

from configs import base
from experiments import commands
from invjax import objective
from invjax.data import shift_mnist
from invjax.train import checkpoints, run_folder
from invjax.train import state as state_lib

METAMER_METRICS = pathlib.Path(run_folder.ANALYSIS_DIR) / "metamer_metrics.json"


def _run_facts(workdir: pathlib.Path) -> dict:
  """What every row says about its run: model, loss, epochs, wall time, hardware, command."""
  config = checkpoints.load_config(workdir)
  final_path = workdir / run_folder.FINAL_METRICS_FILE
  if not is_finished(workdir):
    raise FileNotFoundError(f"{final_path} does not exist: the run in {workdir} has not finished; rerun its command.")
  final = json.loads(final_path.read_text())
  records = run_folder.read_records(workdir)
  hardware = [record["hardware"] for record in records if record.get("event") == run_folder.JOB_START]
  return {
      "config": config,
      "final": final,
      "model": "cnn" if config.model.kind == "cnn" else "fi-revnet",
      "model_size": model_size(config),
      "loss": "ice" if _has_independence_terms(config) else "ce",
      "epochs": round(final["epochs"], 2),
      "wall_minutes": round(run_folder.wall_seconds(records) / 60, 1),
      "hardware": hardware[-1] if hardware else "unknown",
      "command": commands.last_recorded(workdir),
  }


def model_size(config) -> str | None:
  """A fi-RevNet's size as "levels x steps per level, width": "3x16 w128" is the paper's
  model (SPEC 5), "3x4 w48" the small one of `:cpu`; None for other models."""
  if config.model.kind != "fi_revnet":
    return None
  steps = config.model.steps_per_level
  steps = "+".join(map(str, steps)) if isinstance(steps, (tuple, list)) else steps
  return f"{config.model.num_levels}x{steps} w{config.model.width}"


def _has_independence_terms(config) -> bool:
  """Whether the flow trains on a term on z_n, not only on terms any classifier takes."""
  return any(config.loss.get(name, 0.0) > 0 for name in objective.LATENT_TERM_WEIGHTS)


def _common(facts: dict) -> dict:
  return {key: facts[key] for key in ("model_size", "epochs", "wall_minutes", "hardware", "command")}


def _percent(value: float) -> float:
  return round(value, 2)


def _from_fraction(value: float | None) -> float | None:
  """A fraction as a percentage; None (JSON null) where the analysis did not measure it."""
  return None if value is None else _percent(100 * value)


def _read_analysis(workdir: pathlib.Path) -> dict:
  """The run's metamer analysis; {} where experiments.metamers has not analysed it."""
  path = workdir / METAMER_METRICS
  return json.loads(path.read_text()) if path.exists() else {}


def _mnist_fields(facts: dict, workdir: pathlib.Path) -> dict:
  final = facts["final"]
  analysis_path = workdir / METAMER_METRICS
  analysis = _read_analysis(workdir)
  if not analysis:
    raise FileNotFoundError(
        f"{analysis_path} does not exist: run `python -m experiments.metamers --workdir={workdir} --posthoc`.")
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


def _shift_mnist_fields(facts: dict) -> dict:
  final = facts["final"]
  return {
      "variant": facts["config"].variant,
      "model": facts["model"],
      "loss": facts["loss"],
      "train_error": _percent(final["train/logit_error"]),
      "test_error": _percent(final["test/logit_error"]),
      "test_shifted_error": _percent(final["test_shifted/logit_error"]),
      "test_none_error": _percent(final["test_none/logit_error"]),
      **_common(facts),
  }


def _varied_settings(workdir: pathlib.Path, config) -> dict:
  """The settings the ablations vary (no nuisance form where there is no nuisance term)."""
  has_nuisance_term = config.loss.nuisance_weight > 0
  return {"run": workdir.name, "seed": config.seed,
          "nuisance_form": config.loss.nuisance_form if has_nuisance_term else None,
          **{term.weight: objective.weight_of(config.loss, term) for term in objective.TERMS
             if term.weight != "ce_weight"},
          "nuisance_classifier_steps": config.nuisance_classifier.steps_per_batch,
          "nuisance_classifier_reset": config.nuisance_classifier.get("reset_every_steps", 0),
          "nuisance_classifier_replay": state_lib.replay_batches(config),
          "dequantize": config.dequantize, "model_dropout": config.model.dropout}


def mnist_row(workdir: pathlib.Path) -> dict:
  """A row of results/mnist.json: logit and post-hoc nuisance errors, bits/dim, metamer agreement."""
  return _mnist_fields(_run_facts(workdir), workdir)


def shift_mnist_row(workdir: pathlib.Path) -> dict:
  """A row of results/shift_mnist.json: train, clean-test and shifted-test errors."""
  return _shift_mnist_fields(_run_facts(workdir))


def ablation_row(workdir: pathlib.Path) -> dict:
  """A shiftMNIST row that also names the settings the ablation varies, texture options included
  (SPEC 7's where a run predates an option), and the post-hoc nuisance classifier's clean-test error where the
  run was analysed (else None)."""
  facts = _run_facts(workdir)
  config = facts["config"]
  textured = config.variant == "textured"
  texture = {name: config.dataset_options.get(name, spec7_value) if textured else None
             for name, spec7_value in shift_mnist.SPEC7_TEXTURE.items()}
  posthoc = _read_analysis(workdir).get("posthoc_nuisance_classifier", {})
  return {**_varied_settings(workdir, config), **texture, **_shift_mnist_fields(facts),
          "nuisance_test_error": _from_fraction(posthoc.get("test_error"))}


def mnist_ablation_row(workdir: pathlib.Path) -> dict:
  """An MNIST row that also names the settings the ablation varies."""
  facts = _run_facts(workdir)
  return {**_varied_settings(workdir, facts["config"]), **_mnist_fields(facts, workdir)}


def _posthoc_by_part(analysis: dict) -> dict:
  """Post-hoc test errors (%) of each probe on each part of z_n: columns `posthoc_<part>_<probe>`."""
  by_part = analysis.get("posthoc_nuisance_classifier", {}).get("by_part", {})
  return {f"posthoc_{part}_{probe}": _from_fraction(errors["test_error"])
          for part, probes in by_part.items() for probe, errors in probes.items()}


def objectives_row(workdir: pathlib.Path) -> dict:
  """An MNIST row of the objectives at equal budget: the weights of every registered term, the
  architecture (split latents or not, split priors), the authors' recipe's options, when the independence
  terms start, which part of z_n the penalties read, how many batches the nuisance classifier replays,
  and the post-hoc errors of each part of z_n."""
  facts = _run_facts(workdir)
  config = facts["config"]
  recipe = {"split": config.model.get("split", True), "split_prior": config.model.get("split_prior", False),
            "mle_over": config.loss.get("mle_over", "z_n"),
            "logit_batch_norm": config.loss.get("logit_batch_norm", False),
            "independence_start_step": config.loss.get("independence_start_step", 0),
            "independence_ramp_steps": config.loss.get("independence_ramp_steps", 0),
            "penalised_part": config.loss.get("penalised_part", objective.ALL_OF_Z_N),
            "compute_dtype": config.model.get("compute_dtype", "") or "float32"}
  return {**_varied_settings(workdir, config), **recipe, **_mnist_fields(facts, workdir),
          **_posthoc_by_part(_read_analysis(workdir))}


def is_finished(workdir: pathlib.Path) -> bool:
  return (workdir / run_folder.FINAL_METRICS_FILE).exists()


def run_folders(folder: pathlib.Path) -> list[pathlib.Path]:
  """The run folders directly under `folder` (none if it does not exist)."""
  if not folder.is_dir():
    return []
  return [workdir for workdir in sorted(folder.iterdir()) if (workdir / run_folder.CONFIG_FILE).exists()]


def rows(folder: pathlib.Path, make_row, skip_unfinished: bool = False) -> list[dict]:
  """`make_row` of every run folder under `folder`, leaving out runs in progress if `skip_unfinished`."""
  return [make_row(workdir) for workdir in run_folders(folder) if is_finished(workdir) or not skip_unfinished]


def _command_flag(row: dict, flag: str) -> str | None:
  """The value of `--<flag>` in the command a row's run was trained with (None where it names none)."""
  arguments = shlex.split(row.get("command", ""))
  for index, argument in enumerate(arguments):
    if argument.startswith(f"--{flag}="):
      return argument.removeprefix(f"--{flag}=")
    if argument == f"--{flag}" and index + 1 < len(arguments):
      return arguments[index + 1]
  return None


def recorded_workdir(row: dict) -> str | None:
  """The `--workdir` of the command a row's run was trained with (None where it names none)."""
  return _command_flag(row, "workdir")


def run_name(row: dict) -> str | None:
  """The folder name of the run a row was collected from: the last part of the `--workdir` of the
  row's command (None where the command names no workdir)."""
  workdir = recorded_workdir(row)
  return None if workdir is None else pathlib.Path(workdir).name


def rows_without_folders(earlier_rows: list[dict], folder: pathlib.Path) -> list[dict]:
  """The rows of `earlier_rows` whose run has no folder under `folder`: a result collected before
  is kept until its run is trained again there (where a run folder is, its row is collected anew).
  A row whose command names no workdir is kept only while `folder` holds no runs at all."""
  present = {workdir.name for workdir in run_folders(folder)}

  def is_collected_anew(row: dict) -> bool:
    name = run_name(row)
    return name in present if name else bool(present)

  return [row for row in earlier_rows if not is_collected_anew(row)]


def rows_from_other_folders(earlier_rows: list[dict], folder: pathlib.Path) -> list[dict]:
  """The rows of `earlier_rows` that runs under `folder` would replace although they were collected
  from another folder: their recorded workdir (relative to the current directory, as the commands
  ran) is not `folder/<run>`, or they name none."""
  replaced = [row for row in earlier_rows if row not in rows_without_folders(earlier_rows, folder)]
  return [row for row in replaced
          if recorded_workdir(row) is None or pathlib.Path(recorded_workdir(row)).resolve()
          != (folder / run_name(row)).resolve()]


GROUPS = {
    "mnist": mnist_row,
    "mnist_full": mnist_row,
    "shift_mnist": shift_mnist_row,
    "shift_mnist_full": shift_mnist_row,
    "textured_curve": ablation_row,
    "ablation": ablation_row,
    "mnist_ablation": mnist_ablation_row,
    "objectives": objectives_row,
}
"""Each folder of runs under RUNS, with the function that makes a row of one run."""


def markdown_table(rows: list[dict], columns: list[str]) -> str:
  """A Markdown table of `columns` of `rows`: commands as code, missing values as "-"."""
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  for row in rows:
    cells = [f"`{row[c]}`" if c == "command" else "-" if row.get(c) is None else str(row[c]) for c in columns]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


_MNIST_COLUMNS = ["model", "model_size", "loss", "logit_train_error", "logit_test_error", "nuisance_train_error",
                  "nuisance_test_error", "bits_per_dim", "metamers_oracle_logit_source_class",
                  "metamers_oracle_nuisance_source_class", "epochs", "wall_minutes", "command"]
_SHIFT_MNIST_COLUMNS = ["variant", "model", "model_size", "loss", "train_error", "test_error", "test_shifted_error",
                        "test_none_error", "epochs", "wall_minutes", "command"]
TABLES = {
    "mnist": _MNIST_COLUMNS,
    "mnist_full": _MNIST_COLUMNS,
    "shift_mnist": _SHIFT_MNIST_COLUMNS,
    "shift_mnist_full": _SHIFT_MNIST_COLUMNS,
    "textured_curve": ["texture_images", "texture_images_per_class", "model_size", "loss", "nuisance_weight",
                       "train_error",
                       "test_error", "test_shifted_error", "test_none_error", "epochs", "wall_minutes", "command"],
    "mnist_ablation": ["seed", "loss", "nuisance_form", "nuisance_weight", "mle_weight", "logit_penalty_weight",
                       "label_dependence_weight", "nuisance_classifier_steps", "nuisance_classifier_reset",
                       "logit_train_error", "logit_test_error", "nuisance_train_error", "nuisance_test_error",
                       "bits_per_dim", "epochs", "wall_minutes", "command"],
    "objectives": ["run", "seed", "split", "split_prior", "mle_over", "logit_batch_norm", "nuisance_form",
                   "nuisance_weight", "mle_weight", "class_mean_gap_weight", "random_feature_gap_weight",
                   "independence_start_step", "penalised_part", "nuisance_classifier_replay", "logit_test_error",
                   "nuisance_test_error",
                   "posthoc_all_linear", "posthoc_final_mlp", "posthoc_split_1_mlp", "posthoc_split_2_mlp",
                   "posthoc_final_linear", "posthoc_split_1_linear", "posthoc_split_2_linear",
                   "metamers_oracle_logit_source_class", "metamers_oracle_nuisance_source_class", "bits_per_dim",
                   "epochs", "wall_minutes", "command"],
    "ablation": ["variant", *shift_mnist.TEXTURE_DEFAULTS, "seed", "model", "loss", "nuisance_form", "nuisance_weight",
                 "mle_weight", "logit_penalty_weight", "label_dependence_weight", "nuisance_classifier_reset",
                 "train_error", "test_error", "test_shifted_error", "nuisance_test_error", "epochs", "wall_minutes",
                 "command"],
}


def _loss_overrides(row: dict) -> list[str]:
  """The weights of `objective.TERMS` that a row's command sets ("<term> V") and, when it sets an
  independence schedule, where the schedule starts ("from step N")."""
  weights = [(term.name, _command_flag(row, f"config.loss.{term.weight}")) for term in objective.TERMS]
  start = _command_flag(row, "config.loss.independence_start_step")
  return [f"{name} {value}" for name, value in weights if value is not None] + ([f"from step {start}"] if start else [])


def _bar_label(row: dict) -> str:
  """The model, the fi-RevNet's objective as its config names it (configs/shift_mnist_<objective>.py),
  the loss weights its command changes, and what differs from the :cpu budget (bfloat16 operands,
  epochs), from the row's command."""
  config_file = (_command_flag(row, "config") or "").partition(":")[0]
  objective_name = pathlib.Path(config_file).stem.removeprefix("shift_mnist_")
  if row["model"] != "fi-revnet" or not objective_name:
    objective_name = row["loss"]
  details = []
  if _command_flag(row, "config.model.compute_dtype") == "bfloat16":
    details.append("bf16")
  if row["epochs"] != base.CPU_EPOCHS:
    details.append(f"{row['epochs']:g} ep")
  return "\n".join([row["model"], objective_name, *_loss_overrides(row), " ".join(details)]).strip()


def shift_mnist_figure(rows: list[dict]):
  """Bars of clean-test and shifted-test error for each shiftMNIST run, one panel per variant."""
  variants = sorted({row["variant"] for row in rows})
  most_bars = max(sum(row["variant"] == variant for row in rows) for variant in variants)
  figure = matplotlib.figure.Figure(figsize=(max(5.0, 1.4 * most_bars) * len(variants), 4.2))
  axes = figure.subplots(1, len(variants), squeeze=False)
  for axis, variant in zip(axes[0], variants, strict=True):
    shown = [row for row in rows if row["variant"] == variant]
    positions = range(len(shown))
    bar_kinds = (("test_error", "clean test"), ("test_shifted_error", "shifted test"))
    for offset, (key, label) in zip((-0.2, 0.2), bar_kinds, strict=True):
      bars = axis.bar([p + offset for p in positions], [row[key] for row in shown], width=0.4, label=label)
      axis.bar_label(bars, fmt="%.1f", fontsize=8)
    axis.set_xticks(list(positions), [_bar_label(row) for row in shown], fontsize=8)
    axis.set_ylim(0, 118)  # room for the legend above 100%
    axis.set_ylabel("error (%)")
    axis.set_title(f"{variant} shiftMNIST")
  axes[0][-1].legend(loc="upper right", ncol=2, fontsize=8)
  figure.tight_layout()
  return figure


def textured_curve_figure(rows: list[dict]):
  """Shifted-test error (and, dotted, clean-test error) against the texture images per class that
  train and test crops share, one colour per loss and nuisance weight; the disjoint texture images
  of SPEC 7 as dashed lines."""
  figure = matplotlib.figure.Figure(figsize=(5.5, 3.6))
  axis = figure.subplots()
  settings = sorted({(row["loss"], row["nuisance_weight"]) for row in rows})
  for index, (loss, weight) in enumerate(settings):
    colour, name = f"C{index}", loss if loss == "ce" else f"{loss} {weight:g}"
    chosen = [row for row in rows if (row["loss"], row["nuisance_weight"]) == (loss, weight)]
    shared = sorted((row["texture_images_per_class"], row["test_shifted_error"], row["test_error"]) for row in chosen
                    if row["texture_images"] == "shared")
    if shared:
      counts, shifted, clean = zip(*shared, strict=True)
      axis.plot(counts, shifted, marker="o", color=colour, label=f"{name}, shifted test")
      axis.plot(counts, clean, marker="x", linestyle=":", color=colour, label=f"{name}, clean test")
    for row in chosen:
      if row["texture_images"] == "disjoint":
        axis.axhline(row["test_shifted_error"], color=colour, linestyle="--", label=f"{name}, disjoint images")
  axis.set_xscale("log")
  axis.set_xlabel("texture images per class (shared by train and test)")
  axis.set_ylabel("test error (%)")
  axis.set_ylim(0, 105)
  axis.set_title("textured shiftMNIST: the texture of another class")
  axis.legend(fontsize=7)
  figure.tight_layout()
  return figure


def evaluations(workdir: pathlib.Path, metric: str) -> tuple[list[float], list[float]]:
  """(epochs, values) of `metric` at every evaluation of the finished run in `workdir`."""
  final = json.loads((workdir / run_folder.FINAL_METRICS_FILE).read_text())
  steps_per_epoch = final["step"] / final["epochs"]
  points = [(record["step"] / steps_per_epoch, record[metric])
            for record in run_folder.without_replayed(run_folder.read_records(workdir)) if metric in record]
  return [epoch for epoch, _ in points], [value for _, value in points]


TRAINING_CURVES = {"test_shifted/logit_error": "shifted test: the code of another class",
                   "test_none/logit_error": "no code: the digit alone"}


# Past the colours of matplotlib's cycle, lines repeat a colour with another dash.
_LINE_STYLES = ("-", "--", ":")
_LEGEND_COLUMNS = 2


def training_curves_figure(workdirs: dict[str, pathlib.Path]):
  """Error against epochs of each run in `workdirs` (label -> folder), one panel per TRAINING_CURVES metric."""
  legend_inches = 0.25 + 0.17 * math.ceil(len(workdirs) / _LEGEND_COLUMNS)
  figure = matplotlib.figure.Figure(figsize=(11, 4.4 + legend_inches))
  axes = figure.subplots(1, len(TRAINING_CURVES))
  num_colours = len(matplotlib.rcParams["axes.prop_cycle"])
  for axis, (metric, title) in zip(axes, TRAINING_CURVES.items(), strict=True):
    for index, (label, workdir) in enumerate(workdirs.items()):
      line_style = _LINE_STYLES[index // num_colours % len(_LINE_STYLES)]
      axis.plot(*evaluations(workdir, metric), marker="o", linestyle=line_style, label=label)
    axis.set_ylim(0, 105)
    axis.set_xlabel("epoch")
    axis.set_ylabel("error (%)")
    axis.set_title(f"binary shiftMNIST, {title}", fontsize=10)
  figure.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=_LEGEND_COLUMNS, fontsize=8)
  figure.tight_layout(rect=(0, legend_inches / figure.get_figheight(), 1, 1))
  return figure


def _binary_training_runs(runs: pathlib.Path, results: dict) -> dict[str, pathlib.Path]:
  """The main binary fi-RevNet runs and the binary ablation runs trained beyond the :cpu epochs
  (those whose folders are here: a kept group's figure stays as it was drawn)."""
  names = [f"shift_mnist/binary_{row['loss']}" for row in results["shift_mnist"]
           if row["variant"] == "binary" and row["model"] == "fi-revnet"]
  names += [f"ablation/{row['run']}" for row in results["ablation"]
            if row["variant"] == "binary" and row["epochs"] > base.CPU_EPOCHS]
  return {name: runs / name for name in names if (runs / name).is_dir()}


def write_figures(runs: pathlib.Path, results: dict, figures: pathlib.Path) -> list[pathlib.Path]:
  figures.mkdir(parents=True, exist_ok=True)
  written = []
  if results["shift_mnist"]:
    written.append(figures / "shift_mnist_errors.png")
    shift_mnist_figure(results["shift_mnist"]).savefig(written[-1], dpi=100)
  if results["textured_curve"]:
    written.append(figures / "textured_curve.png")
    textured_curve_figure(results["textured_curve"]).savefig(written[-1], dpi=100)
  if binary_runs := _binary_training_runs(runs, results):
    written.append(figures / "binary_training_curves.png")
    training_curves_figure(binary_runs).savefig(written[-1], dpi=100)
  copies = {runs / "spheres" / "spheres_planes.png": figures / "spheres_planes.png"}
  for group in ("mnist", "mnist_full"):
    for workdir in sorted((runs / group).glob("*")):
      for name in ("metamers.png", "interpolations.png"):
        copies[workdir / run_folder.ANALYSIS_DIR / name] = figures / f"{group}_{workdir.name}_{name}"
  for source, target in copies.items():
    if source.exists():
      shutil.copyfile(source, target)
      written.append(target)
  return written
