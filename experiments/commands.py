"""The command line that started an experiment, recorded beside its results.

docs/results.md and `experiments.results` quote these lines, so every number
there can be traced to the exact command that produced it.
"""

import pathlib
import shlex
import sys

COMMANDS_FILE = "commands.txt"


def command_line(module: str) -> str:
  """This process's command line as `python -m <module> <flags>`, shell-quoted."""
  return shlex.join(["python", "-m", module, *sys.argv[1:]])


def record(workdir: str | pathlib.Path, module: str) -> None:
  """Appends this process's command line to `workdir/commands.txt` (one line per job)."""
  folder = pathlib.Path(workdir)
  folder.mkdir(parents=True, exist_ok=True)
  with open(folder / COMMANDS_FILE, "a") as file:
    file.write(command_line(module) + "\n")


def last_recorded(workdir: str | pathlib.Path) -> str:
  """The command of the last job run in `workdir`."""
  path = pathlib.Path(workdir) / COMMANDS_FILE
  if not path.exists():
    raise FileNotFoundError(f"{path} does not exist: {workdir} was not trained with experiments.train.")
  return path.read_text().splitlines()[-1]
