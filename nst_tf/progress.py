"""One progress line: items done / total, time per item, ETA; for optimization steps and frames.

:class:`ProgressLine` keeps the clock and the counts and writes the line: rewritten in place on a
terminal, printed for the first item, about every 10 % and the last one in a log. The time per
item leaves the first item out as soon as there are others (it includes tracing and warm-up).
The clock is a parameter (default :func:`time.monotonic`), so tests drive it with a fake clock
instead of sleeping. Users: :class:`nst_tf.optimize.Progbar` (steps, time per step, loss parts)
and :class:`nst_tf.video.stylize.Progress` (frames, frames per second).

Example:
    >>> import io
    >>> ticks = iter([0.0, 3.0, 4.0, 5.0])           # start, then the end of each item
    >>> line = ProgressLine(3, stream=io.StringIO(), clock=lambda: next(ticks))
    >>> for done in (1, 2, 3):
    ...     seconds = line.advance()
    ...     line.write(done, f"item {done}/3  {format_duration(seconds)}/item"
    ...                f"{line.eta(done, seconds)}")
    >>> print(line.stream.getvalue(), end="")
    item 1/3  3.0s/item  ETA 0:06
    item 2/3  1.0s/item  ETA 0:01
    item 3/3  1.0s/item
"""

import sys
import time


def format_duration(seconds):
    """``"2.5s"``, ``"200ms"`` or ``"40us"``: a time per item at a readable scale."""
    if seconds >= 1.0:
        return f"{seconds:.1f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms"
    return f"{seconds * 1e6:.0f}us"


class ProgressLine:
    """The state and output of one progress line.

    Args:
        total: number of items, or None when unknown (no ETA then).
        stream: where to write (default ``sys.stderr`` at construction).
        clock: a function returning seconds (default :func:`time.monotonic`).
        enabled: False counts and times but writes nothing.
    """

    def __init__(self, total=None, stream=None, clock=time.monotonic, enabled=True):
        self.total, self.enabled = total, enabled
        self.stream = sys.stderr if stream is None else stream
        self.clock = clock
        self.start = clock()
        self.counted = 0
        self._after_first = None
        self.every = max(1, (total or 100) // 10)

    def advance(self):
        """Count one more finished item; returns the seconds per item so far."""
        now = self.clock()
        self.counted += 1
        if self.counted == 1:
            self._after_first = now
            return max(now - self.start, 0.0)
        return max(now - self._after_first, 0.0) / (self.counted - 1)

    def eta(self, done, seconds_per_item):
        """``"  ETA m:ss"`` for the items left after ``done``, or ``""`` (unknown or finished)."""
        if not self.total or done >= self.total or seconds_per_item <= 0:
            return ""
        left = (self.total - done) * seconds_per_item
        return f"  ETA {int(left // 60):d}:{int(left % 60):02d}"

    def _is_terminal(self):
        return getattr(self.stream, "isatty", lambda: False)()

    def write(self, done, line):
        """Show ``line`` for ``done`` items finished."""
        if not self.enabled:
            return
        if self._is_terminal():
            self.stream.write(f"\r{line}   ")
        elif self.counted == 1 or done == self.total or self.counted % self.every == 0:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self):
        """End the line on a terminal."""
        if self.enabled and self.counted and self._is_terminal():
            self.stream.write("\n")
            self.stream.flush()
