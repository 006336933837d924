"""The bundle's optional report/: training curves, confusion matrix and a prototype gallery (PNG files)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from .train import TrainResult

RESAMPLE = getattr(Image, "Resampling", Image)  # Pillow >= 9.1 names the filters Image.Resampling.*


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_curves(history: List[Dict], path: str, baseline_history: Optional[List[float]] = None) -> None:
    figure = curves_figure(history, baseline_history)
    figure.savefig(path, dpi=100)
    _pyplot().close(figure)


def curves_figure(history: List[Dict], baseline_history: Optional[List[float]] = None):
    """Accuracy (left) and the objective's terms (right) per epoch; the push epochs marked before and after."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator
    epochs = [m["epoch"] for m in history]
    figure, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(11, 5.5))
    accuracy_axis.plot(epochs, [m["train_accuracy"] for m in history], label="train (batches, as they trained)")
    accuracy_axis.plot(epochs, [m["test_accuracy"] for m in history], label="test")
    pushed = [m for m in history if m.get("pushed")]
    before = [m for m in pushed if "test_accuracy_before_push" in m]
    if before:
        accuracy_axis.scatter([m["epoch"] for m in before], [m["test_accuracy_before_push"] for m in before],
                              marker="x", color="black", zorder=3, label="test before push")
    if pushed:
        accuracy_axis.scatter([m["epoch"] for m in pushed], [m["test_accuracy"] for m in pushed], marker="o",
                              color="black", zorder=3, label="test after push + last layer")
    if baseline_history:
        accuracy_axis.plot(range(1, len(baseline_history) + 1), baseline_history, linestyle="--",
                           label="black-box baseline (test)")
    for axis in (accuracy_axis, loss_axis):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))   # whole epochs (a short run had ticks at 2.5, 7.5)
    accuracy_axis.set_xlabel("epoch")
    accuracy_axis.set_ylabel("accuracy")
    accuracy_axis.grid(alpha=0.3)
    # The separation term is a distance the total subtracts: it rising is other classes' prototypes moving away, as
    # the paper's objective wants, not the training diverging.
    for key, name in (("loss_total", "total (minimised)"), ("loss_cross_entropy", "cross entropy"),
                      ("loss_cluster", "cluster: distance to the nearest own-class prototype (lower is better)"),
                      ("loss_separation", "separation: distance to the nearest other-class prototype (higher is better)")):
        if all(key in m for m in history):
            loss_axis.plot(epochs, [m[key] for m in history], label=name)
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("cost (mean per image)")
    # Below the axes, not inside: the loss terms' long names made a box wider than the chart, over the curves.
    for axis in (accuracy_axis, loss_axis):
        axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)
    loss_axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def plot_confusion(matrix: np.ndarray, classes: List[str], path: str) -> None:
    plt = _pyplot()
    size = max(5.0, min(30.0, 0.45 * len(classes) + 2))
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    if len(classes) <= 30:
        axis.set_xticks(range(len(classes)))
        axis.set_yticks(range(len(classes)))
        axis.set_xticklabels(classes, rotation=60, ha="right", fontsize=8)
        axis.set_yticklabels(classes, fontsize=8)
        top = matrix.max() if matrix.size else 0
        for i in range(len(classes)):
            for j in range(len(classes)):
                axis.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                          color="white" if matrix[i, j] > top / 2 else "black")
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    total = matrix.sum()
    axis.set_title(f"test accuracy {np.trace(matrix) / total:.4f} ({total} images)" if total else "confusion")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def label_font() -> ImageFont.ImageFont:
    """A TrueType font for class names (matplotlib's DejaVu Sans, installed with it): PIL's built-in bitmap font covers
    Latin-1 only and raises on any other character, e.g. a class folder named in Chinese."""
    from matplotlib import font_manager
    try:
        return ImageFont.truetype(font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans")), 11)
    except OSError:
        return ImageFont.load_default()


def drawable(text: str, font: ImageFont.ImageFont) -> str:
    """`text` as `font` can draw it: unchanged in a TrueType font (a glyph it lacks shows as a box), else Latin-1 with
    '?' for the rest."""
    return text if isinstance(font, ImageFont.FreeTypeFont) else text.encode("latin-1", "replace").decode("latin-1")


GALLERY_HEADER = ("Each prototype: its patch (left, as learned, not stretched) and the training image it comes from, "
                  "the patch boxed in yellow; #j is its index in model.json")


def fitted(picture: Image.Image, tile: int, resample: int) -> Tuple[Image.Image, float, int, int]:
    """`picture` scaled to fit a tile x tile square without changing its shape, on light grey; with the scale and the
    offsets it was placed at."""
    scale = tile / max(picture.width, picture.height)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    square = Image.new("RGB", (tile, tile), (235, 235, 235))
    left, top = (tile - size[0]) // 2, (tile - size[1]) // 2
    square.paste(picture.resize(size, resample), (left, top))
    return square, scale, left, top


def prototype_gallery(prototypes: List[Dict], classes: List[str], bundle_dir: str, path: str) -> None:
    """One row per class, under a line that says what the tiles are: each prototype's index, its patch (its own shape)
    and, up to 50 classes, its source image with the patch's box."""
    tile = 64 if len(classes) <= 50 else 32
    with_source = len(classes) <= 50
    rows: Dict[int, List[Dict]] = {}
    for prototype in prototypes:
        rows.setdefault(prototype["classIndex"], []).append(prototype)
    per_row = max((len(v) for v in rows.values()), default=1)
    label_width, header = 140, 24
    columns = per_row * (2 if with_source else 1)
    width = max(label_width + columns * (tile + 4) + 4, 420)
    canvas = Image.new("RGB", (width, header + len(classes) * (tile + 4) + 4), "white")
    draw = ImageDraw.Draw(canvas)
    font = label_font()
    draw.text((4, 6), drawable(GALLERY_HEADER if width >= 900 else "Patch | source image with its box; #j: index",
                               font), fill="black", font=font)
    for k, name in enumerate(classes):
        y = header + 4 + k * (tile + 4)
        draw.text((4, y + tile // 2 - 6), drawable(name[:22], font), fill="black", font=font)
        for n, prototype in enumerate(rows.get(k, [])):
            x = label_width + 4 + n * (2 if with_source else 1) * (tile + 4)
            with Image.open(os.path.join(bundle_dir, prototype["images"]["patch"])) as opened:
                patch, _, _, _ = fitted(opened.convert("RGB"), tile, RESAMPLE.NEAREST)
            canvas.paste(patch, (x, y))
            if with_source:
                with Image.open(os.path.join(bundle_dir, prototype["images"]["source"])) as opened:
                    source, scale, left, top = fitted(opened.convert("RGB"), tile, RESAMPLE.BILINEAR)
                box = prototype["source"]["box"]
                ImageDraw.Draw(source).rectangle(
                    [left + box["x"] * scale, top + box["y"] * scale, left + (box["x"] + box["width"]) * scale - 1,
                     top + (box["y"] + box["height"]) * scale - 1], outline=(255, 255, 0))
                canvas.paste(source, (x + tile + 2, y))
            index = f"#{prototype['index']}"
            draw.rectangle([x, y, x + 6 * len(index) + 3, y + 12], fill="white")
            draw.text((x + 1, y), index, fill="black", font=font)
    canvas.save(path)


def plot_interpretability(block: Dict, path: str) -> None:
    """The scorecard (model.json's `interpretability`): the headline measures as bars, and each prototype's
    consistency and stability."""
    plt = _pyplot()
    figure = interpretability_figure(block)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def interpretability_figure(block: Dict) -> Any:
    """The figure plot_interpretability saves (the caller closes it)."""
    plt = _pyplot()
    figure, (summary_axis, prototype_axis) = plt.subplots(1, 2, figsize=(12, 4.2),
                                                           gridspec_kw={"width_ratios": [1, 1.6]})
    measures = [("pointing game", block.get("pointingGame")), ("consistency", block.get("consistency")),
                ("noise stability", block.get("noiseStability")), ("JPEG stability", block.get("jpegStability")),
                ("background share", block.get("backgroundShare"))]
    names = [name for name, _ in measures]
    values = [100 * value if value is not None else 0.0 for _, value in measures]
    bars = summary_axis.barh(names, values, color=["#4c72b0"] * 4 + ["#c44e52"])
    for bar, (_, value) in zip(bars, measures):
        summary_axis.text(bar.get_width() + 1, bar.get_y() + bar.get_height() / 2,
                          "n/a (no parts)" if value is None else f"{100 * value:.1f}%", va="center", fontsize=9)
    summary_axis.set_xlim(0, 125)   # room for the values written beside the bars
    summary_axis.set_xticks([0, 25, 50, 75, 100])
    summary_axis.set_xlabel("% of the test images (background share: of the prototypes)")
    summary_axis.invert_yaxis()
    deletion = block.get("deletion", {})
    summary_axis.set_title(f"{block.get('images')} test images; deletion ratio {deletion.get('ratio')} "
                           f"({deletion.get('meanDropTopBox')} vs {deletion.get('meanDropRandomBox')})", fontsize=9)
    prototypes = block.get("prototypes", [])
    indices = [p["index"] for p in prototypes]
    # Side by side around each prototype's index: three measures of the same value hid each other.
    for key, label, marker, shift in (("consistency", "consistency", "o", -0.25), ("noiseStability", "noise stability", "^", 0.0),
                                      ("jpegStability", "JPEG stability", "s", 0.25)):
        points = [(p["index"], p[key]) for p in prototypes if p.get(key) is not None]
        if points:
            prototype_axis.scatter([i + shift for i, _ in points], [v for _, v in points], s=14, marker=marker,
                                   label=label)
    background = [p["index"] for p in prototypes if p.get("background")]
    if background:
        prototype_axis.scatter(background, [-0.05] * len(background), s=14, marker="x", color="#c44e52",
                               label="background patch (marked below 0)")
    prototype_axis.set_xlim(-1, max(indices, default=0) + 1)
    prototype_axis.set_ylim(-0.1, 1.05)
    prototype_axis.set_xlabel("prototype")
    prototype_axis.set_title("per prototype (over its class's test images)", fontsize=9)
    # Below the axis, not inside it: inside, any corner the legend takes can hide a prototype's markers.
    prototype_axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4, frameon=False)
    figure.tight_layout()
    return figure


def write_report(bundle_dir: str, history: List[Dict], confusion: Optional[np.ndarray], classes: List[str],
                 prototypes: List[Dict], baseline_history: Optional[List[float]] = None) -> List[str]:
    """Write report/{curves,confusion,gallery}.png into a bundle folder (prototype pictures already there)."""
    folder = os.path.join(bundle_dir, "report")
    os.makedirs(folder, exist_ok=True)
    written = []
    if history:
        plot_curves(history, os.path.join(folder, "curves.png"), baseline_history)
        written.append("report/curves.png")
    if confusion is not None:
        plot_confusion(confusion, classes, os.path.join(folder, "confusion.png"))
        written.append("report/confusion.png")
    prototype_gallery(prototypes, classes, bundle_dir, os.path.join(folder, "gallery.png"))
    written.append("report/gallery.png")
    return written


def report_writer(result: "TrainResult", classes: List[str]) -> Callable[[str, List[Dict]], List[str]]:
    """The `report` step of write_bundle for a result: curves (with the baseline's), confusion matrix, gallery."""
    def write(staging: str, prototypes: List[Dict]) -> List[str]:
        baseline_history = result.baseline.history if result.baseline is not None else []
        return write_report(staging, result.history, result.confusion, classes, prototypes, baseline_history or None)
    return write
