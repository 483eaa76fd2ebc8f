"""Files a reader sees whole: a JSON file is written beside its target and renamed over it.

A job killed mid-write (or a reader racing the writer) then finds the old file or
the whole new one, never a torn one; the run's config.json, checksum records and
selection.json are written this way.
"""

import json
import os
import pathlib


def write_json_atomically(path: pathlib.Path, value) -> None:
  """Writes `value` as JSON to `path` so that a reader sees the old file or the whole new one."""
  path.parent.mkdir(parents=True, exist_ok=True)
  temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
  with open(temporary, "w") as file:
    json.dump(value, file, indent=2, sort_keys=True)
    file.flush()
    os.fsync(file.fileno())
  os.replace(temporary, path)
