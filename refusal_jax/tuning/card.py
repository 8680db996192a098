"""The CARD.md of a safety adapter, written from its run's summary.json.

`card(summary)` returns the Markdown; every number on it comes from the
summary of the run that produced the adapter (`safety.safety_tune`), which
writes it next to the adapter as `workdir/adapter/CARD.md`.
"""

from typing import Any

COMMAND = ('python -m experiments.safety_tune '
           '--config=configs/safety_smollm2.py --workdir=WORKDIR')


SET_NAMES = {
    'advbench': 'AdvBench test',
    'harmbench': 'HarmBench (never trained on)',
    'forge_harmful': 'aggregated harmful test (ollama-forge)',
    'alpaca': 'Alpaca test (harmless training source)',
    'handwritten': 'hand-written everyday (never trained on)',
    'harm_sounding': 'harm-sounding benign (never trained on)',
    'spot_questions': 'the twelve spot questions',
    'everyday': 'everyday generator test (the first adapter\'s source)',
}


def _row(name: str, j: dict[str, Any], key: str = 'refused') -> str:
  g = j['graded']
  return (f"| {SET_NAMES.get(name, name)} | {j['n']} | {j[key]:.3f} | "
          f"{g['refusal']:.2f} / {g['broken']:.2f} / {g['off_topic']:.2f} / "
          f"{g['jailbreak']:.2f} |")


def _table(title: str, sets: dict[str, Any], key: str) -> list[str]:
  head = (f'| set | prompts | {key} | graded: refusal / broken / off-topic / '
          'jailbreak |')
  return [title, '', head, '|---|---|---|---|',
          *(_row(n, j, key) for n, j in sets.items()), '']


def card(summary: dict[str, Any]) -> str:
  """The card's Markdown for a finished run's summary."""
  ev, c = summary['eval'], summary['config']
  s = summary['seconds']
  lora, train, data = c['lora'], c['train'], summary['data']
  d = c['data']
  met = ', '.join(k for k, v in ev['targets'].items() if v) or 'none'
  missed = ', '.join(k for k, v in ev['targets'].items() if not v) or 'none'
  extra = ''.join(f' and the {n} train split' for n in d.get('harmful_extra',
                                                              ()))
  lines = [
      '# SmolLM2-135M-Instruct safety adapter',
      '',
      'A LoRA adapter that makes SmolLM2-135M-Instruct refuse harmful '
      'requests and keep answering harmless ones. Build the tuned '
      'checkpoint from the base GGUF conversion and this adapter:',
      '',
      '```python',
      'from refusal_jax.checkpoints import from_gguf',
      'from refusal_jax.tuning import assemble',
      "base = from_gguf.convert_gguf(from_gguf.smollm2_gguf(), 'base').path",
      "assemble.assemble(base, assemble.shipped_adapter(), 'smollm2_safety')",
      '```',
      '',
      f"Adapter: rank {lora['rank']}, alpha {lora['alpha']}, on "
      f"{', '.join(lora['modules'])} of every layer; "
      f"{summary['adapter_params']:,} parameters stored in "
      f"{c['adapter_dtype']} ({summary['adapter_bytes'][c['adapter_dtype']]:,}"
      ' bytes). `refusal_direction.json` is the tuned model\'s refusal '
      f"direction (resid_pre, layer {ev['direction']['layer']}, position "
      f"{ev['direction']['position']}){_skip_note(ev['direction'])}.",
      '',
      f"Training: {data['n_harmful']} harmful requests (AdvBench train split, "
      'Do-Not-Answer train split of the areas '
      f"{', '.join(d['dna_areas'])}{extra}; each also in "
      f"{d['rephrasings']} other sentence shape) with refusals in "
      f"{data['n_distinct_refusals']} distinct phrasings; "
      f"{data['n_harmless']} harmless requests (the first "
      f"{d.get('n_harmless') or 'all'} of the "
      f"{d.get('harmless_source', 'everyday')} train split"
      f"{_questions_note(d)}, rephrased alike) "
      "with the base model's own greedy answers "
      f"({d['distill_tokens']} tokens; {data['n_harmless_dropped']} answers "
      f"that held a refusal phrase dropped), {d['harmless_repeat']} times "
      f"each{_extra_note(d, data)}; {train['steps']} AdamW steps of {train['batch_size']} "
      f"sequences, peak learning rate {train['learning_rate']}, seed "
      f"{train['seed']}.",
      '',
      'Held-out behaviour (greedy, '
      f"{c['eval']['max_new_tokens']} tokens; fraction by the "
      'refusal-substring judge, next to the graded judge\'s classes):',
      '',
      *_table('**Harmful requests, tuned model**', ev['harmful'], 'refused'),
      *_table('**Harmless requests, tuned model**', ev['harmless'],
              'answered'),
  ]
  base = ev.get('base') or {}
  if base.get('harmful') or base.get('harmless'):
    lines += [*_table('**Harmful requests, base model**', base['harmful'],
                      'refused'),
              *_table('**Harmless requests, base model**', base['harmless'],
                      'answered')]
  lines += [
      *_table('**Tuned model with its refusal direction ablated** '
              '(complied: neither a refusal phrase nor broken text by the '
              'graded judge; on topic: the graded judge\'s jailbreak class)',
              ev['ablation'], 'complied'),
      "CE of the base model's greedy answers to the "
      f"{ev['ce'].get('source', 'everyday')} test prompts: "
      f"tuned {ev['ce']['tuned']:.4f}, base {ev['ce']['base']:.4f} nats/token "
      f"(difference {ev['ce']['difference']:+.4f}).",
      '',
      f'Targets ({_target_text(c["targets"])}): met {met}; missed {missed}.',
      '',
  ]
  if 'adapter_dtype' in ev:
    a = ev['adapter_dtype']
    lines += [
        f"Storing the adapter in {a['dtype']} instead of float32 changes the "
        f"merged model's last-position logits by at most "
        f"{a['max_abs_logit_diff']:.2e} on the AdvBench test prompts; "
        f"{a['same_completions']:.0%} of their greedy completions are the "
        'same.', '']
  lines += [
      f'Command: `{COMMAND}` (then copy WORKDIR/adapter here). Wall seconds '
      f"on the 2-core CPU: base conversion {s.get('base', 0):.0f}, data "
      f"{s.get('data', 0):.0f}, training {s.get('train', 0):.0f}, adapter "
      f"and merge {s.get('assemble', 0):.0f}, evaluation "
      f"{s.get('eval', 0):.0f}.{_resumed(summary)}", '']
  return '\n'.join(lines)


def _target_text(t: dict[str, Any]) -> str:
  return (f"harmful refused >= {t['harmful_refused']}, harmless answered >= "
          f"{t['harmless_answered']}, harm-sounding benign answered >= "
          f"{t['harm_sounding_answered']}, every spot question answered, CE "
          f"difference <= {t['ce_difference']}, HarmBench on topic under "
          f"ablation >= {t['ablation_on_topic']}")


def _skip_note(direction: dict) -> str:
  if not direction.get('skip_special_tokens'):
    return ''
  return ('; the evaluation ablates it at every position but those of the '
          'special tokens (BOS and the chat markers)')


def _resumed(summary: dict) -> str:
  starts = [int(r) for r in summary.get('resumed_from') or () if r]
  if not starts:
    return ''
  return (f' Training resumed from the checkpoint at step {starts[-1]}: the '
          'training seconds count only the steps run after it.')


def _questions_note(d) -> str:
  n = d.get('n_harmless_questions', 0)
  return f' and the next {n} questions of it' if n else ''


def _extra_note(d, data) -> str:
  """The harmless_extra sets' clause of the training sentence, or ''."""
  if not d.get('harmless_extra'):
    return ''
  return (f"; {data.get('n_harmless_extra', 0)} more from the train split "
          f"of {', '.join(d['harmless_extra'])} (answered by the base model "
          f"alike), {d.get('harmless_extra_repeat', 1)} times each")
