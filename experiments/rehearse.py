"""A full-size rehearsal of the main job on random weights (see refusal_jax/rehearsal).

python -m experiments.rehearse --preset=gemma-2-2b-it --root=/tmp/rehearsal \
    --prompts=2 --masks=32 --new_tokens=16 --features=16 --positions=1
"""

import json

from absl import app
from absl import flags

from experiments import common
from refusal_jax import rehearsal

_PRESET = flags.DEFINE_enum('preset', 'gemma-2-2b-it', sorted(rehearsal.PRESETS),
                            'Checkpoint and config to rehearse.')
_ROOT = flags.DEFINE_string('root', None, 'Where the files and the run go.',
                            required=True)
_PROMPTS = flags.DEFINE_integer('prompts', 4, 'Prompts per split and stage.')
_MASKS = flags.DEFINE_integer('masks', 32, 'Stage-3 ablation masks.')
_TOKENS = flags.DEFINE_integer('new_tokens', 16, 'Generated tokens.')
_FEATURES = flags.DEFINE_integer('features', 16, 'Stage-1 K (0 = the '
                                 "config's).")
_POSITIONS = flags.DEFINE_integer('positions', 1, 'Stage-1 candidate '
                                  'positions (0 = all).')
_SAES = flags.DEFINE_integer(
    'saes', 0, 'Search random SAEs at layers 0..N-1 as one feature space '
    "(the paper's per-layer SAEs; 16 for Gemma-2-2B); 0 = the preset's one "
    'SAE.')


@common.main_wrapper
def main(argv):
  del argv
  p = rehearsal.preset(_PRESET.value)
  config = rehearsal.scale_down(rehearsal.load_config(p),
                                prompts=_PROMPTS.value, masks=_MASKS.value,
                                new_tokens=_TOKENS.value,
                                features=_FEATURES.value,
                                positions=_POSITIONS.value)
  result = rehearsal.rehearse(p, _ROOT.value, config,
                              mesh=common.mesh_from_flags(),
                              sae_layers=tuple(range(_SAES.value)))
  print('| stage | wall s | compile s | compilations | peak host GB |')
  print('|---|---|---|---|---|')
  for name, s in result['stages'].items():
    print(f"| {name} | {s['seconds']} | {s['compile_seconds']} | "
          f"{s['n_compiles']} | {s['peak_host_gb']} |")
  print(json.dumps({k: result[k] for k in ('files', 'whole_run',
                                           'total_seconds')}))


if __name__ == '__main__':
  app.run(main)
