"""Convert a FasterNet checkpoint to the fasternet_mm layout.

Reads the official ImageNet release, the official mmdet 2.x Mask R-CNN
release (its backbone) or a timm state dict, detects which it is, and writes
``{'state_dict': ...}`` with our backbone keys and no classification head:

    python tools/convert_checkpoint.py \
        fasternet_s-epoch.299-val_acc1.81.2840.pth fasternet_s_mm.pth

With ``--weights-only-safe`` it instead re-saves a whole training checkpoint
(MMEngine's, or mmdet 2's) so that a plain ``torch.load`` reads it on
torch >= 2.6, as mmdet's and mmseg's own tools and inferencers call it: the
message hub's history buffers and numpy values are written as plain dicts
of tensors and numbers; weights, optimizer and meta are kept:

    python tools/convert_checkpoint.py epoch_12.pth epoch_12_safe.pth \
        --weights-only-safe
"""
import argparse

from fasternet_mm.checkpoint import (convert_checkpoint_file,
                                     write_weights_only_checkpoint)
from fasternet_mm.cli import exit_on_user_error, missing_files_are_user_errors


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='source checkpoint (path or URL)')
    parser.add_argument('dst', help='where to write the converted weights')
    parser.add_argument(
        '--prefix',
        help="take the keys under this prefix, e.g. 'backbone.' "
        '(default: detected)')
    parser.add_argument(
        '--trust-pickle',
        action='store_true',
        help='unpickle arbitrary objects: only for a file you trust, since '
        'unpickling can run code. Without it, only weights are read.')
    parser.add_argument(
        '--weights-only-safe',
        action='store_true',
        help='keep the whole checkpoint and write it in types that '
        'torch.load reads with weights_only=True, instead of converting the '
        "backbone's keys")
    args = parser.parse_args(argv)
    if args.weights_only_safe and args.prefix is not None:
        parser.error('--prefix selects backbone keys; --weights-only-safe '
                     'keeps the whole checkpoint: give one of them')
    return args


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    if args.weights_only_safe:
        with missing_files_are_user_errors():
            write_weights_only_checkpoint(
                args.src, args.dst, trust_pickle=args.trust_pickle)
        print(f'{args.src}: wrote {args.dst}, which torch.load reads with '
              f'weights_only=True')
        return
    with missing_files_are_user_errors():
        layout, count = convert_checkpoint_file(
            args.src,
            args.dst,
            prefix=args.prefix,
            trust_pickle=args.trust_pickle)
    print(f'{args.src}: {layout} layout, wrote {count} tensors to {args.dst}')


if __name__ == '__main__':
    main()
