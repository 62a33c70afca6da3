"""What `nnc finetune` shows while it trains: a progress bar of the steps (on a
terminal, rich's) and one line per epoch on stderr; nothing with --quiet."""

from __future__ import annotations

import sys
from contextlib import contextmanager


def epoch_line(epoch) -> str:
    """One epoch's record as a line: loss, holdout agreement/accuracy (exact arithmetic)."""
    parts = [f"epoch {epoch.epoch}: loss {epoch.loss:.4f}"]
    if epoch.agreement is not None:
        parts.append(f"teacher agreement {epoch.agreement:.2%}")
    if epoch.accuracy is not None:
        parts.append(f"accuracy {epoch.accuracy:.2%}")
    if epoch.agreement is None:
        parts.append(f"mse {-epoch.score:.4g}")
    parts.append(f"{epoch.seconds:.1f} s" + ("" if epoch.final else " (sparsity still rising)"))
    return ", ".join(parts)


@contextmanager
def progress_bar(quiet: bool):
    """Yield (on_step(done, total, loss), say(message))."""
    if quiet:
        yield (lambda *a: None), (lambda message: None)
        return
    if not sys.stderr.isatty():
        yield (lambda *a: None), (lambda message: print(f"nnc: {message}", file=sys.stderr, flush=True))
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("steps", total=None, loss="-")

        def on_step(done: int, total: int, loss: float) -> None:
            bar.update(task, completed=done, total=total, loss=f"{loss:.4f}")

        yield on_step, (lambda message: console.print(f"nnc: {message}", highlight=False))
