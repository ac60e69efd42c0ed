"""`importance-sampling-report MODEL.keras DATA.npz`: the loss report of a saved model.

The model is loaded with `keras.saving.load_model` (compiled, as saved) and
the arrays `x` and `y` are read from the `.npz` file (and the class names
from its array `class_names`, if it has one); the report of
`importance_sampling.ranking.loss_report` is printed, and optionally saved
as JSON and as a figure.

    importance-sampling-report model.keras data.npz --top 20 --bins range --plot report.png
"""

import argparse
import json
import sys


def make_parser():
    parser = argparse.ArgumentParser(
        prog="importance-sampling-report",
        description="Rank the samples of DATA.npz by the loss of the saved model "
                    "MODEL.keras and print the hardest and easiest samples and the "
                    "labels of every loss decile.",
    )
    parser.add_argument("model", metavar="MODEL.keras", help="a model saved by `model.save`")
    parser.add_argument("data", metavar="DATA.npz",
                        help="a NumPy .npz file with the arrays `x` and `y` (and "
                             "optionally `class_names`)")
    parser.add_argument("--top", type=int, default=20,
                        help="hardest and easiest samples listed (default: 20)")
    parser.add_argument("--bins", choices=("quantile", "range"), default="quantile",
                        help="ten bins of equal counts (deciles of the ranking, the "
                             "default) or of equal widths of the loss range")
    parser.add_argument("--batch-size", type=int, default=128,
                        help="samples per forward pass (default: 128)")
    parser.add_argument("--loss", metavar="NAME",
                        help="compile the model with this loss first (for a model "
                             "saved without its compilation)")
    parser.add_argument("--plot", metavar="PNG", help="save the report's figure")
    parser.add_argument("--json", metavar="FILE", help="save the report as JSON")
    return parser


def _load(args, parser):
    import keras
    import numpy as np

    try:
        with np.load(args.data, allow_pickle=False) as data:
            missing = {"x", "y"} - set(data.files)
            if missing:
                parser.error(f"{args.data} has no array {' nor '.join(sorted(missing))}; "
                             f"it holds {', '.join(data.files) or 'nothing'}")
            x, y = data["x"], data["y"]
            names = data["class_names"].tolist() if "class_names" in data.files else None
    except (OSError, ValueError) as error:
        parser.error(f"cannot read {args.data}: {error}")
    try:
        model = keras.saving.load_model(args.model)
    except (OSError, ValueError) as error:
        parser.error(f"cannot load {args.model}: {error}")
    if args.loss:
        model.compile(optimizer=model.optimizer or "sgd", loss=args.loss)
    elif not getattr(model, "compiled", False) or getattr(model, "loss", None) is None:
        parser.error(f"{args.model} was saved without a compiled loss; pass --loss NAME")
    return model, x, y, names


def run(argv=None):
    """Run the command on `argv` (`sys.argv[1:]` by default); returns the `LossReport`."""
    parser = make_parser()
    args = parser.parse_args(argv)
    for name in ("top", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    model, x, y, names = _load(args, parser)

    from importance_sampling.ranking import loss_report, plot_loss_report

    report = loss_report(model, x, y, class_names=names, top=args.top, bins=args.bins,
                         batch_size=args.batch_size)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report.to_dict(), file, indent=1)
        print(f"Saved the report to {args.json}")
    if args.plot:
        plot_loss_report(report, args.plot)
        print(f"Saved the figure to {args.plot}")
    return report


def main(argv=None):
    """The console command: exit status 0 after printing the report."""
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
