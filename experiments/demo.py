r"""The demo (`make demo`): a CE fi-RevNet's metamers look like their nuisance source.

    python -m experiments.demo [--config=configs/mnist_demo.py] [--workdir=runs/demo] [--figure=PATH]

Three steps, each resumable (a second run reuses what the first trained, and
only evaluates again):

1. trains the fi-RevNet F of `config.flow` with cross-entropy on MNIST (WORKDIR/flow);
2. trains the small CNN of `config.judge` on the same images (WORKDIR/judge),
   an independent observer: it never reads F's latents;
3. draws `config.metamers.num_pairs` random test pairs (a, b) of different
   classes and builds the metamers x = F^-1(z_s(a), z_n(b)). F's logits of x
   are a's, so F classifies x as it classifies a; the CNN says which class x
   looks like. CE leaves z_s with little of what the image shows (excessive
   invariance), so the CNN mostly sees b.

Writes WORKDIR/demo.json (the numbers) and the figure (logit source | metamer |
nuisance source, the CNN's verdict under each metamer; default
WORKDIR/metamers.png), and prints one line per finding.
"""

import json
import pathlib

import jax
import numpy as np
from absl import flags, logging
from ml_collections import config_flags

from experiments import commands
from invjax import data, metamers, objective, parallel, plotting, train
from invjax.analysis import batching, features, oracle

_CONFIG = config_flags.DEFINE_config_file("config", "configs/mnist_demo.py", "Demo configuration file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Folder of the demo's two runs and its results.")
_FIGURE = flags.DEFINE_string("figure", "", "Where the metamer figure goes (default: WORKDIR/metamers.png).")
_BATCH_SIZE = 250  # examples per compiled metamer or classifier call


def _check(config) -> None:
  pairs = config.metamers
  if not 1 <= pairs.figure_pairs <= pairs.num_pairs:
    raise ValueError(f"config.metamers needs 1 <= figure_pairs <= num_pairs; got figure_pairs="
                     f"{pairs.figure_pairs}, num_pairs={pairs.num_pairs}.")
  if config.flow.model.kind != "fi_revnet" or config.judge.model.kind != "cnn":
    raise ValueError("config.flow must train a fi_revnet and config.judge a cnn (see configs/mnist_demo.py).")
  is_ce = not any(config.flow.loss[name] for name in objective.LATENT_TERM_WEIGHTS)
  if (config.objective == "CE") != is_ce:
    raise ValueError(f"config.objective={config.objective!r} does not name how config.flow trains: 'CE' exactly "
                     "when every weight of a term on z_n is 0.")


def _in_batches(function, variables):
  """`x -> function(variables, x)` over any number of examples, in compiled chunks."""
  compiled = jax.jit(function)
  return lambda x: batching.map_in_batches(lambda chunk: compiled(variables, chunk), x, batch_size=_BATCH_SIZE)


def _judge_metamers(config, flow, judge) -> dict:
  """Metamers of random test pairs, and which class the flow and the CNN give them."""
  images, labels = data.as_numpy(config.flow.dataset, "test", **config.flow.dataset_options)
  a, b = oracle.pairs_of_different_classes(labels, config.metamers.num_pairs,
                                           np.random.default_rng(config.metamers.seed))
  mesh = parallel.make_data_mesh()
  x_met = batching.map_in_batches(
      lambda x_a, x_b: metamers.metameric_sample(flow.model, flow.variables, x_a, x_b, mesh=mesh),
      images[a], images[b], batch_size=_BATCH_SIZE)
  # Each classifier labels the metamers once; the agreement reads those logits.
  flow_logits = _in_batches(features.logits_function(flow.model), flow.variables)(x_met)
  judge_logits = _in_batches(features.logits_function(judge.model), judge.variables)(x_met)
  return {
      "logit_sources": images[a], "metamers": x_met, "nuisance_sources": images[b],
      "logit_source_labels": labels[a], "nuisance_source_labels": labels[b],
      "flow_classes": flow_logits.argmax(-1), "judge_classes": judge_logits.argmax(-1),
      "flow": oracle.oracle_agreement(lambda _: flow_logits, x_met, labels[a], labels[b]),
      "judge": oracle.oracle_agreement(lambda _: judge_logits, x_met, labels[a], labels[b]),
  }


def _figure(judged: dict, count: int, flow_error: float, objective_name: str):
  shown = slice(0, count)
  captions = [(f"label {ya}", f"flow {f}, CNN {c}", f"label {yb}") for ya, f, c, yb in zip(
      judged["logit_source_labels"][shown], judged["flow_classes"][shown], judged["judge_classes"][shown],
      judged["nuisance_source_labels"][shown], strict=True)]
  judge = judged["judge"]
  title = (f"Metamers of a {objective_name} fi-RevNet ({flow_error:.1f}% test error): the logits of the left image, "
           f"the nuisance z_n of the right one.\nAn independent CNN puts "
           f"{100 * judge['nuisance_source_class']:.0f}% of {judge['num_pairs']} metamers in the right image's class "
           f"and {100 * judge['logit_source_class']:.0f}% in the left one's.")
  return plotting.metamer_figure(judged["logit_sources"][shown], judged["metamers"][shown],
                                 judged["nuisance_sources"][shown], captions=captions, title=title)


def main(argv):
  commands.check_no_arguments(argv)
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(commands.ProjectLinesOnly())
  config, workdir = _CONFIG.value, pathlib.Path(_WORKDIR.value)
  figure_path = pathlib.Path(_FIGURE.value or workdir / "metamers.png")
  with commands.one_line_errors():
    _check(config)
    print(f"[1/3] Training the {config.objective} fi-RevNet ({config.flow.total_steps} steps) in {workdir / 'flow'}",
          flush=True)
    flow_final = train.train_and_evaluate(config.flow, workdir / "flow",
                                          on_start=lambda: commands.record(workdir, "experiments.demo"))
    print(f"[2/3] Training the independent CNN ({config.judge.total_steps} steps) in {workdir / 'judge'} ...",
          flush=True)
    judge_final = train.train_and_evaluate(config.judge, workdir / "judge")
    print(f"[3/3] Metamers of {config.metamers.num_pairs} test pairs ...", flush=True)
    judged = _judge_metamers(config, train.load_run(workdir / "flow"), train.load_run(workdir / "judge"))

  flow_error, judge_error = flow_final["test/logit_error"], judge_final["test/logit_error"]
  results = {
      "command": commands.command_line("experiments.demo"),
      "flow_test_error": flow_error, "judge_test_error": judge_error,
      "flow_on_metamers": judged["flow"], "judge_on_metamers": judged["judge"],
  }
  results = jax.tree.map(lambda value: value.item() if hasattr(value, "item") else value, results)
  (workdir / "demo.json").write_text(json.dumps(results, indent=2) + "\n")
  figure_path.parent.mkdir(parents=True, exist_ok=True)
  _figure(judged, config.metamers.figure_pairs, flow_error, config.objective).savefig(figure_path, dpi=80)
  flow_on, judge_on = judged["flow"], judged["judge"]
  print(f"{config.objective} fi-RevNet: {flow_error:.2f}% MNIST test error.\n"
        f"Metamers F^-1(z_s(a), z_n(b)) of {judge_on['num_pairs']} test pairs (a, b) of different classes:\n"
        f"  the fi-RevNet puts {100 * flow_on['logit_source_class']:.1f}% of them in a's class "
        "(they carry a's logits);\n"
        f"  an independent CNN ({judge_error:.2f}% test error) puts {100 * judge_on['nuisance_source_class']:.1f}% "
        f"in the nuisance source b's class ({100 * judge_on['logit_source_class']:.1f}% in a's).\n"
        f"Figure: {figure_path}; numbers: {workdir / 'demo.json'}")


if __name__ == "__main__":
  commands.run(main)
