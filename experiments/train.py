r"""Trains a model: `python -m experiments.train --config=configs/mnist_ice.py:tiny --workdir=DIR`.

Any config field can be overridden (`--config.total_steps=1000`). Running again
with the same workdir resumes from its last checkpoint.
"""

import logging as pylogging
import sys

import jax
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import commands
from invjax import train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training configuration file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: checkpoints, metrics and config.")
flags.mark_flags_as_required(["config", "workdir"])


class _HideCheckpointerChatter(pylogging.Filter):
  """Orbax logs every file it writes at INFO; keep the job's own lines readable."""

  def filter(self, record):
    return record.levelno >= pylogging.WARNING or "/orbax/" not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_HideCheckpointerChatter())
  if jax.process_index() == 0:
    commands.record(_WORKDIR.value, "experiments.train")
  try:
    final = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (FloatingPointError, ValueError, FileNotFoundError) as error:
    logging.error("%s", error)
    sys.exit(1)
  logging.info("Final metrics (also in %s/final_metrics.json): %s", _WORKDIR.value, final)


if __name__ == "__main__":
  app.run(main)
