"""Regrouped greedy generation against batches run to their end.

  .venv/bin/python -m experiments.benchmark_generation \
      --config=configs/dissect_smollm2.py:paper \
      --config.model_path=workdir/smollm2_safety --out=/tmp/generation.json

Runs `refusal_jax.bench.generation.run_config` on a dissection config's
harmful test prompts: each condition generated with every batch run to its
end and regrouped (`eval.generation_phases`), timed in the same process,
the rows whose tokens differ counted. Prints the measurements as JSON (and
writes them to --out when given).
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import common
from refusal_jax.bench import generation

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'A dissection config, e.g. configs/dissect_smollm2.py.')
_OUT = flags.DEFINE_string('out', '', 'Optional JSON output path.')
flags.mark_flags_as_required(['config'])


@common.main_wrapper
def main(argv):
  del argv
  result = generation.run_config(_CONFIG.value,
                                 mesh=common.mesh_from_flags())
  common.print_json(result, _OUT.value)


if __name__ == '__main__':
  app.run(main)
