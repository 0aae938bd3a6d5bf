"""Tracking sequences in memory, and the common single-object-tracking folder layout.

Layout (GOT-10k; LaSOT puts the frames in an ``img/`` subfolder, also accepted)::

    ROOT/<any/depth>/<sequence>/groundtruth.txt    one "x,y,w,h" line per frame
    ROOT/<any/depth>/<sequence>/[img/]00000001.jpg  frames, numbered from 1 (or 0)

Separators may be commas, tabs or spaces. Every sequence is checked when it is read,
before training: a missing frame, a malformed line, a ``groundtruth.txt`` shorter
than the frame list, a box of non-positive size or a box that does not overlap its
frame raise a ``ValueError`` naming the file and the line. Boxes may extend past the
frame edge (objects leaving the view) but must overlap the frame.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
GROUNDTRUTH = "groundtruth.txt"


class Sequence:
    """``boxes``: float32 ``[T, 4]`` ``xywh``; frames either in memory (``frames``:
    uint8 ``[T, H, W, 3]``) or as image files (``paths``, decoded on demand)."""

    def __init__(self, name: str, boxes: np.ndarray, *, frames: np.ndarray | None = None,
                 paths: list[Path] | None = None):
        if (frames is None) == (paths is None):
            raise ValueError("give exactly one of frames and paths")
        self.name, self.boxes = name, np.asarray(boxes, np.float32)
        self.frames, self.paths = frames, paths

    def __len__(self) -> int:
        return len(self.boxes)

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as uint8 ``[H, W, 3]``."""
        if self.frames is not None:
            return self.frames[t]
        from PIL import Image

        with Image.open(self.paths[t]) as im:
            return np.asarray(im.convert("RGB"))


def write_sequence(seq: Sequence, folder: str | Path, ext: str = ".png") -> Path:
    """Write ``seq`` as ``folder/00000001<ext>, ...`` plus ``groundtruth.txt``."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(len(seq)):
        Image.fromarray(seq.frame(t)).save(folder / f"{t + 1:08d}{ext}")
    lines = [",".join(f"{v:g}" for v in box) for box in seq.boxes]
    (folder / GROUNDTRUTH).write_text("\n".join(lines) + "\n")
    return folder


def find_sequences(root: str | Path) -> list[Path]:
    """Every folder under ``root`` (``root`` included) holding a ``groundtruth.txt``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data.root={str(root)!r} is not a directory")
    found = sorted(p.parent for p in root.rglob(GROUNDTRUTH))
    if not found:
        raise ValueError(f"data.root={str(root)!r}: no sequence folder (one holding {GROUNDTRUTH}) found")
    return found


def read_sequences(root: str | Path) -> list[Sequence]:
    return [read_sequence(p) for p in find_sequences(root)]


def read_sequence(folder: str | Path) -> Sequence:
    """Read and check one sequence folder (frames stay on disk)."""
    folder = Path(folder)
    gt_path = folder / GROUNDTRUTH
    boxes = parse_groundtruth(gt_path)
    img_dir = folder / "img" if (folder / "img").is_dir() else folder
    paths = _frame_paths(img_dir, gt_path, len(boxes))
    from PIL import Image

    for i, (box, path) in enumerate(zip(boxes, paths, strict=True), 1):
        with Image.open(path) as im:
            width, height = im.size
        x, y, w, h = box
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise ValueError(f"{gt_path} line {i}: box x,y,w,h = {x:g},{y:g},{w:g},{h:g} lies outside "
                             f"the {width}x{height} frame {path.name}")
    return Sequence(folder.name, boxes, paths=paths)


def parse_groundtruth(path: Path) -> np.ndarray:
    """``[T, 4]`` boxes; a line must hold four finite numbers with ``w, h > 0``."""
    if not path.is_file():
        raise ValueError(f"{path}: missing (every sequence folder needs a {GROUNDTRUTH})")
    lines = path.read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{path}: empty")
    boxes = np.empty((len(lines), 4), np.float32)
    for i, line in enumerate(lines, 1):
        parts = [p for p in re.split(r"[,\s]+", line.strip()) if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise ValueError(f"{path} line {i}: expected four numbers x,y,w,h, got {line.strip()!r}")
        if values[2] <= 0 or values[3] <= 0:
            raise ValueError(f"{path} line {i}: width and height must be > 0, got {line.strip()!r}")
        boxes[i - 1] = values
    return boxes


def _frame_paths(img_dir: Path, gt_path: Path, n_boxes: int) -> list[Path]:
    """The frame of every groundtruth line. Numbered frames must run without gaps
    from 1 (or 0); a frame without a line or a line without a frame is an error."""
    files = [p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS]
    if not files:
        raise ValueError(f"{img_dir}: no frames ({'/'.join(IMAGE_EXTS)} files) for {gt_path}")
    if all(p.stem.isdigit() for p in files):
        by_number = {int(p.stem): p for p in files}
        start = 0 if 0 in by_number else 1
        digits, ext = len(files[0].stem), files[0].suffix
        for i in range(1, n_boxes + 1):
            if start + i - 1 not in by_number:
                raise ValueError(f"{img_dir / f'{start + i - 1:0{digits}d}{ext}'}: missing frame "
                                 f"(the frame of {gt_path} line {i})")
        files = [by_number[k] for k in sorted(by_number)]
    else:
        files.sort()
    if len(files) > n_boxes:
        raise ValueError(f"{gt_path}: {n_boxes} lines for {len(files)} frames; line {n_boxes + 1} "
                         f"(the box of {files[n_boxes].name}) is missing")
    if len(files) < n_boxes:
        raise ValueError(f"{gt_path} line {len(files) + 1}: no frame for this line ({img_dir} has "
                         f"{len(files)} frames)")
    return files
