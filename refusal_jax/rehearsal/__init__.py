"""Full-size rehearsals of the main job on random weights laid out as the hub's.

See run.py. `python -m experiments.rehearse --preset=gemma-2-2b-it` (or
`llama-3.1-8b-instruct`) is the command.
"""

from refusal_jax.rehearsal.run import PRESETS
from refusal_jax.rehearsal.run import Preset
from refusal_jax.rehearsal.run import load_config
from refusal_jax.rehearsal.run import prepare
from refusal_jax.rehearsal.run import preset
from refusal_jax.rehearsal.run import rehearse
from refusal_jax.rehearsal.run import scale_down

__all__ = ['PRESETS', 'Preset', 'load_config', 'prepare', 'preset',
           'rehearse', 'scale_down']
