"""Control feature sets: random sets of the same size, and O'Brien et al.'s.

The note on the paper (paper.md section 2.8b): ablating random features of
the same size jailbreaks 0 (LLaMA) and 5 (Gemma) prompts; "an O'Brien et al.
style baseline (features active on at least k tokens)" reaches at most ASR
0.10 (Gemma), 0.07 (LLaMA). The "max ASR" is read as a sweep over k whose
best ASR is reported, so `obrien_set` takes every feature that fires on at
least k tokens (no size cap unless one is asked for), and `control_asr`
sweeps k.

Axis letters: P prompts, T tokens, I candidate features.
"""

from typing import Any, Sequence

import numpy as np

from refusal_jax import errors
from refusal_jax.pipeline.paper import activity
from refusal_jax.pipeline.paper.counts import JailbreakFn, asr_counts

def random_sets(pool: Sequence[Any], size: int, n_draws: int,
                seed: int | Sequence[int]) -> list[list]:
  """`n_draws` sets of `size` features drawn from `pool` without replacement.

  Args:
    pool: the candidate features to draw from.
    size: features per set (the size of the set it controls for).
    n_draws: number of sets.
    seed: numpy Generator seed (an int, or ints such as (seed, prompt));
      draw d uses the d-th draw of one stream.

  Returns:
    The sets, each in pool order.
  """
  if not 0 <= size <= len(pool):
    raise errors.ConfigError(
        f'a random control set of {size} features from a pool of {len(pool)}')
  rng = np.random.default_rng(seed)
  return [[pool[j] for j in np.sort(rng.choice(len(pool), size, False))]
          for _ in range(n_draws)]


def token_counts(acts, eps: float = 0.0) -> np.ndarray:
  """[I] int, tokens on which each feature fires (> eps).

  Args:
    acts: [..., T, I] activations (0 at padding); every leading axis is
      counted, so [P, T, I] counts tokens over all prompts and [T, I] over
      one.
    eps: active means above this.
  """
  a = np.asarray(acts)
  return activity.active(a, eps).reshape(-1, a.shape[-1]).sum(0)


def obrien_set(acts, min_tokens: int, *, eps: float = 0.0,
               size: int | None = None) -> list[int]:
  """Features active on at least `min_tokens` tokens, most tokens first.

  Args:
    acts: [..., T, I] activations of the candidates on the prompts.
    min_tokens: k.
    eps: active means above this.
    size: keep at most this many (the most frequent); None or 0 keeps all.

  Returns:
    Candidate indices, by token count descending, then index.
  """
  counts = token_counts(acts, eps)
  order = np.lexsort((np.arange(len(counts)), -counts))
  chosen = [int(i) for i in order if counts[i] >= min_tokens]
  return chosen[:size] if size else chosen


def control_asr(candidates: Sequence[Any], size: int, acts,
                jailbreak_fn: JailbreakFn, *, n_draws: int, seed: int,
                min_tokens: Sequence[int], eps: float = 0.0,
                obrien_size: int | None = None) -> dict:
  """ASR of the random controls and of the O'Brien-style sets.

  Args:
    candidates: the I candidate features (the pool of both controls).
    size: size of the set being controlled for.
    acts: [..., T, I] activations of the candidates on the prompts.
    jailbreak_fn: a feature list -> [P] bool, jailbroken per prompt.
    n_draws: random sets drawn.
    seed: their seed.
    min_tokens: the k swept for the O'Brien-style set.
    eps: active means above this.
    obrien_size: cap of the O'Brien-style set (None or 0: all features
      active on >= k tokens).

  Returns:
    {'random': [{'size', 'asr', 'asr_count'}] per draw, 'random_mean_asr',
    'random_max_asr_count', 'obrien': [{'min_tokens', 'size', 'asr',
    'asr_count'}] per k, 'obrien_max_asr', 'obrien_max_asr_count'}; an
    empty O'Brien set is not run (ASR 0).
  """
  rand = [dict(size=size, **asr_counts(jailbreak_fn(s)))
          for s in random_sets(candidates, size, n_draws, seed)]
  obrien = []
  for k in min_tokens:
    chosen = [candidates[i] for i in obrien_set(acts, k, eps=eps,
                                                size=obrien_size)]
    jb = jailbreak_fn(chosen) if chosen else np.zeros(0, bool)
    row = asr_counts(jb)
    obrien.append(dict(min_tokens=int(k), size=len(chosen), **row))
  return dict(
      random=rand,
      random_mean_asr=float(np.mean([r['asr'] for r in rand])) if rand else
      0.0,
      random_max_asr_count=max((r['asr_count'] for r in rand), default=0),
      obrien=obrien,
      obrien_max_asr=max((r['asr'] for r in obrien), default=0.0),
      obrien_max_asr_count=max((r['asr_count'] for r in obrien), default=0))
