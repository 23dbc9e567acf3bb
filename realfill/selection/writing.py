"""Score and rank candidates, write them and say where they are: the selection stage shared
by the end-of-fit callback, the sample command and the baselines."""

import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from realfill import layout
from realfill.data import Scene
from realfill.io import save_image, save_images, staged_directory, write_json
from realfill.selection.contact_sheet import contact_sheet, stacked
from realfill.selection.matchers import Matcher
from realfill.selection.ranking import correspondence_scores, rank


@dataclass
class RankedCandidate:
    """One candidate's record in scores.json."""

    seed: int
    score: int
    rank: int
    file: str

    @property
    def caption(self) -> str:
        """How the candidate is captioned on the contact sheet and in W&B."""
        return ranked_caption(self.rank, self.seed, self.score)


@dataclass
class Selection:
    """A selection as written: its folder and every candidate's record, best first."""

    out_dir: Path
    """The folder holding candidates/, ranked/, scores.json and the contact sheet."""
    candidates: list[RankedCandidate]
    """Every candidate, best first (as in scores.json)."""
    keep: int
    """How many of the best are in ranked/."""

    @property
    def best(self) -> RankedCandidate:
        """The top-ranked candidate."""
        return self.candidates[0]

    @property
    def ranked(self) -> list[RankedCandidate]:
        """The candidates kept in ranked/, best first."""
        return self.candidates[: self.keep]

    def path(self, candidate: RankedCandidate) -> Path:
        """Where a candidate's image is."""
        return self.out_dir / candidate.file


def matches_text(score: int) -> str:
    """A correspondence score in words: "1 match", "12 matches"."""
    return f"{score} match" if score == 1 else f"{score} matches"


def ranked_caption(rank: int, seed: int, score: int) -> str:
    """The caption of a ranked candidate: "#rank seed S: N matches"."""
    return f"#{rank} seed {seed}: {matches_text(score)}"


def rank_share(seeds: Sequence[int], rank: int, world_size: int) -> list[int]:
    """The seeds process `rank` of `world_size` draws: every seed exactly once over all of
    them, some processes left with none when there are fewer seeds than processes."""
    return list(seeds[rank::world_size])


def score_candidates(
    candidates: Sequence[Image.Image],
    scene: Scene,
    matcher: Matcher,
    margin: int,
    progress: bool = True,
) -> list[int]:
    """Correspondence score of each composited candidate against the scene's references."""
    return correspondence_scores(
        candidates, scene.mask, scene.references, matcher, margin, progress
    )


MISSING_COLOUR = (255, 0, 255)
"""The target's missing region on the contact sheet: a colour no photo is mistaken for."""


def scene_row(scene: Scene) -> Image.Image:
    """The contact sheet's first row: the target, its missing region in `MISSING_COLOUR`,
    and the references, captioned, for judging each candidate against what the scene shows."""
    hole = Image.new("RGB", scene.target.size, MISSING_COLOUR)
    target = Image.composite(hole, scene.target.convert("RGB"), scene.mask)
    captions = ["target"] + [f"reference {i + 1}" for i in range(len(scene.references))]
    images = [target, *scene.references]
    return contact_sheet(images, captions, columns=len(images))


def write_selection(
    out_dir: Path,
    candidates: Sequence[Image.Image | Path],
    seeds: Sequence[int],
    scores: Sequence[int],
    keep: int,
    scene: Scene | None = None,
) -> Selection:
    """Write candidates/, ranked/ (the top `keep`), scores.json and a ranked contact sheet
    (headed by the scene's target and references when given), replacing `out_dir` as a whole
    only once everything is written. A candidate is an image, or the PNG file it is already
    written to (copied, not encoded again). Returns what it wrote."""
    order = rank(scores)
    records = [
        RankedCandidate(seeds[i], int(scores[i]), position + 1, layout.candidate_file(seeds[i]))
        for position, i in enumerate(order)
    ]
    with staged_directory(out_dir, layout.SELECTION_PATTERNS) as staging:
        (staging / layout.CANDIDATES_DIRNAME).mkdir()
        (staging / layout.RANKED_DIRNAME).mkdir()
        files = [staging / layout.candidate_file(s) for s in seeds]
        pairs = list(zip(candidates, files, strict=True))
        images = [(c, f) for c, f in pairs if isinstance(c, Image.Image)]
        save_images([c for c, _ in images], [f for _, f in images])
        for candidate, file in pairs:
            if isinstance(candidate, Path):
                shutil.copyfile(candidate, file)
        for record in records[:keep]:
            ranked = staging / layout.ranked_file(record.rank, record.seed)
            shutil.copyfile(staging / record.file, ranked)
        write_json([asdict(record) for record in records], staging / layout.SCORES_FILENAME)
        shown = [candidates[i] for i in order]
        tiles = [Image.open(c) if isinstance(c, Path) else c for c in shown]
        kept = range(min(keep, len(records)))  # framed: the candidates copied to ranked/
        sheet = contact_sheet(tiles, [r.caption for r in records], highlighted=kept)
        if scene is not None:
            sheet = stacked([scene_row(scene), sheet])
        save_image(sheet, staging / layout.CONTACT_SHEET_FILENAME)
    return Selection(Path(out_dir), records, min(keep, len(records)))


def report_selection(
    selection: Selection,
    seconds: float,
    stages: dict[str, float] | None = None,
) -> None:
    """Say how fast the candidates came (by stage, when given), where they and the best
    one are, and when no candidate matched at all, so that the order means nothing."""
    out, records, best = selection.out_dir, selection.candidates, selection.best
    rate = 60 * len(records) / max(seconds, 1e-9)
    split = ", ".join(f"{name.replace('_', ' ')} {t:.1f} s" for name, t in (stages or {}).items())
    count = f"{len(records)} candidate" + ("s" if len(records) != 1 else "")
    print(
        f"Sampled and ranked {count} in {seconds:.1f} s ({rate:.1f}/min)"
        + (f": {split}" if split else "")
    )
    print(f"Completions: {out} ({count}, top {selection.keep} in ranked/)")
    print(f"Best completion: {out / best.file} (seed {best.seed}, {matches_text(best.score)})")
    if best.score == 0:
        print(
            "No candidate's fill matched the references, so ranked/ holds the lowest seeds, "
            "not a selection (match_margin also counts matches on the hole's rim)"
        )
