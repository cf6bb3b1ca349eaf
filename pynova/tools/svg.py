"""A picture of an address space (SVG): the virtual address space beside
physical memory, boxes in address order (not to scale; gaps marked), with
an arrow for every mapped range, as the seed's "graphical representation"
slides draw it."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from pynova.kernel import layout
from pynova.tools.maps import AddressSpace, Range

BOX_H, GAP_H, TOP = 30, 16, 70
VX, PX, BOX_W, WIDTH = 30, 520, 330, 880
COLORS = {"text": "#cfe3ff", "data": "#d8f5d0", "heap": "#fff1b8", "stack": "#ffd9c2",
          "kernel": "#e0e0e0", "module": "#e8d9ff", "ptab": "#ffc9d6", "frame": "#d8f5d0",
          "free": "#ffffff"}
KERNEL_PARTS = [(layout.MBI_PHYS, layout.MBI_PHYS + 0x1000, "Multiboot info"),
                (layout.GDT_PHYS, layout.IDT_PHYS, "GDT"),
                (layout.IDT_PHYS, layout.TSS_PHYS, "IDT"),
                (layout.TSS_PHYS, layout.STUBS_PHYS, "TSS"),
                (layout.STUBS_PHYS, layout.KSTACK_PHYS, "entry/exit stubs"),
                (layout.KSTACK_PHYS, layout.KSTACK_TOP_PHYS, "kernel stack"),
                (layout.KERNEL_PD_PHYS, layout.KERNEL_END, "kernel page directory")]


@dataclass(frozen=True)
class Box:
    start: int
    end: int
    label: str
    kind: str


def virtual_boxes(space: AddressSpace) -> list[Box]:
    stacks = {t.stack_top - 1 for t in space.threads}
    boxes = []
    for r in space.ranges:
        if any(r.virt <= s < r.end for s in stacks):
            kind = "stack"
        elif r.virt >= space.initial_break:
            kind = "heap"
        else:
            kind = "data" if r.flags & 2 else "text"
        boxes.append(Box(r.virt, r.end, f"{kind} [{r.flag_text}]", kind))
    boxes.append(Box(layout.KERNEL_BASE, 1 << 32, "kernel half (supervisor-only)", "kernel"))
    return boxes


def _owner(space: AddressSpace, phys: int) -> str:
    for start, end, name in space.modules:
        if start <= phys < end:
            return f"module {name}"
    return "frame"


def physical_boxes(space: AddressSpace) -> list[Box]:
    boxes = [Box(s, e, label, "kernel") for s, e, label in KERNEL_PARTS]
    boxes.append(Box(space.page_directory, space.page_directory + 0x1000,
                     "page directory", "ptab"))
    boxes += [Box(f, f + 0x1000, "page table", "ptab") for f in space.page_tables]
    boxes += [Box(r.phys, r.phys + r.size, _owner(space, r.phys),
                  "module" if _owner(space, r.phys) != "frame" else "frame")
              for r in space.ranges]
    for start, end, name in space.modules:
        boxes += [Box(s, e, f"module {name} (not mapped)", "module")
                  for s, e in _uncovered(start, end, boxes)]
    return sorted(boxes, key=lambda b: (b.start, b.end))


def _uncovered(start: int, end: int, boxes: list[Box]) -> list[tuple[int, int]]:
    """Parts of [start, end) that no box covers."""
    parts, pos = [], start
    for b in sorted(boxes, key=lambda b: b.start):
        if b.end <= pos or b.start >= end:
            continue
        if b.start > pos:
            parts.append((pos, b.start))
        pos = max(pos, b.end)
    if pos < end:
        parts.append((pos, end))
    return parts


def place(boxes: list[Box]) -> dict[Box, float]:
    """The y of each box: stacked in address order, a gap mark between
    boxes that are not adjacent."""
    ys: dict[Box, float] = {}
    y, last_end = float(TOP), None
    for b in boxes:
        if last_end is not None and b.start != last_end:
            y += GAP_H
        ys[b] = y
        y += BOX_H
        last_end = b.end
    return ys


def _box_svg(b: Box, x: int, y: float) -> list[str]:
    span = f"{b.start:#010x}-{b.end - 1:#010x}" if b.end <= 1 << 32 else f"{b.start:#010x}-"
    return [f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" '
            f'fill="{COLORS.get(b.kind, "#fff")}" stroke="#333"/>',
            f'<text x="{x + 6}" y="{y + 13}" font-size="11">{escape(span)}</text>',
            f'<text x="{x + 6}" y="{y + 25}" font-size="11">{escape(b.label)}</text>']


def _arrow(r: Range, vy: float, py: float) -> str:
    return (f'<line x1="{VX + BOX_W}" y1="{vy + BOX_H / 2}" x2="{PX}" y2="{py + BOX_H / 2}" '
            f'stroke="#a33" stroke-width="1.5" marker-end="url(#arrow)">'
            f'<title>{r.virt:#x} -&gt; {r.phys:#x}</title></line>')


def render(space: AddressSpace, title: str = "address space") -> str:
    """The SVG document (a string)."""
    vboxes, pboxes = virtual_boxes(space), physical_boxes(space)
    vy, py = place(vboxes), place(pboxes)
    height = int(max([*vy.values(), *py.values(), TOP]) + BOX_H + 40)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="monospace">',
           '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" '
           'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#a33"/></marker></defs>',
           f'<text x="{VX}" y="24" font-size="14">{escape(title)}</text>',
           f'<text x="{VX}" y="{TOP - 10}" font-size="13">virtual</text>',
           f'<text x="{PX}" y="{TOP - 10}" font-size="13">physical</text>']
    for b in vboxes:
        out += _box_svg(b, VX, vy[b])
    for b in pboxes:
        out += _box_svg(b, PX, py[b])
    for r, vb in zip(space.ranges, vboxes[:len(space.ranges)], strict=True):
        pb = next(b for b in pboxes if b.start == r.phys and b.kind in ("module", "frame"))
        out.append(_arrow(r, vy[vb], py[pb]))
    out.append("</svg>")
    return "\n".join(out) + "\n"
