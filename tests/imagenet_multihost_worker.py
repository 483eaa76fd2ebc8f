"""One process of the two-process ImageNet test (see test_imagenet_multihost.py).

Usage: python imagenet_multihost_worker.py PORT PROCESS_ID WORKDIR DATA_DIR. Trains
two steps of configs/imagenet_ice.py:tiny together with the other process, each
reading its own half of the prepared tiny ImageNet in DATA_DIR, and prints a
fingerprint of the final parameters.
"""

import sys

import jax
import numpy as np

port, process_id, workdir, data_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=process_id)

from configs import imagenet_ice  # noqa: E402  (after jax.distributed.initialize)
from invjax import train  # noqa: E402
from invjax.data import pipeline  # noqa: E402

config = imagenet_ice.get_config("tiny")
config.dataset_options.data_dir = data_dir
config.total_steps, config.checkpoint_every_steps, config.eval_every_steps, config.log_every_steps = 2, 2, 2, 2
final = train.train_and_evaluate(config, workdir)
run = train.load_run(workdir)
leaves = [np.asarray(leaf.addressable_data(0)) for leaf in jax.tree.leaves(run.variables)]
print("SHARD", pipeline.process_bounds(60), flush=True)
print("FINGERPRINT", jax.process_count(), final["test/logit_top5_error"],
      sum(float(np.sum(np.abs(leaf))) for leaf in leaves), flush=True)
