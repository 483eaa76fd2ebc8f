"""The paper's Figure 1 layout (`plotting.logit_metamer_figure`)."""

import numpy as np
import pytest

from invjax import plotting


def test_figure1_layout_shows_the_logit_agreement():
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (4, 16, 16, 3))
  source_logits = rng.normal(size=1000)
  metamer_logits = source_logits + np.array([[0.0], [2e-6], [-5e-7]])
  figure = plotting.logit_metamer_figure(images[0], images[1:], images[1:], source_logits=source_logits,
                                         metamer_logits=metamer_logits, title="run")
  assert len(figure.axes) == 2 * 4  # the logit source and its bar chart, then 3 x (nuisance source, metamer)
  assert figure.get_suptitle() == "run\nall 3 metamers carry the logit source's 1000 logits: max |difference| = 2.00e-06"
  bars = figure.axes[4]
  top_bar = max(zip(bars.get_yticks(), bars.get_yticklabels(), strict=False), key=lambda tick: tick[0])[1]
  assert top_bar.get_text() == str(int(np.argmax(source_logits)))  # the top class is drawn on top
  with pytest.raises(ValueError, match="one nuisance source and one row of logits per metamer"):
    plotting.logit_metamer_figure(images[0], images[1:3], images[1:], source_logits=source_logits,
                                  metamer_logits=metamer_logits)
