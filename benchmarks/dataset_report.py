"""What a D4RL-style dataset holds: episodes, lengths, returns along the recording, and the share of near-random
episodes; for reading a row of the score table (why behaviour cloning fails on a dataset, for example).

    python benchmarks/dataset_report.py --datasets halfcheetah-medium-replay hopper-medium-replay --out report.md

Needs the datasets of ``sb3-generative-data d4rl-style`` under ``MINARI_DATASETS_PATH``.
"""

import argparse
import json

import numpy as np

from sb3_generative.common.datasets import load_offline_data, normalized_score


def describe(dataset: str, parts: int = 10, low: float = 10.0) -> dict:  # type: ignore[type-arg]
    """A dataset's episodes and their normalised returns, overall and in ``parts`` consecutive slices of the recording.

    :param dataset: e.g. "halfcheetah-medium-replay"
    :param parts: slices of the recording (in the order it was recorded: for medium-replay, training time)
    :param low: the normalised return below which an episode counts as near-random
    :return: the figures, as plain JSON
    """
    task, level = dataset.split("-", 1)
    data = load_offline_data(f"d4rl-style/{task}/{level}-v0")
    scores = normalized_score(data.episode_returns(), data)
    lengths = np.diff(np.concatenate([[-1], data.episode_ends]))
    slices = np.array_split(np.arange(len(scores)), parts)
    return {
        "dataset": dataset,
        "transitions": len(data),
        "episodes": len(scores),
        "episode_length_median": float(np.median(lengths)),
        "full_length_share": float(np.mean(lengths >= 1000)),
        "score_mean": float(scores.mean()),
        "score_quantiles_10_50_90": [float(q) for q in np.quantile(scores, [0.1, 0.5, 0.9])],
        f"share_below_{low:g}": float(np.mean(scores < low)),
        f"transition_share_below_{low:g}": float(lengths[scores < low].sum() / lengths.sum()),
        "score_mean_per_slice": [float(scores[s].mean()) for s in slices if len(s)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", required=True)
    parser.add_argument("--parts", type=int, default=10, help="slices of the recording")
    parser.add_argument("--low", type=float, default=10.0, help="normalised return of a near-random episode")
    parser.add_argument("--out", default=None, help="also write the figures as JSON")
    args = parser.parse_args()
    reports = [describe(d, args.parts, args.low) for d in args.datasets]
    for report in reports:
        print(json.dumps(report))
    if args.out:
        with open(args.out, "w") as file:
            json.dump(reports, file, indent=1)


if __name__ == "__main__":
    main()
