"""Attack success as a rate and as a count of jailbroken prompts.

The paper reports each condition as a count of jailbroken samples as well as
an ASR (paper.md section 2.8b), so every rate here comes with its count.
"""

from typing import Callable, Sequence

import numpy as np

# a feature set -> [P] bool, jailbroken per prompt with that set ablated.
JailbreakFn = Callable[[list], np.ndarray]


def asr_counts(jailbroken: Sequence[bool], name: str = 'asr') -> dict:
  """{name: fraction jailbroken, name + '_count': number jailbroken}.

  Args:
    jailbroken: [P] one bool per prompt.
    name: the key of the rate; the count's key is `{name}_count`.

  Returns:
    The rate (0.0 without prompts) and the count.
  """
  j = np.asarray(jailbroken, bool).reshape(-1)
  count = int(j.sum())
  return {name: count / j.size if j.size else 0.0, f'{name}_count': count}
