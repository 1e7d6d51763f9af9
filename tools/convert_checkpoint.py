"""Convert a FasterNet checkpoint to the fasternet_mm layout.

Reads the official ImageNet release, the official mmdet 2.x Mask R-CNN
release (its backbone) or a timm state dict, detects which it is, and writes
``{'state_dict': ...}`` with our backbone keys and no classification head:

    python tools/convert_checkpoint.py \
        fasternet_s-epoch.299-val_acc1.81.2840.pth fasternet_s_mm.pth
"""
import argparse
import sys

from fasternet_mm.checkpoint import CheckpointError, convert_checkpoint_file


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
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        layout, count = convert_checkpoint_file(
            args.src,
            args.dst,
            prefix=args.prefix,
            trust_pickle=args.trust_pickle)
    except (CheckpointError, FileNotFoundError) as err:
        sys.exit(f'convert_checkpoint: {err}')
    print(f'{args.src}: {layout} layout, wrote {count} tensors to {args.dst}')


if __name__ == '__main__':
    main()
