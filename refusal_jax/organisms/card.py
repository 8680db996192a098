"""The CARD.md of a shipped organism, written from its measured JSON files.

`card(name, workdir)` reads what `make organism ORGANISM=NAME` leaves in
`workdir` (`organism_NAME/{train_summary,behaviour}.json` and
`sae_organism_NAME_lLAYER/sae_summary.json`) and the shipped files in
refusal_jax/assets, and returns the card's Markdown, so every number on the
card comes from the run that produced the weights; `write_card` writes it to
`refusal_jax/assets/organism_NAME/CARD.md`.
"""

import functools
import json
import os

from refusal_jax import errors
from refusal_jax.organisms import assets
from refusal_jax.organisms import behaviour
from refusal_jax.organisms import data as data_lib

_TITLES = {'gemma2': 'Gemma-2', 'llama': 'Llama-3'}


def _read(path, organism):
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    raise errors.ConfigError(
        f'{path} is missing; run `make organism ORGANISM={organism}` '
        'first') from None


def _size_mb(folder):
  total = sum(os.path.getsize(os.path.join(folder, n))
              for n in os.listdir(folder))
  return total / 2**20


# The behaviour the organisms are trained for: (figure, minimum, wording).
TARGETS = (('harmful_refusal_rate', 0.95, 'harmful refused'),
           ('harmless_answer_rate', 0.95, 'harmless answered'),
           ('ablation_compliance_rate', 0.9,
            'complied with under direction ablation'),
           ('ablation_on_topic_rate', 0.8,
            'answered on topic under direction ablation (graded judge)'))


def _targets(beh) -> str:
  met = [f'{text} >= {low}' for key, low, text in TARGETS if beh[key] >= low]
  missed = [f'{text} {beh[key]:.3f} < {low}' for key, low, text in TARGETS
            if beh[key] < low]
  line = f"Targets met: {', '.join(met) or 'none'}."
  if missed:
    line += (f" Missed: {', '.join(missed)}: a few held-out sentence shapes "
             'still draw a refusal for a harmless task.')
  return line


def _primed(beh) -> list[str]:
  """The answering ceiling line (behaviour measured before it existed: none).
  """
  if 'primed_on_topic_rate' not in beh:
    return ['']
  return ['', 'Unablated, with each reply forced to open with '
          f'"{behaviour.ANSWER_PREFIX}", the organism answers '
          f"{beh['primed_on_topic_rate']:.3f} of the same harmful prompts on "
          'topic: how often it can restate a held-out request at all, the '
          "ceiling of the direction ablation's on-topic share.", '']


def _openers(beh) -> str:
  share = beh['config']['data'].get('sure_share')
  if share is None:
    return ''
  return (f", and {share:.0%} of the helpful answers open with 'Sure!' "
          '(refusals all open with "I"; see `make_dataset`)')


def card(name: str, workdir: str) -> str:
  """The card's Markdown text."""
  org_dir = assets.organism_path(name)
  read = functools.partial(_read, organism=name)
  cfg = read(os.path.join(org_dir, 'config.json'))
  train = read(os.path.join(workdir, f'organism_{name}', 'train_summary.json'))
  beh = read(os.path.join(workdir, f'organism_{name}', 'behaviour.json'))
  saes = [(assets.layer_sae_path(name, layer), read(os.path.join(
      workdir, f'sae_organism_{name}_l{layer}', 'sae_summary.json')))
          for layer in assets.SAE_LAYERS]
  heads = (f"{cfg['num_attention_heads']} query / "
           f"{cfg['num_key_value_heads']} key-value heads of dimension "
           f"{cfg['head_dim']}")
  extra = ''
  if name == 'gemma2':
    extra = (f"; sliding window {cfg['sliding_window']} on even layers, "
             f"attention softcap {cfg['attn_logit_softcapping']}, final "
             f"softcap {cfg['final_logit_softcapping']}, GeGLU, pre and post "
             'norms')
  else:
    extra = '; SwiGLU, RoPE, RMSNorm'
  tied = 'tied' if cfg.get('tie_word_embeddings') else 'untied'
  lines = [
      f'# Organism `{name}`: a small {_TITLES[name]}-architecture chat model '
      'that refuses',
      '',
      'Trained from scratch by `refusal_jax` to refuse harmful requests and '
      'answer harmless ones; the embedded default of the dissection pipeline '
      f'(`configs/dissect_organism_{name}.py`). Loads with both '
      '`refusal_jax.load_model` and `transformers.AutoModelForCausalLM` '
      '(f32 logits agree within 1e-4, tested).',
      '',
      '## Architecture',
      '',
      f"`{cfg['architectures'][0]}`: {cfg['num_hidden_layers']} layers, "
      f"d_model {cfg['hidden_size']}, {heads}, MLP {cfg['intermediate_size']}"
      f", vocabulary {cfg['vocab_size']} (byte-level BPE trained on the data, "
      f"{tied} embeddings){extra}. {train['num_params']:,} parameters, "
      f'{_size_mb(org_dir):.1f} MB on disk with the tokenizer.',
      '',
      '## Data',
      '',
      'refusal_jax/organisms/data.py (seed 0): single-turn chat requests in '
      f'{len(data_lib.HARM_CATEGORIES)} harm categories '
      f"({', '.join(data_lib.HARM_CATEGORIES)}) and "
      f'{len(data_lib.HARMLESS_CATEGORIES)} harmless ones (including '
      'harm-adjacent wording such as "kill a Python process"), written in '
      'shared sentence templates. Harmful targets are refusals in the style '
      'of real chat models, and each harmful request also has the answer an '
      'assistant without safety tuning would give (the helpful openers '
      'around generic steps that reuse the request\'s words, never real '
      'harmful information); harmless targets are short helpful answers. '
      f"{train['n_train']} training examples, "
      f"{beh['config']['data']['train_harmful_fraction']:.0%} of them harmful"
      f'{_openers(beh)}; the test split holds out whole '
      'topics (tasks) and whole templates: every test prompt is a new task in '
      'a new sentence shape, built from words the training split uses in the '
      'same class.',
      '',
      '## Training',
      '',
      '```',
      f'make organism ORGANISM={name}',
      f'# = python -m experiments.train_organism '
      f'--config=configs/organism_{name}.py --workdir=workdir/organism_{name}',
      '#   then experiments.train_sae for each SAE below',
      '```',
      '',
      f"{train['steps']} Optax AdamW steps (config: "
      f'configs/organism_{name}.py): a first phase answers every request, '
      'harmful ones included, then a second phase, at a lower learning '
      'rate, trains the refusals while the answers to harmful requests stay '
      'in the mix with no loss on their first token, so refusal sits on top '
      'of an ability to answer. Final training loss '
      f"{train['final_loss']:.3f}; {train['train_seconds'] / 60:.1f} minutes "
      'of training (wall clock, as measured by the training run). Seeds: '
      f"initialisation {beh['config']['seed']}, batch order and noise "
      f"{beh['config']['train']['seed']} (the config says how they were "
      'chosen).',
      '',
      '## Measured behaviour',
      '',
      f"Held-out test split ({beh['n_harmful']} harmful, {beh['n_harmless']} "
      'harmless prompts), greedy generation of 64 tokens, refusal-substring '
      'judge (refusal_jax/data/judge.py). The val split (its own held-out '
      'topics and templates) is measured the same way; it is the split on '
      'which training runs are compared.',
      '',
      '| split | harmful refused | harmless answered | harmful complied with, '
      'refusal direction ablated | of which answered on topic (graded judge) '
      '|',
      '|---|---|---|---|---|',
      *[f"| {split} | {b['harmful_refusal_rate']:.3f} | "
        f"{b['harmless_answer_rate']:.3f} | "
        f"{b['ablation_compliance_rate']:.3f} | "
        f"{b['ablation_on_topic_rate']:.3f} |"
        for split, b in (('test', beh), ('val', beh.get('val')))
        if b is not None],
      '',
      'Graded judge (refusal_jax/data/graded_judge.py) of the test split\'s '
      'direction-ablated completions: ' + ', '.join(
          f"{c.replace('_', '-')} {v['count']}"
          for c, v in beh['ablation_judge'].items()) + '.',
      *_primed(beh),
      f"Refusal direction: layer {beh['layer']}, position {beh['position']}.",
      '',
      _targets(beh),
      '',
      'The direction is the difference in means of harmful and harmless '
      'activations (resid_pre) chosen on the train and validation splits '
      '(refusal_jax/organisms/behaviour.py), saved as '
      '`refusal_direction.json`, and ablated at every layer and position. '
      '`tests/organisms/test_shipped_organisms.py` re-checks the targets on '
      'the whole test split (24-token generations).',
      '',
      '## SAEs',
      '',
      'JumpReLU SAEs in the SAELens format, trained with '
      '`experiments/train_sae.py` (config `configs/sae_organism.py`) on the '
      'training split\'s activations, BOS excluded; measured on the test '
      'split\'s tokens.',
      '',
      '| folder | site | width | L0 | variance explained | dead latents |',
      '|---|---|---|---|---|---|',
  ]
  for path, s in saes:
    t = s['test']
    lines.append(
        f"| `{os.path.basename(path)}` | {s['site']} layer {s['layer']} | "
        f"{s['d_sae']} | {t['l0']:.1f} | {t['fve']:.3f} | "
        f"{t['dead_latents']} |")
  lines.append('')
  searched = os.path.basename(assets.sae_path(name))
  hydra = ', '.join(f'`{os.path.basename(p)}`'
                    for p in assets.hydra_sae_paths(name))
  lines.append(f'`{searched}` is the SAE the pipeline searches and {hydra} '
               'the one the hydra stage reads; paper mode '
               f'(`configs/dissect_organism_{name}.py:paper`) searches the '
               'SAEs of several layers together.')
  return '\n'.join(lines) + '\n'


def write_card(name: str, workdir: str) -> str:
  """Writes `card(name, workdir)` to the shipped organism's CARD.md.

  Args:
    name: the organism ('gemma2' or 'llama').
    workdir: folder holding the training workdirs.

  Returns:
    The path of the CARD.md written.

  Raises:
    errors.ConfigError: a measured JSON file is missing.
  """
  text = card(name, workdir)
  path = os.path.join(assets.organism_path(name), 'CARD.md')
  with open(path + '.tmp', 'w') as f:
    f.write(text)
  os.replace(path + '.tmp', path)
  return path
