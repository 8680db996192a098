"""Named residual-stream sites where interventions apply and activations are captured.

Per layer `l` the decoder visits, in order:

  resid_pre[l]   the residual stream entering block l (= resid_post[l-1])
  attn_out[l]    the attention sub-block's output added to the residual
                 (after Gemma-2's post-attention norm, when the model has one)
  mlp_out[l]     the MLP sub-block's output added to the residual
                 (after Gemma-2's post-feedforward norm, when the model has one)
  resid_post[l]  the residual stream leaving block l

SAELens / TransformerLens hook names map onto these sites:
`blocks.{l}.hook_resid_pre` -> ('resid_pre', l), `blocks.{l}.hook_resid_post`
-> ('resid_post', l), `blocks.{l}.hook_attn_out` -> ('attn_out', l),
`blocks.{l}.hook_mlp_out` -> ('mlp_out', l).
"""

import re

from refusal_jax import errors

RESID_PRE = 'resid_pre'
ATTN_OUT = 'attn_out'
MLP_OUT = 'mlp_out'
RESID_POST = 'resid_post'

SITES = (RESID_PRE, ATTN_OUT, MLP_OUT, RESID_POST)

_HOOK_RE = re.compile(r'^blocks\.(\d+)\.hook_(resid_pre|resid_post|attn_out|mlp_out)$')


def parse_hook_name(hook_name: str) -> tuple[str, int]:
  """Maps a TransformerLens-style hook name to (site, layer).

  Args:
    hook_name: e.g. 'blocks.12.hook_resid_post'.

  Returns:
    (site, layer), e.g. ('resid_post', 12).

  Raises:
    errors.ConfigError: if the hook is not a residual-stream site this
      project implements.
  """
  m = _HOOK_RE.match(hook_name)
  if m is None:
    raise errors.ConfigError(
        f'unsupported hook {hook_name!r}: expected blocks.<layer>.hook_'
        '{resid_pre,resid_post,attn_out,mlp_out}')
  return m.group(2), int(m.group(1))


def hook_name(site: str, layer: int) -> str:
  """Inverse of `parse_hook_name`."""
  if site not in SITES:
    raise errors.ConfigError(f'unknown site {site!r}; expected one of {SITES}')
  return f'blocks.{layer}.hook_{site}'
