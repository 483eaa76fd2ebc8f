"""What every command line tool shares: the command recorded beside its results, and
errors as one line on stderr.

docs/results.md and `experiments.results` quote the recorded lines, so every
number there can be traced to the exact command that produced it.

A tool's `main` runs under `run`: a bad flag, a missing config file or an
unknown config key, and any bad-input error raised inside `one_line_errors()`
(ValueError, FileNotFoundError, FloatingPointError, a workdir in use) end the
process with `Error: <message>` on stderr and exit status 1. `--verbose` shows
their tracebacks too (and orbax's logged errors, which otherwise repeat a failed
save's error with a traceback per background thread); any other exception is a
bug and keeps its traceback.
"""

import contextlib
import logging
import os
import pathlib
import re
import shlex
import sys

from absl import app, flags

from invjax.train import run_folder, workdir_lock

BAD_INPUT_ERRORS = (ValueError, FileNotFoundError, FloatingPointError, workdir_lock.WorkdirInUse)

_VERBOSE = flags.DEFINE_bool("verbose", False, "Show tracebacks of input errors too.")


def command_line(module: str) -> str:
  """This process's command line as `python -m <module> <flags>`, shell-quoted."""
  return shlex.join(["python", "-m", module, *sys.argv[1:]])


def record(workdir: str | pathlib.Path, module: str) -> None:
  """Appends this process's command line to `workdir/commands.txt` (one line per job)."""
  folder = pathlib.Path(workdir)
  folder.mkdir(parents=True, exist_ok=True)
  with open(folder / run_folder.COMMANDS_FILE, "a") as file:
    file.write(command_line(module) + "\n")


def last_recorded(workdir: str | pathlib.Path) -> str:
  """The command of the last job run in `workdir`."""
  path = pathlib.Path(workdir) / run_folder.COMMANDS_FILE
  if not path.exists():
    raise FileNotFoundError(f"{path} does not exist: {workdir} was not trained with experiments.train.")
  return path.read_text().splitlines()[-1]


def output_folder(path: str | pathlib.Path, flag: str) -> pathlib.Path:
  """Creates a tool's output folder `path` if missing; a ValueError naming --`flag` if it cannot be
  written (no permission, a read-only file system, a file in the way)."""
  path = pathlib.Path(path)
  try:
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK):
      raise PermissionError(f"no write access to {path}")
  except OSError as error:
    raise ValueError(f"{path} cannot be written ({error}): pass --{flag}=FOLDER, a folder this job can write "
                     "(a run on a read-only mount is analysed into another folder).") from None
  return path


def fail(message: str) -> None:
  """Ends the process: `Error: message` (one line) on stderr, exit status 1."""
  print(f"Error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
  sys.exit(1)


@contextlib.contextmanager
def one_line_errors():
  """Turns bad-input errors raised inside into `fail` (or, with --verbose, lets them through)."""
  try:
    yield
  except BAD_INPUT_ERRORS as error:
    if _VERBOSE.value:
      raise
    fail(" ".join([str(error), *getattr(error, "__notes__", [])]))


class ProjectLinesOnly(logging.Filter):
  """Keeps the training jobs' progress lines and other libraries' warnings, except the
  checkpointer's (orbax warns about metadata it does not need on every restore)."""

  def filter(self, record):
    if "/invjax/" in record.pathname:
      return True
    return record.levelno >= (logging.ERROR if "/orbax/" in record.pathname else logging.WARNING)


def check_no_arguments(argv) -> None:
  if len(argv) > 1:
    fail(f"Unexpected arguments {argv[1:]}: every input is a --flag=value (see --helpshort).")


def _parse_flags(argv):
  """absl's flag parsing, with parse errors (bad values, unknown config keys, a config file
  that cannot be loaded) as one line; the config file loads here, not at first use."""
  try:
    remaining = flags.FLAGS(argv)
  except flags.Error as error:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    fail(f"{lines[-1] if lines else error} (see --helpshort for the flags)")
  except (AttributeError, KeyError) as error:  # ml_collections: an override of a field the config lacks
    field = re.search(r"'(\w+)\\?'", str(error))
    suggestion = re.search(r'Did you mean "(\w+)"', str(error))
    fail(f"A --config.* flag names a field the config does not have: {field.group(1) if field else error!r}"
         f"{f' (did you mean {suggestion.group(1)!r}?)' if suggestion else ''}; the fields are those set in "
         "the config file and configs/base.py.")
  for name in ("config",):
    if name in flags.FLAGS and flags.FLAGS[name].value is not None:
      try:
        flags.FLAGS[name].value.get("dataset")
      except OSError as error:
        fail(f"--{name}={flags.FLAGS[name].serialize().split('=', 1)[-1]} cannot be loaded: "
             f"{str(error).splitlines()[-1] if str(error).strip() else error}")
  return remaining


def _without_background_save_tracebacks(record: logging.LogRecord) -> bool:
  """Whether to show a log record: not orbax's errors (without --verbose). A failing save (a full
  disk) makes each of orbax's background threads log the failure with a traceback before the job
  itself reports it as one line (`one_line_errors`) naming the checkpoint to resume from."""
  is_orbax_error = record.levelno >= logging.ERROR and f"{os.sep}orbax{os.sep}" in record.pathname
  return not is_orbax_error or _VERBOSE.value


def run(main) -> None:
  """`absl.app.run(main)` with one-line flag errors and without orbax's background tracebacks."""
  logging.getLogger("absl").addFilter(_without_background_save_tracebacks)
  app.run(main, flags_parser=_parse_flags)
