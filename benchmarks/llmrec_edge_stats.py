"""What the LLM's BPR triples are made of: where its liked and disliked picks sit in the base model's
candidate list, and how often each is one of the user's held-out (validation or test) items.

A triple helps only if the LLM tells the user's future items from the others better than the base
recommender's own order does. This reads the augmentation (``.lrcand``, ``.lredge``) and RecBole's split
as the augmentor wrote it (``.llmrec_valid.inter``, ``.llmrec_test.inter``) and prints, per candidate rank,
the share of users whose candidate at that rank is held out, and the ranks the LLM picked:

    python benchmarks/llmrec_edge_stats.py --data_dir ../runs/lr100k/data --dataset ml-100k \\
        --out benchmarks/results/llmrec_edges.md

Nothing here is trained or called: it is a reading of files the benchmark already has.
"""

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recbole_llmaug.augment.atomic import read_atomic, read_token_lists  # noqa: E402


def read_rows(path, columns: int):
    """The first ``columns`` fields of each row of an atomic file, as tuples."""
    table = read_atomic(Path(path))
    return list(zip(*(table.frame[name] for name in list(table.types)[:columns])))


def edge_stats(folder: Path, dataset: str) -> dict:
    """Per candidate rank: the held-out share, and how many liked / disliked picks the LLM made there."""
    held = {pair for name in ("llmrec_valid", "llmrec_test") for pair in read_rows(folder / f"{dataset}.{name}.inter", 2)}
    candidates = read_token_lists(folder / f"{dataset}.lrcand")
    size = max(len(items) for items in candidates.values())
    held_at = [sum((user, items[rank]) in held for user, items in candidates.items() if rank < len(items))
               for rank in range(size)]
    triples = read_rows(folder / f"{dataset}.lredge", 3)
    liked = collections.Counter(candidates[user].index(pos) for user, pos, _ in triples)
    disliked = collections.Counter(candidates[user].index(neg) for user, _, neg in triples)
    return {"users": len(candidates), "triples": len(triples), "held_at": held_at, "liked": liked,
            "disliked": disliked,
            "held_liked": sum((user, pos) in held for user, pos, _ in triples),
            "held_disliked": sum((user, neg) in held for user, _, neg in triples),
            # what the liked picks' held-out count would be if only their ranks mattered
            "held_liked_if_by_rank": sum(count * held_at[rank] / len(candidates) for rank, count in liked.items())}


def markdown(stats: dict, command: str) -> str:
    users, triples = stats["users"], stats["triples"]
    lines = ["# What the LLM's BPR triples are made of\n", f"Command: `{command}`\n",
             f"{users} users, {triples} triples (users with a valid answer).\n",
             "| candidate rank | held-out share (all users) | picked as liked | picked as disliked |",
             "|---|---|---|---|"]
    for rank, held in enumerate(stats["held_at"]):
        lines.append(f"| {rank + 1} | {held / users:.3f} | {stats['liked'][rank]} | {stats['disliked'][rank]} |")
    lines += ["", f"- liked picks that are held-out items: {stats['held_liked']} / {triples} "
                  f"= {stats['held_liked'] / triples:.3f}",
              f"- disliked picks that are held-out items: {stats['held_disliked']} / {triples} "
              f"= {stats['held_disliked'] / triples:.3f}",
              f"- liked picks expected to be held out from their ranks alone: "
              f"{stats['held_liked_if_by_rank'] / triples:.3f}", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="the --augment_path of the LLMRec augmentation")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    folder = Path(args.data_dir) / args.dataset
    needed = [folder / f"{args.dataset}.{suffix}" for suffix in
              ("lrcand", "lredge", "llmrec_valid.inter", "llmrec_test.inter")]
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise SystemExit(f"error: missing {', '.join(missing)}: run --augment=llmrec with --augment_path="
                         f"{args.data_dir} first")
    text = markdown(edge_stats(folder, args.dataset), " ".join(["python benchmarks/llmrec_edge_stats.py", *argv]))
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
