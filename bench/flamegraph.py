#!/usr/bin/env python3
"""Fold `perf script` output into stacks and draw them as a static SVG flame graph.

This machine has no FlameGraph tool and no network, so this is a small stand-in for Brendan
Gregg's stackcollapse-perf.pl and flamegraph.pl, standard library only:

- folding: one line per distinct stack, `thread;outermost;...;leaf count`, the thread's name as
  the root frame, kernel frames kept and marked ` [k]`, Rust symbols shortened (hash suffixes
  dropped, generic arguments elided to `<…>`, so instantiations of one function share a box);
- rendering: one box per frame, its width its share of the samples, the frames of each level in
  alphabetical order (as flamegraph.pl does, so the x axis is not time), warm colours for user
  space and blue for the kernel, the full name and share in each box's tooltip; frames under
  MIN_SHARE of the samples are left out (their samples still count in their parent's width), which
  keeps the graph of a busy hub under 100 KB;
- text tables: the frames with the most self time (samples where the frame is the leaf), and
  herald's own frames with the most total time (with everything they call).

Usage:
  perf script --no-inline -i perf.data | bench/flamegraph.py --title T --folded F --svg S
  bench/flamegraph.py --from-folded F --title T --svg S      (draw again from a folded file)
  bench/flamegraph.py --self-test                            (doctests on an embedded sample)
"""

import argparse
import collections
import html
import re
import sys
import zlib

MIN_SHARE = 0.001
"""Frames narrower than this share of all samples are left out: at 1,200 pixels a frame of
0.1 % is 1.2 pixels wide, too narrow to see, and there are thousands of them in a busy hub."""

KERNEL_MARK = " [k]"

RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
SYMBOL_OFFSET = re.compile(r"\+0x[0-9a-f]+$")

SAMPLE = """\
tokio-rt-worker 18835  3059.275702:    2004008 cpu-clock: 
\tffffffff82a0c4e1 tcp_sendmsg_locked+0x7f0 ([kernel.kallsyms])
\tffffffff82a0c4e1 tcp_sendmsg+0x2b ([kernel.kallsyms])
\t           f838f __GI___writev+0x4d (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t          74d32d herald_hub::broker::Broker::dispatch::h0123456789abcdef+0x22d (/herald)
\t          74663e tokio::runtime::task::harness::Harness<T,S>::poll+0x7e (/herald)

tokio-rt-worker 18835  3059.277706:    2004008 cpu-clock: 
\t          74d32d herald_hub::broker::Broker::dispatch+0x22d (/herald)
\t          74663e tokio::runtime::task::harness::Harness<T,S>::poll+0x7e (/herald)

herald-log-writ 18840  3059.277710:    2004008 cpu-clock: 
\t          1234ab [unknown] (/herald)

"""


def shorten(symbol):
    """A Rust symbol without its hash suffix and with generic arguments elided.

    The `<T as Trait>` and `<impl Trait for T>` forms are kept: they say which impl runs.

    >>> shorten("herald_hub::broker::Broker::dispatch::h0123456789abcdef")
    'herald_hub::broker::Broker::dispatch'
    >>> shorten("tokio::runtime::task::harness::Harness<T,S>::poll")
    'tokio::runtime::task::harness::Harness<…>::poll'
    >>> shorten("<tokio::net::tcp::split::WriteHalf as tokio::io::AsyncWrite>::poll_write")
    '<tokio::net::tcp::split::WriteHalf as tokio::io::AsyncWrite>::poll_write'
    >>> shorten("core::ptr::drop_in_place<hyper::Conn<fn() -> u8, Vec<u8>>>")
    'core::ptr::drop_in_place<…>'
    >>> shorten("h::<impl t::Schedule for alloc::sync::Arc<h::Handle>>::schedule")
    'h::<impl t::Schedule for alloc::sync::Arc<…>>::schedule'
    >>> shorten("tcp_sendmsg")
    'tcp_sendmsg'
    """
    symbol = RUST_HASH.sub("", symbol)
    out = []
    i = 0
    while i < len(symbol):
        c = symbol[i]
        if c == "<" and out and (out[-1].isalnum() or out[-1] == "_"):
            depth = 0
            while i < len(symbol):
                c = symbol[i]
                if c == "<":
                    depth += 1
                elif c == ">" and symbol[i - 1] != "-":  # `->` in a fn type closes nothing
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            out.append("<…>")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def frame_name(line):
    """The frame of one `perf script` call-chain line: `ADDR SYMBOL+OFF (DSO)`.

    >>> frame_name("\\tffffffff813ae453 finish_task_switch.isra.0+0x93 ([kernel.kallsyms])")
    'finish_task_switch.isra.0 [k]'
    >>> frame_name("\\t  cfc49e mio::sys::unix::waker::Waker::wake+0x2e (/herald)")
    'mio::sys::unix::waker::Waker::wake'
    >>> frame_name("\\t  1234ab [unknown] (/usr/lib/x86_64-linux-gnu/libc.so.6)")
    '[libc.so.6]'
    """
    _, rest = line.strip().split(None, 1)
    dso = ""
    if rest.endswith(")") and " (" in rest:
        rest, dso = rest[:-1].rsplit(" (", 1)
    symbol = SYMBOL_OFFSET.sub("", rest)
    if symbol == "[unknown]" and dso:
        # Like stackcollapse-perf: an unknown frame is at least named after its object file.
        return "[" + dso.rsplit("/", 1)[-1] + "]"
    if dso.startswith("[kernel") or dso.endswith(".ko"):
        return shorten(symbol) + KERNEL_MARK
    return shorten(symbol)


def fold(lines):
    """Count the distinct stacks of `perf script` output, outermost frame first.

    >>> for stack, n in sorted(fold(SAMPLE.splitlines()).items()): print(n, stack)
    1 herald-log-writ;[herald]
    1 tokio-rt-worker;tokio::runtime::task::harness::Harness<…>::poll;herald_hub::broker::Broker::dispatch
    1 tokio-rt-worker;tokio::runtime::task::harness::Harness<…>::poll;herald_hub::broker::Broker::dispatch;__GI___writev;tcp_sendmsg [k];tcp_sendmsg_locked [k]
    """
    stacks = collections.Counter()
    thread = None
    frames = []
    for line in list(lines) + [""]:
        if not line.strip():
            if thread is not None:
                # ';' separates frames in the folded format; a Rust name never holds one.
                stacks[";".join([thread] + frames[::-1])] += 1
            thread, frames = None, []
        elif line[0] in " \t":
            frames.append(frame_name(line))
        else:
            # `COMM PID [CPU] TIME: PERIOD EVENT:`; the name may hold spaces, the pid cannot.
            head = re.match(r"(.*?)\s+\d+(/\d+)?\s", line)
            thread = head.group(1) if head else line.split()[0]
    return stacks


def read_folded(lines):
    """Stacks from a folded file: `frame;...;leaf count` per line."""
    stacks = collections.Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack:
            stacks[stack] += int(count)
    return stacks


class Frame:
    """One box: a frame reached by one path from the root, with the samples under it."""

    def __init__(self, name):
        self.name = name
        self.samples = 0
        self.children = {}

    def child(self, name):
        if name not in self.children:
            self.children[name] = Frame(name)
        return self.children[name]


def tree(stacks):
    """The stacks merged into one tree, rooted at `all`.

    >>> root = tree({"a;b": 2, "a;c": 1, "d": 1})
    >>> root.samples, root.children["a"].samples, root.children["a"].children["b"].samples
    (4, 3, 2)
    """
    root = Frame("all")
    for stack, count in stacks.items():
        node = root
        node.samples += count
        for name in stack.split(";"):
            node = node.child(name)
            node.samples += count
    return root


def self_times(stacks):
    """Samples per frame where it is the leaf, most first.

    >>> self_times({"a;b": 2, "c;b": 1, "a": 4})
    [('a', 4), ('b', 3)]
    """
    leaves = collections.Counter()
    for stack, count in stacks.items():
        leaves[stack.rsplit(";", 1)[-1]] += count
    return sorted(leaves.items(), key=lambda item: (-item[1], item[0]))


def total_times(stacks, prefix):
    """Samples per frame named with `prefix` that is anywhere on the stack, most first.

    A frame counts once per sample even when it recurses.

    >>> total_times({"t;a::f;b": 2, "t;a::g;a::f": 1, "t;c": 4}, "a::")
    [('a::f', 3), ('a::g', 1)]
    """
    totals = collections.Counter()
    for stack, count in stacks.items():
        for name in set(stack.split(";")):
            if name.startswith(prefix):
                totals[name] += count
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))


def colour(name):
    """A fill that stays the same for a name from one graph to the next (hashed, not random).

    >>> colour("tcp_sendmsg [k]").startswith("rgb(") and colour("x") == colour("x")
    True
    """
    v1, v2 = (zlib.crc32(name.encode()) >> s & 0xFF for s in (0, 8))
    v1, v2 = v1 / 255, v2 / 255
    if name.endswith(KERNEL_MARK):
        return f"rgb({int(60 + 60 * v1)},{int(130 + 60 * v2)},{int(200 + 50 * v1)})"
    return f"rgb({int(205 + 50 * v1)},{int(70 + 150 * v2)},{int(20 + 40 * v1)})"


WIDTH = 1200
FRAME_HEIGHT = 16
FONT_SIZE = 11
CHAR_WIDTH = FONT_SIZE * 0.59  # Verdana's average advance: enough to decide what fits
PAD_TOP = 50
PAD_SIDE = 10
PAD_BOTTOM = 30


def svg(stacks, title, min_share=MIN_SHARE):
    """The flame graph as SVG text.

    >>> doc = svg({"t;a;b": 3, "t;a": 1, "t;tiny": 1}, "demo", min_share=0.3)
    >>> "<title>a (4 samples, 80.00%)</title>" in doc, "tiny" in doc
    (True, False)
    """
    root = tree(stacks)
    total = root.samples or 1
    min_samples = min_share * total
    boxes = []  # (depth, x share, width share, frame)

    def place(node, depth, x):
        boxes.append((depth, x, node.samples / total, node))
        for name in sorted(node.children):
            child = node.children[name]
            if child.samples >= min_samples:
                place(child, depth + 1, x)
            x += child.samples / total

    place(root, 0, 0.0)
    depth_max = max(depth for depth, _, _, _ in boxes)
    height = PAD_TOP + (depth_max + 1) * FRAME_HEIGHT + PAD_BOTTOM
    span = WIDTH - 2 * PAD_SIDE
    out = [
        f'<?xml version="1.0" standalone="no"?>\n'
        f'<svg version="1.1" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'xmlns="http://www.w3.org/2000/svg">\n'
        f"<style>text {{ font-family: Verdana, sans-serif; font-size: {FONT_SIZE}px; }} "
        f".t {{ font-size: 15px; }} .s {{ fill: #555; }}</style>\n"
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#fdfdf5"/>\n'
        f'<text class="t" x="{WIDTH / 2}" y="22" text-anchor="middle">{html.escape(title)}</text>\n'
        f'<text class="s" x="{WIDTH / 2}" y="40" text-anchor="middle">{root.samples} samples; '
        f"frames under {min_share:.1%} of them left out; boxes sorted by name per level; "
        f"blue: kernel [k], warm: user space; hover for names</text>\n"
    ]
    for depth, x, width, node in boxes:
        px, pw = PAD_SIDE + x * span, width * span
        py = height - PAD_BOTTOM - (depth + 1) * FRAME_HEIGHT
        tip = f"{node.name} ({node.samples} samples, {node.samples / total:.2%})"
        out.append(
            f"<g><title>{html.escape(tip)}</title>"
            f'<rect x="{px:.1f}" y="{py}" width="{pw:.1f}" height="{FRAME_HEIGHT - 1}" '
            f'rx="2" fill="{colour(node.name)}"/>'
        )
        fits = int((pw - 6) / CHAR_WIDTH)
        if fits >= 3:
            label = node.name if len(node.name) <= fits else node.name[: fits - 2] + ".."
            out.append(f'<text x="{px + 3:.1f}" y="{py + FRAME_HEIGHT - 4}">{html.escape(label)}</text>')
        out.append("</g>\n")
    out.append("</svg>\n")
    return "".join(out)


def table(stacks, prefix, rows=10):
    """As text: the kernel's share of the samples, the frames with the most self time, and the
    frames named with `prefix` (the project's own code) with the most total time.

    >>> print(table({"t;a;b [k]": 3, "t;a": 1}, "a"))
    kernel (leaf frame [k]): 75.0% of 4 samples
    self %  samples  frame
     75.0%        3  b [k]
     25.0%        1  a
    total %  samples  frame (a*, with what it calls)
     100.0%        4  a
    """
    total = sum(stacks.values()) or 1
    leaves = self_times(stacks)
    kernel = sum(n for name, n in leaves if name.endswith(KERNEL_MARK))
    lines = [f"kernel (leaf frame [k]): {kernel / total:.1%} of {total} samples",
             "self %  samples  frame"]
    for name, n in leaves[:rows]:
        lines.append(f"{n / total:6.1%}  {n:7d}  {name}")
    lines.append(f"total %  samples  frame ({prefix}*, with what it calls)")
    for name, n in total_times(stacks, prefix)[:rows]:
        lines.append(f"{n / total:7.1%}  {n:7d}  {name}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--self-test", action="store_true", help="run the doctests and exit")
    parser.add_argument("--from-folded", metavar="FILE", help="read folded stacks, not perf script")
    parser.add_argument("--folded", metavar="FILE", help="write the folded stacks here")
    parser.add_argument("--svg", metavar="FILE", help="write the flame graph here")
    parser.add_argument("--title", default="Flame graph")
    parser.add_argument("--min-share", type=float, default=MIN_SHARE)
    parser.add_argument("--own-prefix", default="herald_", help="whose frames get a total-time table")
    args = parser.parse_args()
    if args.self_test:
        import doctest

        failures, tests = doctest.testmod()
        print(f"{tests - failures}/{tests} doctests passed")
        return 1 if failures else 0
    if args.from_folded:
        with open(args.from_folded) as f:
            stacks = read_folded(f)
    else:
        stacks = fold(sys.stdin)
    if not stacks:
        print("no samples", file=sys.stderr)
        return 1
    if args.folded:
        with open(args.folded, "w") as f:
            for stack, count in sorted(stacks.items()):
                f.write(f"{stack} {count}\n")
    if args.svg:
        with open(args.svg, "w") as f:
            f.write(svg(stacks, args.title, args.min_share))
    print(table(stacks, args.own_prefix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
