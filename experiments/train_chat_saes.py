"""Trains residual-stream SAEs of a chat checkpoint on its own answers.

  python -m experiments.train_chat_saes --config=configs/sae_smollm2.py \
      --config.model_path=DIR --workdir=workdir/sae_smollm2

Runs `refusal_jax.sae_recipes.chat_saes.train_chat_saes`: the model answers the
built-in harmful and harmless train prompts greedily, the SAEs of
`--config.saes` train on those chat sequences' residual stream and are
measured on held-out sequences; each SAE is written as a SAELens folder
`workdir/sae_l{LAYER}_w{WIDTH}`, the measurements to
`workdir/sae_summary.json`.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import common
from refusal_jax.sae_recipes import chat_saes

_CONFIG = config_flags.DEFINE_config_file('config', None, 'SAE config file.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
flags.mark_flags_as_required(['config', 'workdir'])


@common.main_wrapper
def main(argv):
  del argv
  summary = chat_saes.train_chat_saes(_CONFIG.value, _WORKDIR.value)
  tokens = summary['tokens']
  print(f"tokens: {tokens['train']['tokens']} train, "
        f"{tokens['eval']['tokens']} held out; "
        f"{summary['seconds']['total']:.0f} s")
  for r in summary['saes']:
    e = r['eval']
    print(f"{r['path']}: FVE {e['fve']:.4f}, L0 {e['l0']:.1f}, dead "
          f"{r['dead_fraction']:.3f}, {r['storage']['stored_dtype']}, "
          f"meets targets: {r['meets_targets']}")


if __name__ == '__main__':
  app.run(main)
