"""Ablation throughput: the sweep engine against PyTorch hooks, and a roofline.

  .venv/bin/python -m experiments.benchmark_ablation \
      --config=configs/benchmark_gemma2_2b_shape.py --workdir=/tmp/bench

Runs `refusal_jax.bench.run_benchmark` (what is measured: refusal_jax/bench/),
writes DIR/benchmark.json and DIR/throughput.png and prints the headline
figures.
"""

import json
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import common
from refusal_jax import bench

_CONFIG = config_flags.DEFINE_config_file('config', None,
                                          'Benchmark config file.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
flags.mark_flags_as_required(['config', 'workdir'])


@common.main_wrapper
def main(argv):
  del argv
  result = bench.run_benchmark(_CONFIG.value, _WORKDIR.value,
                               mesh=common.mesh_from_flags())
  summary = {k: result[k] for k in bench.KEYS}
  print(json.dumps(summary, indent=2))
  print(f'results: {os.path.join(_WORKDIR.value, "benchmark.json")}')


if __name__ == '__main__':
  app.run(main)
