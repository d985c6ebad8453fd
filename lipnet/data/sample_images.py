"""Built-in example images that need no dataset: Grace Hopper's portrait, digits."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def grace_hopper() -> Image.Image:
    """Return matplotlib's public-domain portrait of Grace Hopper as an RGB image.

    Returns:
        The 512×600 portrait (from matplotlib's sample data).
    """
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as f:  # type: ignore[union-attr]
            img = Image.open(f)
            img.load()
            return img.convert("RGB")
    with Image.open(path) as img:
        return img.convert("RGB")


# Head and shoulders of the 512x600 portrait, framed like a CelebA photo.
GRACE_HOPPER_FACE_BOX = (100, 0, 412, 312)


def grace_hopper_face() -> Image.Image:
    """Grace Hopper's face, cropped square and framed like the CelebA images
    the face models were trained on (the full portrait shows her uniform).

    Returns:
        The 312×312 crop :data:`GRACE_HOPPER_FACE_BOX` of :func:`grace_hopper`.
    """
    return grace_hopper().crop(GRACE_HOPPER_FACE_BOX)


def rendered_digit(digit: int, size: int = 28) -> Image.Image:
    """A digit drawn with Pillow's bundled font, white on black like MNIST.

    A built-in example that needs no dataset: it is rendered, not taken
    from MNIST, so the dashboard shows a digit model at work anywhere.

    Args:
        digit: 0 to 9.
        size: the image's side in pixels.

    Returns:
        A size×size 'L' image.

    Raises:
        ValueError: a digit outside 0..9.
    """
    from PIL import ImageDraw, ImageFont

    if not 0 <= int(digit) <= 9:
        raise ValueError(f"digit must be 0..9, got {digit!r}")
    img = Image.new("L", (size, size), 0)
    font = ImageFont.load_default(size=round(size * 0.86))
    ImageDraw.Draw(img).text(
        (size / 2, size / 2),
        str(int(digit)),
        fill=255,
        font=font,
        anchor="mm",
        stroke_width=max(1, size // 28),
        stroke_fill=255,
    )
    return img
