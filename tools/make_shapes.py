"""Generate the synthetic shapes dataset of the demo (see
fasternet_mm/shapes.py): deterministic from --seed, COCO instances plus
semantic masks."""
import argparse

from fasternet_mm.shapes import generate


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', nargs='?', default='data/shapes')
    parser.add_argument('--num-train', type=int, default=240)
    parser.add_argument('--num-val', type=int, default=60)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--max-shapes', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    try:
        counts = generate(args.root, args.num_train, args.num_val, args.size,
                          args.max_shapes, args.seed)
    except ValueError as err:
        parser.error(str(err))
    print(f'shapes dataset in {args.root}: {counts}')


if __name__ == '__main__':
    main()
