"""How an organism's refusals depend on the decision rule, not just the model.

python -m experiments.refusal_thresholds --organism=llama
python -m experiments.refusal_thresholds --organism_path=DIR

Greedy decoding refuses when the refusal token 'I' beats the single most
likely other first token; reading P('I') at a threshold t refuses when
P('I') > t. For the val and test splits this prints, per threshold, the
fraction of harmful prompts refused and of harmless prompts answered, and how
many greedy refusals of harmless prompts had P('I') < 0.5
(refusal_jax/organisms/thresholds.py).
"""

from absl import app
from absl import flags

from experiments import common
from refusal_jax.organisms import assets
from refusal_jax.organisms import thresholds

_ORGANISM = flags.DEFINE_enum('organism', 'llama', list(assets.ORGANISMS),
                              'Shipped organism to read.')
_PATH = flags.DEFINE_string('organism_path', '',
                            'Checkpoint directory (overrides --organism).')
_THRESHOLDS = flags.DEFINE_list('thresholds', ['0.2', '0.3333', '0.5'],
                                "Thresholds on P('I').")
_BATCH = flags.DEFINE_integer('batch_size', 100, 'Prompts per forward call.')


@common.main_wrapper
def main(argv):
  del argv
  path = _PATH.value or assets.organism_path(_ORGANISM.value)
  rates = thresholds.threshold_rates(
      path, [float(t) for t in _THRESHOLDS.value], batch_size=_BATCH.value)
  print(f'{path}: harmful refused / harmless answered')
  for split, r in rates.items():
    for t, refused, answered in r['thresholds']:
      print(f'{split} P(I) > {t:.3f}: {refused:.3f} / {answered:.3f}')
    print(f"{split} greedy: harmless refused {r['greedy_refused']}, of them "
          f"with P(I) < 0.5: {r['greedy_refused_below_half']}")


if __name__ == '__main__':
  app.run(main)
