"""The organisms' generated prompts as a prompt source ('organism').

refusal_jax/data/sources.py registers `instructions` under the name
'organism' by its 'module:function' string, so a config with
`data.source = 'organism'` reads the organisms' generator without the
pipeline importing the organisms.
"""

from refusal_jax.organisms import data as organism_data

SPLITS = ('train', 'val', 'test')


def instructions(data) -> dict[str, list[str]]:
  """The six prompt lists of the organisms' dataset of seed `data.seed`.

  Args:
    data: the config's `data` section (only `seed` is read).

  Returns:
    {'harmful_train', 'harmless_train', 'harmful_val', ...}: each split's
    distinct instructions, in the dataset's order.
  """
  splits = organism_data.make_dataset(seed=data.seed)
  out = {}
  for split in SPLITS:
    for harmful in (True, False):
      key = f"{'harmful' if harmful else 'harmless'}_{split}"
      out[key] = list(dict.fromkeys(
          e.instruction for e in splits[split] if e.harmful == harmful))
  return out
