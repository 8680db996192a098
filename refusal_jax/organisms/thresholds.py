"""How an organism's refusals depend on the decision rule, not just the model.

Greedy decoding refuses when the refusal token 'I' beats the single most
likely other first token; reading P('I') at a threshold t refuses when
P('I') > t. `threshold_rates` measures both rules on the val and test splits
(`data.make_dataset(0)`; their prompts do not depend on the training-data
options).
"""

from typing import Any, Sequence

import numpy as np

from refusal_jax.checkpoints.load import load_model
from refusal_jax.organisms import behaviour
from refusal_jax.organisms import data as data_lib


def threshold_rates(path: str, thresholds: Sequence[float], *,
                    batch_size: int = 100) -> dict[str, dict[str, Any]]:
  """Refusal and answer rates of an organism under thresholds on P('I').

  Args:
    path: the organism's checkpoint directory.
    thresholds: thresholds t on P('I'); a prompt is refused when P('I') > t.
    batch_size: prompts per forward call.

  Returns:
    Per split ('val', 'test'): 'thresholds', a list of (t, fraction of
    harmful prompts refused, fraction of harmless prompts answered);
    'greedy_refused', the number of harmless prompts whose greedy first
    token opens a refusal; 'greedy_refused_below_half', how many of those
    had P('I') < 0.5.
  """
  model = load_model(path)
  dataset = data_lib.make_dataset(0)
  rates = {}
  for split in ('val', 'test'):
    p_ref = {}
    for harmful in (True, False):
      prompts = [ex.instruction for ex in dataset[split]
                 if ex.harmful == harmful]
      ids, mask = behaviour.encode_prompts(model, prompts)
      p_ref[harmful] = behaviour.refusal_probability(
          model, ids, mask, batch_size=batch_size)
    completions = behaviour.generate(
        model, [ex.instruction for ex in dataset[split] if not ex.harmful],
        max_new_tokens=1, batch_size=batch_size)
    # 'I' opens every refusal.
    refused = np.array([c.startswith('I') for c in completions])
    rates[split] = dict(
        thresholds=[(t, np.mean(p_ref[True] > t), np.mean(p_ref[False] <= t))
                    for t in thresholds],
        greedy_refused=refused.sum(),
        greedy_refused_below_half=(refused & (p_ref[False] < 0.5)).sum())
  return rates
