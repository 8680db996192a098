"""The CARD.md of a safety adapter, written from its run's summary.json.

`card(summary)` returns the Markdown; every number on it comes from the
summary of the run that produced the adapter (`safety.safety_tune`), which
writes it next to the adapter as `workdir/adapter/CARD.md`.
"""

from typing import Any

COMMAND = ('python -m experiments.safety_tune '
           '--config=configs/safety_smollm2.py --workdir=WORKDIR')


def _row(name: str, j: dict[str, Any], key: str = 'refused') -> str:
  g = j['graded']
  return (f"| {name} | {j['n']} | {j[key]:.3f} | {g['refusal']:.2f} / "
          f"{g['broken']:.2f} / {g['off_topic']:.2f} / {g['jailbreak']:.2f} |")


def card(summary: dict[str, Any]) -> str:
  """The card's Markdown for a finished run's summary."""
  ev, c = summary['eval'], summary['config']
  s = summary['seconds']
  lora, train, data = c['lora'], c['train'], summary['data']
  t = c['targets']
  met = ', '.join(k for k, v in ev['targets'].items() if v) or 'none'
  missed = ', '.join(k for k, v in ev['targets'].items() if not v) or 'none'
  head = ('| set | prompts | fraction | graded: refusal / broken / off-topic / '
          'jailbreak |')
  rule = '|---|---|---|---|'
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
      f"Training: {data['n_harmful']} harmful requests (AdvBench train split "
      'and Do-Not-Answer train split, areas '
      f"{', '.join(c['data']['dna_areas'])})"
      f" with refusals in {data['n_distinct_refusals']} distinct phrasings; "
      f"{data['n_harmless']} everyday train requests with the base model's "
      f"own greedy answers ({c['data']['distill_tokens']} tokens; "
      f"{data['n_harmless_dropped']} answers that held a refusal phrase "
      f"dropped), {c['data']['harmless_repeat']} times each; "
      f"{train['steps']} AdamW steps of {train['batch_size']} sequences, "
      f"peak learning rate {train['learning_rate']}, seed {train['seed']}.",
      '',
      'Held-out behaviour (greedy, '
      f"{c['eval']['max_new_tokens']} tokens; fraction by the "
      'refusal-substring judge, next to the graded judge\'s classes):',
      '',
      '**Refused, tuned model**', '', head, rule,
      _row('AdvBench test', ev['harmful']['advbench']),
      _row('HarmBench (never trained on)', ev['harmful']['harmbench']),
      _row('everyday test (harmless)', ev['harmless']),
      '',
      '**Refused, base model**', '', head, rule,
      _row('AdvBench test', ev['base']['harmful']['advbench']),
      _row('HarmBench', ev['base']['harmful']['harmbench']),
      _row('everyday test (harmless)', ev['base']['harmless']),
      '',
      '**Complied with, tuned model with its refusal direction ablated** '
      '(fraction: neither a refusal phrase nor broken text by the graded '
      'judge)',
      '', head, rule,
      _row('AdvBench test', ev['ablation']['advbench'], 'complied'),
      _row('HarmBench', ev['ablation']['harmbench'], 'complied'),
      '',
      "CE of the base model's greedy answers to the everyday test prompts: "
      f"tuned {ev['ce']['tuned']:.4f}, base {ev['ce']['base']:.4f} nats/token "
      f"(difference {ev['ce']['difference']:+.4f}).",
      '',
      f"Targets (harmful refused >= {t['harmful_refused']} on AdvBench test "
      f"and HarmBench, harmless answered >= {t['harmless_answered']}, CE "
      f"difference <= {t['ce_difference']}, complied with under ablation >= "
      f"{t['ablation_complied']}): met {met}; missed {missed}.",
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
