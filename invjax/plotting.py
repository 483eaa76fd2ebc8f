"""Figures of the metamer analyses: metamer grids, the paper's Figure 1, interpolation strips, decision planes.

Each function returns a `matplotlib.figure.Figure` built without pyplot (no
global state, no display; `figure.savefig("x.png")` renders with Agg). Images
are model inputs in [-1, 1] and are drawn like `invjax.data.figures`: digit
inputs (blank channels 1 and 2) in grey, others in colour. Whether a figure is
grey is decided once, from its source images (`grey=None`): a metamer of
digits carries float noise in its blank channels and would otherwise be drawn
in colour next to grey sources.
"""

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from invjax import _extras

with _extras.train_extra("invjax.plotting"):
  import matplotlib.colors
  import matplotlib.figure
  import matplotlib.patches

  from invjax.data.figures import displayable

_CELL_INCHES = 1.1


def _is_grey(sources: np.ndarray) -> bool:
  """Whether every source image is a digit input (drawn in grey)."""
  return all(displayable(np.asarray(image))[1] == "gray" for image in sources)


def _show(axis, image: np.ndarray, grey: bool, caption: str | None = None) -> None:
  pixels, colour_map = displayable(np.asarray(image))
  if grey and colour_map is None:
    pixels, colour_map = pixels[..., 0], "gray"
  axis.imshow(pixels, cmap=colour_map, vmin=0.0, vmax=1.0, interpolation="nearest")
  axis.set_xticks([])
  axis.set_yticks([])
  if caption is not None:
    axis.set_xlabel(caption, fontsize=8, labelpad=2)


def metamer_figure(
    logit_sources: np.ndarray,
    metamers: np.ndarray,
    nuisance_sources: np.ndarray,
    *,
    captions: Sequence[tuple[str, str, str]] | None = None,
    triplets_per_row: int = 3,
    column_titles: tuple[str, str, str] = ("logit source", "metamer", "nuisance source"),
    grey: bool | None = None,
    title: str | None = None,
) -> matplotlib.figure.Figure:
  """The paper's layout: for each example i the columns (logit source, metamer, nuisance source).

  Args:
    logit_sources, metamers, nuisance_sources: (B, H, W, C) in [-1, 1].
    captions: optional B triples of strings drawn under the three images
      (e.g. labels or oracle predictions).
    triplets_per_row: examples side by side in one row of the figure.
    column_titles: headers of the three columns (e.g. ("target", "attack", "start")
      for `analysis.attack` results).
    grey: draw channel 0 in grey; None: when all sources are digit inputs.
    title: optional figure title.
  """
  count = len(metamers)
  if not len(logit_sources) == len(nuisance_sources) == count:
    raise ValueError(
        f"Need as many logit sources, metamers and nuisance sources; got {len(logit_sources)}, {count} "
        f"and {len(nuisance_sources)}."
    )
  if captions is not None and len(captions) != count:
    raise ValueError(f"Need one caption triple per example; got {len(captions)} for {count} examples.")
  if grey is None:
    grey = _is_grey(logit_sources) and _is_grey(nuisance_sources)
  rows = -(-count // triplets_per_row)
  figure = matplotlib.figure.Figure(
      figsize=(_CELL_INCHES * 3 * triplets_per_row, _CELL_INCHES * 1.2 * rows + 0.5), layout="constrained"
  )
  if title:
    figure.suptitle(title)
  # One subfigure per triplet keeps the three images of an example together.
  triplet_figures = np.asarray(figure.subfigures(rows, triplets_per_row, squeeze=False, wspace=0.04)).reshape(-1)
  for index, triplet_figure in enumerate(triplet_figures):
    axes = triplet_figure.subplots(1, 3)
    for column, (axis, images) in enumerate(zip(axes, (logit_sources, metamers, nuisance_sources), strict=True)):
      if index >= count:
        axis.set_axis_off()
        continue
      _show(axis, images[index], grey, None if captions is None else captions[index][column])
      if index < triplets_per_row:
        axis.set_title(column_titles[column], fontsize=8)
  return figure


def interpolation_figure(
    paths: np.ndarray,
    *,
    nuisance_sources: np.ndarray | None = None,
    captions: Sequence[Sequence[str]] | None = None,
    grey: bool | None = None,
    title: str | None = None,
) -> matplotlib.figure.Figure:
  """One row per nuisance interpolation path (B, n, H, W, C), step t = 0 on the left.

  With `nuisance_sources` (B, H, W, C) each row ends with its source b for
  comparison; `captions` gives optional strings per row and step (B lists of
  n); `grey` as in `metamer_figure` (None: decided from the nuisance sources,
  else from the first steps).
  """
  count, num_steps = paths.shape[:2]
  if grey is None:
    grey = _is_grey(paths[:, 0] if nuisance_sources is None else nuisance_sources)
  columns = num_steps + (nuisance_sources is not None)
  figure = matplotlib.figure.Figure(
      figsize=(_CELL_INCHES * columns, _CELL_INCHES * 1.15 * count + 0.5), layout="constrained"
  )
  if title:
    figure.suptitle(title)
  axes = figure.subplots(count, columns, squeeze=False)
  for row in range(count):
    for step in range(num_steps):
      _show(axes[row, step], paths[row, step], grey, None if captions is None else captions[row][step])
    if nuisance_sources is not None:
      _show(axes[row, -1], nuisance_sources[row], grey)
  for step in range(num_steps):
    axes[0, step].set_title(f"t = {step / (num_steps - 1):.2f}", fontsize=8)
  if nuisance_sources is not None:
    axes[0, -1].set_title("nuisance source", fontsize=8)
  return figure


class PlanePanel(NamedTuple):
  """One panel of `decision_plane_figure`.

  Attributes:
    title: the panel's title.
    decisions: (R, R) int classes on the grid, row i at t = axis[i], column j at s = axis[j].
    axis: (R,) grid coordinates.
    marked_points: name -> plane coordinates (2,) of points to mark.
  """

  title: str
  decisions: np.ndarray
  axis: np.ndarray
  marked_points: Mapping[str, np.ndarray]


def decision_plane_figure(
    panels: Sequence[PlanePanel],
    *,
    columns: int = 2,
    circle_radii: Sequence[float] = (),
    class_names: Sequence[str] = ("class 0", "class 1"),
    title: str | None = None,
) -> matplotlib.figure.Figure:
  """Decision regions on 2D planes, with circles (e.g. the spheres' radii) and marked points."""
  rows = -(-len(panels) // columns)
  figure = matplotlib.figure.Figure(figsize=(4.2 * columns, 4.0 * rows + 0.4), layout="constrained")
  if title:
    figure.suptitle(title)
  colour_map = matplotlib.colors.ListedColormap(["#9ecae1", "#fdae6b", "#a1d99b", "#bcbddc"][: len(class_names)])
  axes = figure.subplots(rows, columns, squeeze=False).reshape(-1)
  angles = np.linspace(0.0, 2.0 * np.pi, 400)
  for axis, panel in zip(axes, panels, strict=False):
    extent = (panel.axis[0], panel.axis[-1], panel.axis[0], panel.axis[-1])
    axis.imshow(
        np.asarray(panel.decisions), origin="lower", extent=extent, cmap=colour_map,
        vmin=-0.5, vmax=len(class_names) - 0.5, interpolation="nearest",
    )
    for radius in circle_radii:
      axis.plot(radius * np.cos(angles), radius * np.sin(angles), color="black", linewidth=0.8, linestyle="--")
    for marker, (name, point) in zip("o^sDv", panel.marked_points.items(), strict=False):
      axis.plot(*np.asarray(point), marker=marker, color="black", markersize=7, linestyle="none", label=name)
    axis.set_title(panel.title, fontsize=10)
    axis.set_aspect("equal")
    if panel.marked_points:
      axis.legend(fontsize=7, loc="upper right")
  for axis in axes[len(panels):]:
    axis.set_axis_off()
  handles = [matplotlib.patches.Patch(color=colour_map(index), label=name) for index, name in enumerate(class_names)]
  figure.legend(handles=handles, loc="outside lower center", ncols=len(class_names), fontsize=8)
  return figure


def logit_metamer_figure(
    logit_source: np.ndarray,
    nuisance_sources: np.ndarray,
    metamers: np.ndarray,
    *,
    source_logits: np.ndarray,
    metamer_logits: np.ndarray,
    top_k: int = 5,
    title: str | None = None,
) -> matplotlib.figure.Figure:
  """The paper's Figure 1: one logit source and its metamers with several nuisance sources.

  Column 0 holds the logit source a above a bar chart of its `top_k` softmax
  probabilities; column j holds nuisance source b_j above the metamer
  F^{-1}(z_s(a), z_n(b_j)). All metamers carry a's logits, so each shows a's
  top class; its caption gives max_c |z_s(metamer)_c - z_s(a)_c|, and the
  title the largest over all metamers.

  Args:
    logit_source: (H, W, C) in [-1, 1].
    nuisance_sources, metamers: (K, H, W, C) in [-1, 1].
    source_logits: (num_classes,) logits of the logit source.
    metamer_logits: (K, num_classes) logits of the metamers.
    top_k: classes in the bar chart.
    title: optional first line of the title.
  """
  count = len(metamers)
  if len(nuisance_sources) != count or len(metamer_logits) != count:
    raise ValueError(
        f"Need one nuisance source and one row of logits per metamer; got {len(nuisance_sources)} sources, "
        f"{count} metamers and {len(metamer_logits)} logit rows.")
  differences = np.max(np.abs(np.asarray(metamer_logits) - np.asarray(source_logits)[None]), axis=-1)
  grey = _is_grey(logit_source[None]) and _is_grey(nuisance_sources)
  figure = matplotlib.figure.Figure(figsize=(_CELL_INCHES * 1.3 * (count + 1), _CELL_INCHES * 2.9),
                                    layout="constrained")
  agreement = (f"all {count} metamers carry the logit source's {len(source_logits)} logits: "
               f"max |difference| = {differences.max():.2e}")
  figure.suptitle(f"{title}\n{agreement}" if title else agreement, fontsize=9)
  axes = figure.subplots(2, count + 1, squeeze=False)
  top_class = int(np.argmax(source_logits))
  _show(axes[0, 0], logit_source, grey, f"class {top_class}")
  axes[0, 0].set_title("logit source", fontsize=8)
  probabilities = np.exp(source_logits - np.max(source_logits))
  probabilities /= probabilities.sum()
  classes = np.argsort(-probabilities)[:top_k]
  bars = axes[1, 0]
  bars.barh(np.arange(len(classes))[::-1], probabilities[classes], color="tab:blue")
  bars.set_yticks(np.arange(len(classes))[::-1], [str(c) for c in classes], fontsize=7)
  bars.set_xlim(0.0, 1.0)
  bars.tick_params(axis="x", labelsize=7)
  bars.set_title(f"top-{len(classes)} softmax", fontsize=8)
  for column in range(count):
    _show(axes[0, column + 1], nuisance_sources[column], grey)
    _show(axes[1, column + 1], metamers[column], grey,
          f"class {int(np.argmax(metamer_logits[column]))}, {differences[column]:.1e}")
    axes[0, column + 1].set_title("nuisance source", fontsize=8)
    axes[1, column + 1].set_title("metamer", fontsize=8)
  return figure
