"""Dormant-but-critical features: in the stage-2 set yet silent on the prompts.

The note on the paper (paper.md section 2.8b) reports stage-2 features with
zero activation on the source prompt (LLaMA 77, Gemma 1,656) whose removal
from the ablated set makes the jailbreak fail. `split_dormant` finds them;
`dormant_effect` reruns the jailbreak without them and reports the change.

Axis letters: P prompts, T tokens, I the stage-2 features.
"""

import dataclasses
from typing import Any, Sequence

import numpy as np

from refusal_jax import errors
from refusal_jax.pipeline.paper import activity
from refusal_jax.pipeline.paper.counts import JailbreakFn, asr_counts

@dataclasses.dataclass
class DormantSplit:
  """The stage-2 set split by activity on the source prompts.

  Attributes:
    dormant: features at or below eps on every token of every source prompt,
      in set order.
    active: the others: the set with the dormant ones removed.
    dormant_mask: [I] bool over the set.
  """
  dormant: list
  active: list
  dormant_mask: np.ndarray


def split_dormant(features: Sequence[Any], acts, eps: float = 0.0
                  ) -> DormantSplit:
  """Splits `features` into dormant and active on the source prompts.

  Args:
    features: the I stage-2 features.
    acts: [..., I] their activations on the source prompts: [T, I] for one
      prompt, [P, T, I] or [P, I] for several (every leading axis is
      reduced: dormant means silent everywhere).
    eps: active means above this.

  Returns:
    DormantSplit.
  """
  a = np.asarray(acts)
  if a.shape[-1] != len(features):
    raise errors.ConfigError(
        f'activations have {a.shape[-1]} features, the set {len(features)}')
  fired = activity.active(a, eps).any(axis=tuple(range(a.ndim - 1)))
  return DormantSplit(
      dormant=[f for f, on in zip(features, fired) if not on],
      active=[f for f, on in zip(features, fired) if on],
      dormant_mask=~fired)


def dormant_effect(features: Sequence[Any], acts, jailbreak_fn: JailbreakFn,
                   eps: float = 0.0) -> dict:
  """Reruns the jailbreak without the dormant features.

  Args:
    features, acts, eps: as `split_dormant`.
    jailbreak_fn: a feature list -> [P] bool, whether each prompt is
      jailbroken with that list ablated.

  Returns:
    {'n_features', 'n_dormant', 'dormant': list, 'full': {asr,
    asr_count}, 'without_dormant': {asr, asr_count}, 'asr_change':
    without minus full, 'asr_change_count', 'lost_count': prompts
    jailbroken by the full set but not without the dormant ones,
    'gained_count': the reverse}. Without dormant features the rerun is
    skipped (the set is unchanged).
  """
  split = split_dormant(features, acts, eps)
  full = np.asarray(jailbreak_fn(list(features)), bool)
  without = (np.asarray(jailbreak_fn(split.active), bool) if split.dormant
             else full)
  a, b = asr_counts(full), asr_counts(without)
  return dict(n_features=len(features), n_dormant=len(split.dormant),
              dormant=split.dormant, full=a, without_dormant=b,
              asr_change=b['asr'] - a['asr'],
              asr_change_count=b['asr_count'] - a['asr_count'],
              lost_count=int((full & ~without).sum()),
              gained_count=int((~full & without).sum()))
