r"""Trains a model: `python -m experiments.train --config=configs/mnist_ice.py:tiny --workdir=DIR`.

Any config field can be overridden (`--config.total_steps=1000`). Running again
with the same workdir resumes from its last checkpoint that verifies, if the
config still describes the same run (`invjax.train.identity`).

Exit status: 0 when the run reached total_steps; 1 with a one-line error on
stderr for bad input or a stopped run (a traceback only with --verbose, or for
an unexpected error: a bug); 143 after a SIGTERM (a preemption), once the
current step is saved: the same command resumes from it; 130 after Ctrl-C, once
the save in flight is written.
"""

import logging as pylogging
import sys

import jax
from absl import flags, logging
from ml_collections import config_flags

from experiments import commands
from invjax import train
from invjax.train import preemption

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training configuration file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: checkpoints, metrics and config.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() first: one process per host of a Cloud TPU slice "
    "or GPU cluster, all running this command (it finds the others from the environment).")
flags.mark_flags_as_required(["config", "workdir"])

PREEMPTED_EXIT_CODE = 128 + 15  # the shell's codes for a job ended by SIGTERM and by SIGINT
INTERRUPTED_EXIT_CODE = 128 + 2


class _HideCheckpointerChatter(pylogging.Filter):
  """Orbax logs every file it writes at INFO; keep the job's own lines readable."""

  def filter(self, record):
    return record.levelno >= pylogging.WARNING or "/orbax/" not in record.pathname


def main(argv):
  commands.check_no_arguments(argv)
  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_HideCheckpointerChatter())
  record_command = lambda: commands.record(_WORKDIR.value, "experiments.train")
  with commands.one_line_errors():
    try:
      final = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                                       on_start=record_command if jax.process_index() == 0 else None)
    except preemption.Preempted as stop:
      logging.warning("%s", stop)
      sys.exit(PREEMPTED_EXIT_CODE)
    except KeyboardInterrupt as stop:  # Ctrl-C: the loop waited for the save in flight
      logging.warning("Interrupted. %s", " ".join(getattr(stop, "__notes__", [])))
      sys.exit(INTERRUPTED_EXIT_CODE)
  logging.info("Final metrics (also in %s/final_metrics.json): %s", _WORKDIR.value, final)


if __name__ == "__main__":
  commands.run(main)
