r"""Prepares TFDS `imagenet2012` once, from the two tars of the manual download.

    python -m experiments.prepare_imagenet --manual_dir=DIR --data_dir=DATA_DIR

DIR holds ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (from
https://image-net.org/download-images); DATA_DIR is the TFDS data directory
the training job reads (local, or gs://BUCKET/tensorflow_datasets for a pod:
prepare on one machine, train on all hosts). TFDS converts the 1.28M JPEGs to
TFRecord shards without re-encoding them (several hours on one machine).

With --write_tiny (and a DATA_DIR of its own), DIR is first filled with a tiny ImageNet in the same layout
(`invjax.data.tiny_imagenet`: 10 validation images, 6 training images for each
of their classes) for the `:tiny` configs and CI.
"""

import sys

from absl import app, flags

from invjax.data import imagenet, tiny_imagenet

_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Folder of ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory (local or gs://); default: TFDS's.")
_WRITE_TINY = flags.DEFINE_bool("write_tiny", False,
                                 "First write a tiny ImageNet in the manual layout into manual_dir.")
flags.mark_flag_as_required("manual_dir")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _WRITE_TINY.value:
    if not _DATA_DIR.value:
      print("Error: --write_tiny needs a --data_dir of its own: a tiny imagenet2012 in TFDS's default folder "
            "would stand in for the real one.", file=sys.stderr)
      sys.exit(1)
    tiny = tiny_imagenet.write(_MANUAL_DIR.value)
    print(f"Wrote a tiny ImageNet ({tiny.num_train} training images of {len(tiny.synsets)} classes, "
          f"{tiny.num_validation} validation images) to {tiny.directory}")
  try:
    builder = imagenet.prepare(_DATA_DIR.value, _MANUAL_DIR.value)
  except (FileNotFoundError, ValueError) as error:
    print(f"Error: {error}", file=sys.stderr)
    sys.exit(1)
  sizes = ", ".join(f"{name}: {split.num_examples:,}" for name, split in builder.info.splits.items())
  print(f"imagenet2012 is prepared in {builder.data_dir} ({sizes}).")


if __name__ == "__main__":
  app.run(main)
