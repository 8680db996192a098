"""Where the latents woken by ablating each prompt's full active set fire.

The paper's hydra localisation (`../shared/reference/paper.md` 2.6): on
LLaMA "74% of redundant features activate on system tokens after ablating
active sets; 97% fire specifically on `<|begin_of_text|>`"; on Gemma the
`<bos>` token has the highest share, 16%.

For each stage-2 search prompt p, its full active set (every feature of the
space firing on p, `per_prompt_stage.full_active_sets`) is ablated on p
alone. At each SAE downstream of the space (stage 4's), a latent is woken
on p when it is at or below `eps` on every token of p clean and above it on
some token with the set ablated. Every (prompt, woken latent, token) firing
counts once toward the token's class:

* system: the template's leading block before the user turn, BOS included
  (Llama-3.1's default system message, SmolLM2's system prompt; Gemma-2's
  template has none, so its system block is BOS alone);
* template: the template's other tokens (the user header, the tokens after
  the instruction);
* instruction: the user message.

`bos_share` is the share of all firings on BOS and `bos_of_system` the share
of the system firings on BOS (the paper's 97%). All prompts share one
compiled pass: each is ablated with one edit per SAE of the space
(`evaluation.space_ablation`).
"""

import numpy as np

from refusal_jax.pipeline import evaluation
from refusal_jax.pipeline import latents
from refusal_jax.pipeline.context import BOS, INSTRUCTION, TEMPLATE
from refusal_jax.pipeline.context import Context, PromptSet
from refusal_jax.pipeline.context import system_length

CLASSES = ('system', 'template', 'instruction')


def position_classes(token_cls: np.ndarray, mask: np.ndarray, n_system: int
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Token classes for the woken shares, from the pipeline's.

  Args:
    token_cls: [B, T] `context.token_classes` of the prompts (BOS, TEMPLATE,
      INSTRUCTION; 0 at padding).
    mask: [B, T] 1 at real tokens (left-padded prompts).
    n_system: leading real tokens of the system block (BOS included),
      `context.system_length`.

  Returns:
    ([B, T] int class: -1 padding, else an index of CLASSES;
     [B, T] bool, BOS).
  """
  bos = token_cls == BOS
  cls = np.select([bos, token_cls == TEMPLATE, token_cls == INSTRUCTION],
                  [CLASSES.index('system'), CLASSES.index('template'),
                   CLASSES.index('instruction')], -1).astype(np.int8)
  for b in range(mask.shape[0]):
    cls[b, np.flatnonzero(mask[b])[:n_system]] = CLASSES.index('system')
  return cls, bos


def woken_shares(clean: np.ndarray, ablated: np.ndarray, classes: np.ndarray,
                 bos: np.ndarray, eps: float = 0.0) -> dict:
  """Counts and shares of the woken latents' firings by token class.

  Args:
    clean, ablated: [P, T, A] latents of one SAE on P prompts, clean and
      with each prompt's own set ablated (0 at padding).
    classes, bos: `position_classes` of the prompts.
    eps: active means above this.

  Returns:
    {'n_woken': distinct (prompt, latent) pairs, 'woken': per prompt the
    woken latents, 'counts': {class: firings}, 'bos': firings on BOS}.
  """
  asleep = clean.max(axis=1) <= eps  # [P, A]
  fires = (ablated > eps) & asleep[:, None, :]  # [P, T, A]
  per_token = fires.sum(axis=-1)  # [P, T]
  counts = {c: int(per_token[classes == i].sum()) for i, c in enumerate(CLASSES)}
  woken = [np.flatnonzero(fires[p].any(axis=0)).tolist()
           for p in range(fires.shape[0])]
  return dict(n_woken=int(sum(map(len, woken))), woken=woken, counts=counts,
              bos=int(per_token[bos].sum()))


def shares(counts: dict, bos: int) -> dict:
  """{'system', 'template', 'instruction', 'bos', 'bos_of_system'} shares."""
  total = sum(counts.values())
  out = {c: (counts[c] / total if total else 0.0) for c in CLASSES}
  out['bos'] = bos / total if total else 0.0
  out['bos_of_system'] = bos / counts['system'] if counts['system'] else 0.0
  return out


def run(ctx: Context, ps: PromptSet, full_sets, saes, eps: float) -> dict:
  """The woken latents of `saes` with each prompt's full active set ablated.

  Args:
    ctx: the pipeline context.
    ps: the search prompts.
    full_sets: [P] per prompt, its full active set (space features).
    saes: the SAEs read (downstream of the space).
    eps: active means above this.

  Returns:
    {'n_prompts', 'n_system_tokens', 'n_woken' (prompt, latent pairs, over
    all SAEs), 'n_distinct' (distinct latents), 'counts' {class: firings,
    'bos'}, 'shares' (`shares`), 'per_sae' [{hook, n_woken, n_distinct}]};
    empty counts when no SAE is downstream of the space.
  """
  n_system = system_length(ctx.model.tokenizer, ctx.model.config.bos_token_id,
                           ctx.n_prefix)
  classes, bos = position_classes(ctx.token_classes(ps), ps.mask, n_system)
  memo = ctx.memo('hydra')
  counts = {c: 0 for c in CLASSES}
  n_bos, n_woken, n_distinct, per_sae = 0, 0, 0, []
  for sae in saes:
    key = 'woken_' + sae.hook_name.replace('.', '_')
    clean = memo(f'{key}_clean', lambda sae=sae: dict(
        f=latents.site_latents(ctx.model, sae, ps, ctx.chunks.prompts,
                               skip_ids=ctx.skip_ids)))['f']

    def ablated(sae=sae):
      rows = []
      for p, s in enumerate(full_sets):
        one = PromptSet([ps.instructions[p]], ps.ids[p:p + 1],
                        ps.mask[p:p + 1])  # full width: one compiled shape
        rows.append(latents.site_latents(
            ctx.model, sae, one, 1,
            interventions=evaluation.space_ablation(ctx, s),
            skip_ids=ctx.skip_ids)[0])
      return dict(f=np.stack(rows))

    abl = memo(f'{key}_ablated', ablated)['f']
    got = woken_shares(clean, abl, classes, bos, eps)
    for c in CLASSES:
      counts[c] += got['counts'][c]
    n_bos += got['bos']
    distinct = len(set().union(*map(set, got['woken'])))
    n_woken += got['n_woken']
    n_distinct += distinct
    per_sae.append(dict(hook=sae.hook_name, n_woken=got['n_woken'],
                        n_distinct=distinct))
  return dict(n_prompts=len(ps), n_system_tokens=n_system, n_woken=n_woken,
              n_distinct=n_distinct, counts=dict(counts, bos=n_bos),
              shares=shares(counts, n_bos), per_sae=per_sae)

