"""Writes the CARD.md of a shipped organism from its measured JSON files.

python -m experiments.organism_card --organism=gemma2 --workdir=workdir

Reads what `make organism ORGANISM=NAME` leaves in --workdir and the shipped
files in refusal_jax/assets, and writes
`refusal_jax/assets/organism_NAME/CARD.md` (refusal_jax/organisms/card.py).
"""

from absl import app
from absl import flags

from experiments import common
from refusal_jax.organisms import assets
from refusal_jax.organisms import card

_ORGANISM = flags.DEFINE_enum('organism', 'gemma2', list(assets.ORGANISMS),
                              'Which organism.')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir',
                               'Folder holding the training workdirs.')


@common.main_wrapper
def main(argv):
  del argv
  path = card.write_card(_ORGANISM.value, _WORKDIR.value)
  print(f'card written to {path}')


if __name__ == '__main__':
  app.run(main)
