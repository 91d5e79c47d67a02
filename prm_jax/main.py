"""Launcher: `python -m prm_jax.main --config=configs/<name>.py [--config.key=value] --workdir=DIR`.

Kept short on purpose: it parses the config and hands it to `prm_jax.run.run`.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from prm_jax import config_utils, run

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for outputs, checkpoints and logs.")


def _parse_flags(argv):
    try:
        config_utils.check_overrides(argv)
    except (config_utils.ConfigKeyError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    return app.parse_flags_with_usage(argv)


def main(argv):
    if not flags.FLAGS["verbosity"].present:  # library INFO logs (orbax, XLA) drown the progress
        logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    if _CONFIG.value is None or _WORKDIR.value is None:
        sys.exit("error: --config and --workdir are required")
    try:
        run.run(_CONFIG.value, _WORKDIR.value)
    except run.USER_ERRORS as e:
        sys.exit(f"error: {type(e).__name__}: {e}")


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
