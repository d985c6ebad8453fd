"""lipnet.faces: detection, alignment to the training framing, paste back."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image, ImageDraw

from lipnet import data as D
from lipnet import faces
from lipnet.data.images import grace_hopper
from lipnet.faces import framing


@pytest.fixture(scope="module")
def hopper() -> Image.Image:
    return grace_hopper().convert("RGB")


@pytest.fixture(scope="module")
def hopper_face(hopper: Image.Image) -> faces.Face:
    found = faces.detect_faces(hopper)
    assert len(found) == 1
    return found[0]


def place(
    photo: Image.Image,
    scale: float,
    angle: float,
    shift: tuple[float, float],
    side: int,
) -> tuple[Image.Image, np.ndarray]:
    """``photo`` drawn on a ``side`` canvas (noisy grey) through a known
    similarity; returns the canvas and the 2x3 map photo -> canvas."""
    t = math.radians(angle)
    lin = scale * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    centre = np.array([side / 2 + shift[0], side / 2 + shift[1]])
    off = centre - lin @ (np.array(photo.size) / 2)
    fwd = np.hstack([lin, off[:, None]])
    inv = faces.invert(fwd)
    rng = np.random.default_rng(0)
    bg = Image.fromarray(rng.integers(90, 170, (side, side, 3), dtype=np.uint8))
    rgba = photo.convert("RGBA")
    warped = rgba.transform(
        (side, side), Image.Transform.AFFINE, tuple(inv.ravel()), Image.BICUBIC
    )
    bg.paste(warped, (0, 0), warped)
    return bg, fwd


def grid_error(a: np.ndarray, b: np.ndarray, size: int = 64) -> float:
    """Mean distance, in crop pixels, between where two crop->photo maps
    send the crop's pixel centres (measured in b's pixels)."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    pts = np.stack([xs.ravel(), ys.ravel()], 1)
    scale = math.sqrt(abs(np.linalg.det(b[:, :2])))
    return float(
        np.linalg.norm(
            pts @ a[:, :2].T - pts @ b[:, :2].T + a[:, 2] - b[:, 2], axis=1
        ).mean()
        / scale
    )


def test_grace_hopper(hopper: Image.Image, hopper_face: faces.Face) -> None:
    f = hopper_face
    lm = f.landmarks
    assert lm["eye_left"][0] < lm["eye_right"][0]
    assert max(lm["eye_left"][1], lm["eye_right"][1]) < lm["nose_tip"][1]
    assert lm["nose_tip"][1] < min(lm["mouth_left"][1], lm["mouth_right"][1])
    x0, y0, x1, y1 = f.box
    assert x0 < lm["nose_tip"][0] < x1 and y0 < lm["nose_tip"][1] < y1
    assert 0.9 < f.score <= 1 and 250 < f.size < 500 and abs(f.angle) < 10
    crop = faces.align_face(hopper)
    assert crop is not None and crop.size == (64, 64) and crop.mode == "RGB"
    big = faces.align_face(hopper, size=128)
    assert big is not None and big.size == (128, 128)
    # the same face as align(): the largest one
    assert np.array_equal(np.asarray(crop), np.asarray(faces.align(hopper, f, 64)))
    # eyes land where the framing puts them (the template, in 64 px)
    eyes = np.array([lm["eye_left"], lm["eye_right"]])
    in_crop = (
        eyes @ faces.photo_to_crop(f, 64)[:, :2].T + faces.photo_to_crop(f, 64)[:, 2]
    )
    template = framing.load().template[:2] * 64
    assert np.abs(in_crop - template).max() < 2.5


@pytest.mark.parametrize(
    "scale, angle, shift",
    [(0.5, 15.0, (0, 0)), (1.3, -18.0, (40, -30)), (0.8, 5.0, (-120, 90))],
)
def test_known_transform(
    hopper: Image.Image,
    hopper_face: faces.Face,
    scale: float,
    angle: float,
    shift: tuple[float, float],
) -> None:
    """Moving the photo by a known similarity moves the face's framing with
    it: the realigned crop is the original one."""
    canvas, fwd = place(hopper, scale, angle, shift, 900)
    found = faces.detect_faces(canvas)
    assert len(found) == 1
    expected = faces.compose(fwd, faces.crop_to_photo(hopper_face, 64))
    assert grid_error(faces.crop_to_photo(found[0], 64), expected) < 1.5
    assert abs(found[0].angle - hopper_face.angle - angle) < 3
    a = np.asarray(faces.align(canvas, found[0], 64), float) / 255
    b = np.asarray(faces.align(hopper, hopper_face, 64), float) / 255
    inner = slice(8, 56)  # the photo's own pixels (its corners: the canvas)
    assert np.abs(a - b)[inner, inner].mean() < 0.04


def test_large_photo(hopper: Image.Image, hopper_face: faces.Face) -> None:
    """A 4x larger photo (2048 x 2400) gives the same crop, not aliased."""
    big = hopper.resize((2048, 2400), Image.Resampling.LANCZOS)
    found = faces.detect_faces(big)
    assert len(found) == 1
    expected = faces.compose(
        np.diag([4.0, 4.0, 1.0])[:2], faces.crop_to_photo(hopper_face, 64)
    )
    assert grid_error(faces.crop_to_photo(found[0], 64), expected) < 1.0
    a = np.asarray(faces.align(big, found[0], 64), float) / 255
    b = np.asarray(faces.align(hopper, hopper_face, 64), float) / 255
    assert np.abs(a - b)[8:56, 8:56].mean() < 0.03


def test_celeba_test_faces_realigned() -> None:
    """Held-out CelebA crops moved on a canvas come back near their framing."""
    from lipnet import zoo
    from lipnet.data.celeba import _decode_square, _example_names

    spec = zoo.read_spec(zoo.models_dir() / "moustache-hkr")
    config = spec["card"]["training"]["config"]
    paths, _, _ = _example_names(
        D.data_dir() / "celeba",
        "Mustache",
        0,
        "test",
        6,
        (0.7, 0.15, 0.15),
        config["image_folders"],
    )
    errors, diffs = [], []
    for k, path in enumerate(paths):
        face128 = Image.fromarray(_decode_square(path, 128))
        original = np.asarray(_decode_square(path, 64), float) / 255
        canvas, fwd = place(
            face128, 0.7 + 0.15 * k, 12.0 - 5 * k, (10.0 * k, -8.0), 400
        )
        found = faces.detect_faces(canvas)
        assert found, path.name
        truth = faces.compose(fwd, np.diag([2.0, 2.0, 1.0])[:2])  # 64 px crop -> canvas
        errors.append(grid_error(faces.crop_to_photo(found[0], 64), truth))
        crop = np.asarray(faces.align(canvas, found[0], 64), float) / 255
        diffs.append(np.abs(crop - original).mean())
    assert np.mean(errors) < 2.5 and np.mean(diffs) < 0.09


def _faceless_images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(1)
    out = {
        "grey": Image.new("RGB", (300, 200), (128, 128, 128)),
        "noise": Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)),
        "logo": Image.open(cbook.get_sample_data("Minduka_Present_Blue_Pack.png")),
        "digit": D.rendered_digit(8).resize((200, 200)),
        "one pixel": Image.new("RGB", (1, 1), (10, 20, 30)),
    }
    return out


@pytest.mark.parametrize("name", list(_faceless_images()))
def test_no_face(name: str) -> None:
    image = _faceless_images()[name]
    assert faces.detect_faces(image) == []
    assert faces.align_face(image) is None


def test_many_faces(hopper: Image.Image, hopper_face: faces.Face) -> None:
    """A group photo: 30 faces of different sizes, each found once, largest first."""
    head = hopper.crop((120, 80, 420, 420))
    photo = Image.new("RGB", (1200, 900), (200, 200, 200))
    tiles = []
    for k in range(30):
        r, c = divmod(k, 6)
        side = 110 + (k % 4) * 20
        x, y = c * 200 + (200 - side) // 2, r * 180 + (180 - side) // 2
        photo.paste(
            head.resize((side, side * 34 // 30)).crop((0, 0, side, side)), (x, y)
        )
        tiles.append((c * 200, r * 180))
    found = faces.detect_faces(photo)
    assert len(found) >= 27
    sizes = [f.size for f in found]
    assert sizes == sorted(sizes, reverse=True)
    cells = {
        (int(f.landmarks["nose_tip"][0] // 200), int(f.landmarks["nose_tip"][1] // 180))
        for f in found
    }
    assert len(cells) == len(found)  # one face per tile, never twice
    assert len(faces.detect_faces(photo, max_faces=5)) == 5
    assert faces.align_face(photo) is not None


def test_tiny_and_cut_faces(hopper: Image.Image) -> None:
    # a face of about 20 pixels in a large photo: no face, no traceback
    photo = Image.new("RGB", (1200, 900), (200, 200, 200))
    photo.paste(hopper.resize((51, 60)), (500, 400))
    assert faces.detect_faces(photo) == []
    # the same face alone (about 20 pixels across): found and scaled up
    small = hopper.resize((51, 60))
    found = faces.detect_faces(small)
    assert isinstance(found, list)
    crop = faces.align_face(small)
    assert crop is None or crop.size == (64, 64)
    # a face cut by the border: a list; its crop is black where the photo ends
    cut = hopper.crop((240, 60, 512, 400))
    found = faces.detect_faces(cut)
    assert isinstance(found, list)
    for f in found:
        a = np.asarray(faces.align(cut, f, 64))
        assert a.shape == (64, 64, 3)


def test_paste_back(hopper: Image.Image, hopper_face: faces.Face) -> None:
    f = hopper_face
    crop = faces.align(hopper, f, 64)
    # the unchanged crop gives the photo back, bit for bit
    assert np.array_equal(
        np.asarray(faces.paste_back(hopper, crop, f)), np.asarray(hopper)
    )
    changed = np.asarray(crop).copy()
    changed[36:46, 22:42] = 0  # a dark band over the mouth
    out = faces.paste_back(hopper, Image.fromarray(changed), f)
    assert out.size == hopper.size and out.mode == "RGB"
    diff = np.abs(np.asarray(out, int) - np.asarray(hopper, int)).sum(-1) > 0
    region = Image.new("L", hopper.size, 0)
    ImageDraw.Draw(region).polygon([tuple(p) for p in f.corners()], fill=1)
    inside = np.asarray(region) > 0
    assert diff.any() and not (diff & ~inside).any()  # nothing changes outside
    # the change is where the band is: realigning the result shows it
    again = np.asarray(faces.align(out, f, 64), float)
    assert again[38:44, 24:40].mean() < 25
    assert np.abs(again - np.asarray(crop, float))[:30].mean() < 3


def test_paste_back_at_another_size(
    hopper: Image.Image, hopper_face: faces.Face
) -> None:
    crop = np.asarray(faces.align(hopper, hopper_face, 32)).copy()
    crop[:] = 255
    out = faces.paste_back(hopper, Image.fromarray(crop), hopper_face)
    again = np.asarray(faces.align(out, hopper_face, 32), float)
    assert again[4:28, 4:28].mean() > 240  # (its top corners: outside the photo)


def test_image_modes(hopper: Image.Image) -> None:
    for mode in ("L", "RGBA", "P", "CMYK"):
        assert faces.align_face(hopper.convert(mode)) is not None, mode
    grey16 = Image.fromarray(np.asarray(hopper.convert("L"), np.uint16) * 257)
    assert faces.align_face(grey16) is not None


def test_bad_input(hopper: Image.Image, hopper_face: faces.Face) -> None:
    with pytest.raises(TypeError, match="PIL"):
        faces.detect_faces(np.asarray(hopper))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="PIL"):
        faces.align_face("photo.jpg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        faces.detect_faces(Image.new("RGB", (0, 0)))
    with pytest.raises(ValueError, match="too large"):
        faces.detect_faces(Image.new("1", (5000, 5000)))
    for size in (0, 4, 5000):
        with pytest.raises(ValueError, match="size"):
            faces.align_face(hopper, size)
    for size in (64.0, "64", True):
        with pytest.raises(TypeError, match="size"):
            faces.align(hopper, hopper_face, size)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="square"):
        faces.paste_back(hopper, Image.new("RGB", (64, 32)), hopper_face)
    with pytest.raises(TypeError, match="changed"):
        faces.paste_back(hopper, np.zeros((64, 64, 3)), hopper_face)  # type: ignore[arg-type]


def test_similarity_and_inverse() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(6, 2))
    t = math.radians(30)
    m = np.array(
        [[2 * math.cos(t), -2 * math.sin(t), 5], [2 * math.sin(t), 2 * math.cos(t), -3]]
    )
    dst = src @ m[:, :2].T + m[:, 2]
    assert np.allclose(faces.similarity(src, dst), m)
    assert np.allclose(faces.compose(faces.invert(m), m), np.eye(2, 3))
    # a mirror image is not a similarity: the best fit keeps the orientation
    fit = faces.similarity(src, src * [-1, 1])
    assert np.linalg.det(fit[:, :2]) >= 0
    with pytest.raises(ValueError, match="coincide"):
        faces.similarity(np.ones((4, 2)), dst[:4])
    with pytest.raises(ValueError, match="finite"):
        faces.similarity(np.full((4, 2), np.nan), dst[:4])
    with pytest.raises(ValueError, match="singular"):
        faces.invert(np.zeros((2, 3)))


def test_framing_file() -> None:
    f = framing.load()
    eyes, mouth = f.template[:2], f.template[2:]
    assert eyes[0, 0] < 0.5 < eyes[1, 0] and abs(eyes.mean(0)[0] - 0.5) < 0.03
    assert eyes[:, 1].max() < mouth[:, 1].min() < 1
    # faces shaped like the template are framed (nearly) as the template says
    assert np.allclose(f.crop_to_photo(f.template), np.eye(2, 3), atol=0.01)
    assert np.isfinite(f.correction).all() and np.abs(f.correction).max() < 10


def test_threads_agree(hopper: Image.Image, hopper_face: faces.Face) -> None:
    """The interpreters are shared: concurrent calls give the same answer."""
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(faces.detect_faces(hopper)[0].transform)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert all(np.allclose(r, hopper_face.transform) for r in results)
