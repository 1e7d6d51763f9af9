"""FasterNet checkpoints: their key layouts and conversion to ours
(:mod:`.layouts`), safe reading (:mod:`.reading`) with the allow-list for
MMEngine's own checkpoints (:mod:`.allowlist`), and the weights-only form of
whole training checkpoints (:mod:`.weights_only`)."""
from ..errors import CheckpointError
from .allowlist import allow_mmengine_checkpoints, mmengine_checkpoints
from .layouts import (HEAD_PREFIXES, LAYOUTS, check_compatible,
                      convert_checkpoint_file, convert_state_dict,
                      detect_layout, load_pretrained, select_prefix,
                      unwrap_state_dict)
from .reading import (check_zip_records, download_checkpoint, hub_cache_path,
                      read_checkpoint)
from .weights_only import (MAX_DEPTH, TYPE_KEY, from_weights_only_form,
                           restore_checkpoint, to_weights_only_form,
                           write_weights_only_checkpoint)

__all__ = [
    'CheckpointError', 'HEAD_PREFIXES', 'LAYOUTS', 'MAX_DEPTH', 'TYPE_KEY',
    'allow_mmengine_checkpoints', 'check_compatible', 'check_zip_records',
    'convert_checkpoint_file', 'convert_state_dict', 'detect_layout',
    'download_checkpoint', 'from_weights_only_form', 'hub_cache_path',
    'load_pretrained', 'mmengine_checkpoints', 'read_checkpoint',
    'restore_checkpoint', 'select_prefix', 'to_weights_only_form',
    'unwrap_state_dict', 'write_weights_only_checkpoint'
]
