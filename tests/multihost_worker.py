"""One process of the two-process training test (see test_multihost.py).

Usage: python multihost_worker.py PORT PROCESS_ID WORKDIR. Trains two steps of a
tiny iCE run together with the other process and prints a fingerprint of the
final parameters.
"""

import sys

import jax
import numpy as np

port, process_id, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=process_id)

from invjax import train  # noqa: E402  (after jax.distributed.initialize)
from test_train import micro_config  # noqa: E402

config = micro_config(total_steps=2, checkpoint_every_steps=2, eval_examples=64, train_eval_examples=64)
train.train_and_evaluate(config, workdir)
run = train.load_run(workdir)
leaves = [np.asarray(leaf.addressable_data(0)) for leaf in jax.tree.leaves(run.variables)]
print("FINGERPRINT", jax.process_count(), sum(float(np.sum(np.abs(leaf))) for leaf in leaves), flush=True)
