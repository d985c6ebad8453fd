"""Find faces in any photo and frame them the way the face models were trained.

The face models (``moustache-hkr``, ``eyeglasses-hkr``) were trained on
CelebA's aligned crops: eyes level at a fixed height, face centred. A photo
goes through MediaPipe's face detector, face mesh and iris models
(:mod:`lipnet.faces.mediapipe`); four landmarks (iris centres and mouth
corners) fix a similarity transform to the training framing
(:mod:`lipnet.faces.framing`); the crop is taken through it, and a changed
crop goes back onto the photo through its inverse (:func:`paste_back`).

    face = detect_faces(photo)[0]          # the largest face
    crop = align(photo, face, 64)          # = align_face(photo, 64)
    photo2 = paste_back(photo, changed_crop, face)

No Streamlit here; nothing is downloaded (the model files are in
``assets/faces``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from ..data.images import MAX_PIXELS, _normalise_mode
from . import mediapipe as mp
from .framing import POINTS, Framing, compose, invert, load, similarity

__all__ = [
    "MAX_FACES",
    "Face",
    "FaceModelError",
    "Framing",
    "align",
    "align_face",
    "compose",
    "crop_to_photo",
    "detect_faces",
    "find_landmarks",
    "invert",
    "paste_back",
    "photo_to_crop",
    "similarity",
]

FaceModelError = mp.FaceModelError
MAX_FACES = 64  # faces beyond this many (the smallest) are not returned
MIN_SIZE, MAX_SIZE = 8, 1024  # crop sides accepted by align()


@dataclass(frozen=True, eq=False)
class Face:
    """One face in a photo (pixel coordinates, PIL's convention).

    Attributes:
        box: (x0, y0, x1, y1) of the detector's box.
        score: the detector's confidence in [0, 1].
        landmarks: named points: ``eye_left`` and ``eye_right`` (iris
            centres of the eyes on the image's left and right),
            ``mouth_left``, ``mouth_right``, ``nose_tip``.
        transform: 2x3 map from unit crop coordinates ((0, 0) top-left,
            (1, 1) bottom-right of the training framing) to the photo.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: dict[str, tuple[float, float]]
    transform: np.ndarray = field(repr=False)

    @property
    def size(self) -> float:
        """Side of the face's training-framing crop, in photo pixels."""
        return float(np.sqrt(abs(np.linalg.det(self.transform[:, :2]))))

    @property
    def angle(self) -> float:
        """Rotation of the face in the photo, degrees (clockwise positive)."""
        return float(np.degrees(np.arctan2(self.transform[1, 0], self.transform[0, 0])))

    def corners(self) -> np.ndarray:
        """The crop's four corners in the photo (4, 2), clockwise from top-left."""
        unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
        return mp.apply(self.transform, unit)


def _rgb(image: object) -> Image.Image:
    """Check a photo and bring it to RGB (alpha over white, 16-bit scaled)."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL.Image.Image, got {type(image).__name__}")
    w, h = image.size
    if w < 1 or h < 1:
        raise ValueError(f"image has an empty size {w}x{h}")
    if w * h > MAX_PIXELS:
        raise ValueError(
            f"image is too large: {w}x{h}, the limit is {MAX_PIXELS / 1e6:g} megapixels"
        )
    out = _normalise_mode(image)
    return out if out.mode == "RGB" else out.convert("RGB")


def _check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"size must be an int, got {type(size).__name__}")
    if not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise ValueError(f"size must be in {MIN_SIZE}..{MAX_SIZE}, got {size}")
    return int(size)


def find_landmarks(
    image: Image.Image, max_faces: int = MAX_FACES
) -> list[tuple[mp.Detection, np.ndarray, np.ndarray]]:
    """The raw landmarks of the largest faces: (detection, the four framing
    points (4, 2) in :data:`~lipnet.faces.framing.POINTS` order, the 468 mesh
    points), for faces the mesh model confirms. Used to fit the framing."""
    rgb = _rgb(image)
    dets = sorted(mp.detect(rgb), key=lambda d: -float(np.prod(d.box[2:] - d.box[:2])))
    out = []
    for det in dets[: max(0, int(max_faces))]:
        marks, presence = mp.mesh(rgb, det)
        if presence < mp.MIN_PRESENCE:
            continue
        eyes = [mp.iris_centre(rgb, marks, c) for c in (mp.LEFT_EYE, mp.RIGHT_EYE)]
        out.append(
            (det, np.stack([*eyes, marks[mp.MOUTH[0]], marks[mp.MOUTH[1]]]), marks)
        )
    return out


def detect_faces(
    image: Image.Image, max_faces: int = MAX_FACES, framing: Framing | None = None
) -> list[Face]:
    """All faces in a photo, largest first, each with its training framing.

    Args:
        image: any PIL image (any mode; alpha is composited over white).
        max_faces: at most this many faces (the largest) are returned.
        framing: the target framing (default: the face models',
            ``assets/faces/framing.json``).

    Returns:
        A list of :class:`Face`, empty when there is none (a dog, a drawing,
        a landscape, faces of a few pixels). A face cut by the border is kept
        when the models still find its landmarks; its crop is then partly
        outside the photo (filled with black).

    Raises:
        TypeError, ValueError: not an image, an empty or oversized image.
        FaceModelError: the face models or their runtime are missing.
    """
    framing = framing if framing is not None else load()
    faces = []
    for det, pts, marks in find_landmarks(image, max_faces):
        try:
            transform = framing.crop_to_photo(pts)
        except ValueError:  # degenerate landmarks: not a usable face
            continue
        landmarks = {
            n: (float(x), float(y)) for n, (x, y) in zip(POINTS, pts, strict=True)
        }
        landmarks["nose_tip"] = (
            float(marks[mp.NOSE_TIP][0]),
            float(marks[mp.NOSE_TIP][1]),
        )
        box = (
            float(det.box[0]),
            float(det.box[1]),
            float(det.box[2]),
            float(det.box[3]),
        )
        faces.append(Face(box, det.score, landmarks, transform))
    faces.sort(key=lambda f: -f.size)
    return faces


def crop_to_photo(face: Face, size: int) -> np.ndarray:
    """2x3 map from pixel coordinates of a ``size`` crop to the photo."""
    return compose(face.transform, np.array([[1 / size, 0, 0], [0, 1 / size, 0]]))


def photo_to_crop(face: Face, size: int) -> np.ndarray:
    """2x3 map from the photo to pixel coordinates of a ``size`` crop."""
    return invert(crop_to_photo(face, size))


def align(image: Image.Image, face: Face, size: int = 64) -> Image.Image:
    """The face's crop in the training framing, ``size`` x ``size`` RGB.

    Sampled bicubically at up to 4x and area-averaged (the training crops
    were resized with an area filter; a face over 4x larger than the crop is
    area-reduced first), so a large face is not aliased.

    Args:
        image: the photo the face was found in.
        face: one of :func:`detect_faces`'s faces.
        size: the crop's side (the face model's input size), 8 to 1024.

    Returns:
        A square RGB image; parts outside the photo are black.
    """
    rgb, size = _rgb(image), _check_size(size)
    k = int(np.clip(np.ceil(face.size / size), 1, 4))
    r = max(1, int(face.size // (size * 4)))  # a face far larger: reduce first
    src = rgb.reduce(r) if r > 1 else rgb
    m = crop_to_photo(face, size * k) / r
    out = src.transform(
        (size * k, size * k), Image.Transform.AFFINE, tuple(m.ravel()), Image.BICUBIC
    )
    return out.reduce(k) if k > 1 else out


def align_face(image: Image.Image, size: int = 64) -> Image.Image | None:
    """The largest face of a photo in the face models' training framing.

    Args:
        image: any PIL image.
        size: the side of the square crop (the model's input size).

    Returns:
        A ``size`` x ``size`` RGB image, or None when no face is found.
    """
    size = _check_size(size)
    faces = detect_faces(image, max_faces=MAX_FACES)
    return align(image, faces[0], size) if faces else None


def paste_back(photo: Image.Image, changed: Image.Image, face: Face) -> Image.Image:
    """Put a changed crop back onto the photo through the inverse transform.

    Only the change (``changed`` minus the face's own crop at the same size)
    is carried over, interpolated bilinearly, so the photo keeps its own
    resolution; pixels outside the crop's square in the photo are unchanged,
    bit for bit.

    Args:
        photo: the photo the face was found in.
        changed: the edited crop (square, the size it was aligned at).
        face: the face it came from.

    Returns:
        A new RGB image of the photo's size.
    """
    rgb = _rgb(photo)
    if not isinstance(changed, Image.Image):
        raise TypeError(
            f"changed must be a PIL.Image.Image, got {type(changed).__name__}"
        )
    if changed.width != changed.height:
        raise ValueError(
            f"changed crop must be square, got {changed.width}x{changed.height}"
        )
    size = _check_size(changed.width)
    delta = np.asarray(_rgb(changed), np.float32) - np.asarray(
        align(rgb, face, size), np.float32
    )
    corners = face.corners()
    x0, y0 = np.floor(corners.min(0)).astype(int).clip(0, [rgb.width, rgb.height])
    x1, y1 = np.ceil(corners.max(0)).astype(int).clip(0, [rgb.width, rgb.height])
    if x1 <= x0 or y1 <= y0 or not delta.any():
        return rgb.copy()
    box = (int(x0), int(y0), int(x1), int(y1))
    region = (x1 - x0, y1 - y0)
    m = tuple(
        compose(
            photo_to_crop(face, size), np.array([[1, 0, x0], [0, 1, y0]], float)
        ).ravel()
    )
    planes = [
        np.asarray(
            Image.fromarray(delta[:, :, c]).transform(
                region, Image.Transform.AFFINE, m, Image.BILINEAR
            )
        )
        for c in range(3)
    ]
    mask = Image.new("L", region, 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in corners - [x0, y0]], fill=255)
    inside = np.asarray(mask) > 0
    patch = np.asarray(rgb.crop(box), np.float32)
    new = np.where(inside[:, :, None], patch + np.stack(planes, -1), patch)
    out = rgb.copy()
    out.paste(Image.fromarray(np.clip(np.rint(new), 0, 255).astype(np.uint8)), box[:2])
    return out
