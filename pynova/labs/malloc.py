"""Lab malloc (the course's lab 11): malloc and free in user space, in C,
on the nbrk system call.

The student's ``malloc.c`` is generated from the marked region of pynova's
own allocator, pynova/user/libc/malloc.c. Each check is a user program of
``malloc_checks/``, built with the student's file in place of the libc's
``malloc.c`` and run on the kernel; it prints what it saw (``check: ...``
lines, see cprogram.py) and the check says what went wrong in the
allocator's terms: block sizes, headers, the free list, the break.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pynova.labs import cprogram
from pynova.labs.cprogram import Event, ProgramRun, ended_early, failure
from pynova.labs.lab import Check, CheckContext, CheckFailed, Lab, WorkspaceFile
from pynova.labs.limits import Limits

STUDENT_FILE = "malloc.c"
CHECKS_DIR = Path(__file__).resolve().parent / "malloc_checks"
#: The course's kernel takes its frames from a 16 MiB pool.
MEM = 16 << 20
#: Wall-clock limit of one check program's run (its own limit, seconds).
RUN_TIMEOUT = 3.0
#: A check builds (about a second; more on a busy machine) and runs.
CHECK_TIMEOUT = RUN_TIMEOUT + 15.0
#: What pynova's design keeps of the heap above the last used block.
TRIM_SLACK = 16 << 10
HEADER, ALIGN, USED = 4, 8, 1


def run(ctx: CheckContext, name: str, **limits: object) -> ProgramRun:
    source = CHECKS_DIR / f"{name}.c"
    mem = limits.get("mem", ctx.limits.mem)
    assert isinstance(mem, int)
    hint = (f"pynova build {source} {STUDENT_FILE} -o {name} && "
            f"pynova run {name} --mem {mem >> 20}M")
    return cprogram.run_program(ctx, source, STUDENT_FILE, hint=hint, **limits)


def hexrange(p: int, n: int) -> str:
    return f"[{p:#x}, {p + n:#x})"


# ------------------------------------------------- pynova's block design
def header_size(header: int) -> int | None:
    """The block size a header word holds in pynova's design (a multiple
    of 8, at least 16, bit 0 for USED), or None when it holds no such
    size (another design, or no header read)."""
    size = header & ~USED
    if header == 0 or size % ALIGN or size < 16:
        return None
    return size


def overlap_cause(lower: Event, upper: Event, names: tuple[str, str]) -> str:
    """Why the block ``lower`` (at the lower address) overlaps ``upper``,
    read from the header words before them."""
    size = header_size(lower["hdr"])
    low, high = names
    if size is not None:
        start = lower["p"] - HEADER
        end = start + size
        if end > upper["p"] - HEADER:
            return (f"the header before {low} says its block is {size} bytes, "
                    f"{hexrange(start, size)}, so it covers {high}: the split that handed "
                    f"out {low} did not shrink its size (after a split, the part handed "
                    f"out gets its new size in its header and footer, step 2)")
        if lower["p"] + lower["n"] > end - HEADER:
            return (f"the header before {low} says its block is {size} bytes, too small for "
                    f"the {lower['n']} bytes asked plus {2 * HEADER} of header and footer "
                    f"(block_size, step 1)")
    return ("malloc handed out memory that a live block still holds: a block is given "
            "out only while it is free (is a block on the free list twice? does split cut "
            "at b + size?)")


def header_evidence(run: ProgramRun) -> str:
    """A cause read from the header words a program printed after each
    malloc (pynova's design): a block smaller than the bytes asked for
    plus header and footer, or a live block whose size covers another."""
    live: dict[int, Event] = {}
    for e in run.events:
        if e.kind == "malloc" and e.fields.get("p") and "hdr" in e.fields:
            size = header_size(e["hdr"])
            if size is not None and size < e["n"] + 2 * HEADER:
                return (f"the header before the block of malloc({e['n']}) at {e['p']:#x} says "
                        f"its block is {size} bytes, too small for {e['n']} bytes plus "
                        f"{2 * HEADER} of header and footer: the program's bytes overwrite "
                        f"the next block's header (block_size adds OVERHEAD, step 1)")
            live[e["id"]] = e
        elif e.kind in ("free", "freed") and "id" in e.fields:
            live.pop(e["id"], None)
    blocks = sorted(live.values(), key=lambda e: e["p"])
    for lower, upper in zip(blocks, blocks[1:], strict=False):
        size = header_size(lower["hdr"])
        if size is not None and lower["p"] - HEADER + size > upper["p"] - HEADER:
            return overlap_cause(lower, upper, (f"block {lower['id']}", f"block {upper['id']}"))
    return ""


def stopped(run: ProgramRun, doing: str, why: str = "") -> CheckFailed:
    """The program did not get to its end (cprogram.ended_early), with a
    cause from the headers when they show one."""
    return ended_early(run, doing, why or header_evidence(run))


def step_text(run: ProgramRun, step: int) -> str:
    """What the overlap program did at ``step``: 'malloc(40) as block 12'."""
    for e in run.events:
        if e.fields.get("step") == step and e.kind == "malloc":
            return f"malloc({e['n']}) as block {e['id']}"
        if e.fields.get("step") == step and e.kind == "free":
            return f"free(block {e['id']})"
    return f"step {step}"


# --------------------------------------------------------------- checks
def check_basic(ctx: CheckContext) -> None:
    r = run(ctx, "basic")
    start = r.first("start")
    for m in r.all("malloc"):
        n, p = m["n"], m["p"]
        if p == 0:
            stayed = start is not None and m["brk"] == start["brk"]
            raise failure(r, f"malloc({n}) to return a block", "NULL" + (
                f" (the break stayed at {m['brk']:#x})" if stayed
                else f" (the break is {m['brk']:#x})"),
                "malloc hands out nothing until block_size gives a size (step 1) and "
                "grow moves the break up with nbrk and place returns the payload (step 2)")
        if start is not None and not (start["brk"] <= p and p + n <= m["brk"]):
            raise failure(r, f"malloc({n})'s block to lie in the heap, between the first "
                          f"break {start['brk']:#x} and the break {m['brk']:#x}",
                          hexrange(p, n), "memory above the break is not mapped, and below "
                          "the heap lies the program's own data")
    if not r.done:
        last = r.last
        doing = "writing and reading its block" if last and last.kind == "malloc" else \
            "free" if last and last.kind == "verify" else "malloc"
        raise stopped(r, doing)
    for v in r.all("verify"):
        if v["bad"] >= 0:
            raise failure(r, f"block {v['id']} to read back what was written",
                          f"byte {v['bad']} differs", "nothing else runs between the write "
                          "and the read: the block must be plain memory of the program")


def check_align(ctx: CheckContext) -> None:
    r = run(ctx, "align")
    blocks = r.all("malloc")
    for i, m in enumerate(blocks):
        n, p = m["n"], m["p"]
        if p == 0:
            raise failure(r, f"malloc({n}) to return a block", "NULL",
                          "a 16 MiB machine has room for all of these blocks")
        if p % ALIGN == 0:
            continue
        why = "a payload must start at a multiple of 8 (headers at 4 mod 8)"
        if i > 0:
            prev = blocks[i - 1]
            gap = p - prev["p"]
            if gap % ALIGN:
                why = (f"the block before it, malloc({prev['n']}) at {prev['p']:#x}, takes "
                       f"{gap} bytes, not a multiple of 8, so every block after it is off: "
                       f"round block sizes up to a multiple of 8 (block_size, step 1)")
        raise failure(r, f"malloc({n}) to return a multiple of 8", f"{p:#x}", why)
    if not r.done:
        raise stopped(r, "the mallocs")


def check_overlap(ctx: CheckContext) -> None:
    r = run(ctx, "overlap")
    if (o := r.first("overlap")) is not None and len(r.all("block")) >= 2:
        new, old = r.all("block")[:2]
        lower, upper = sorted((new, old), key=lambda e: e["p"])
        names = (f"block {lower['id']}", f"block {upper['id']}")
        raise failure(
            r, "blocks that are live at the same time to share no byte",
            f"blocks {old['id']} and {new['id']} overlap: {hexrange(old['p'], old['n'])} and "
            f"{hexrange(new['p'], new['n'])} (block {new['id']} came from "
            f"{step_text(r, o['step'])} while block {old['id']} was live)",
            overlap_cause(lower, upper, names))
    if (c := r.first("corrupt")) is not None and r.all("block"):
        block = r.all("block")[-1]
        addr = block["p"] + c["off"]
        size = header_size(block["hdr"])
        why = ("the allocator wrote into memory that is handed out: a header, footer or "
               "free-list link written at a wrong address, or a block smaller than its n "
               "bytes plus header and footer")
        if size is not None and block["p"] + block["n"] > block["p"] - HEADER + size - HEADER:
            why = (f"the header before block {c['id']} says its block is {size} bytes, too "
                   f"small for {block['n']} bytes plus header and footer (step 1)")
        raise failure(
            r, f"the bytes of live block {c['id']} {hexrange(block['p'], block['n'])} to stay "
               f"as written",
            f"after {step_text(r, c['step'])}, its byte {c['off']} ({addr:#x}) is "
            f"{c['got']:#04x}, not {c['want']:#04x}", why)
    for m in r.all("malloc"):
        if m["p"] == 0:
            raise failure(r, f"malloc({m['n']}) (block {m['id']}) to return a block", "NULL",
                          "the program asks for less than 3 KiB at a time on a 16 MiB machine")
    if not r.done:
        raise stopped(r, "its mallocs and frees")


def check_reuse(ctx: CheckContext) -> None:
    r = run(ctx, "reuse")
    before = r.first("before")
    if before is None or not r.done:
        if (m := r.first("malloc")) is not None:
            raise failure(r, "malloc(64) to return a block", f"NULL (round {m['round']})")
        raise stopped(r, "the frees and mallocs")
    freed = r.first("freed")
    for rnd in r.all("round"):
        if rnd["brk"] <= before["brk"]:
            continue
        outside = (f"; {rnd['outside']} of the 32 new blocks lie outside the freed ones "
                   f"{hexrange(before['lo'], before['hi'] - before['lo'])}, e.g. "
                   f"{rnd['example']:#x}") if rnd["outside"] else ""
        raise failure(
            r, f"32 new blocks of 64 bytes to come from the 32 just freed: the break to stay "
               f"at {before['brk']:#x}",
            f"in round {rnd['r']} the break grew to {rnd['brk']:#x}{outside}",
            _no_reuse_cause(before["hdr"], freed["hdr"] if freed else 0))


def _no_reuse_cause(before: int, after: int) -> str:
    if header_size(before) is not None and before & USED:
        if after == before:
            return (f"free did nothing to the block: its header still says {after:#x} "
                    f"(USED) after free; free must mark it free and put it on the free "
                    f"list (step 3)")
        if not after & USED:
            return ("free marked the block free, but malloc did not take it again: malloc "
                    "must search the free list (find_fit) before it grows the heap (step 3)")
    return ("free must put the block on the free list, and malloc must look there before "
            "it grows the heap (step 3)")


SCENARIOS = {
    "next": ("two neighbours, the upper one first",
             "free did not merge the block with the free block after it: when the next "
             "block (bnext) is free, coalesce takes it off the list and adds its size "
             "(step 4)"),
    "prev": ("two neighbours, the lower one first",
             "free did not merge the block with the free block before it: the footer right "
             "below a block says whether the block before it is free; coalesce then takes "
             "that one off the list and starts the merged block there (step 4)"),
    "both": ("three neighbours, the middle one last",
             "free did not merge the block with both free neighbours at once: the merged "
             "size is all three sizes, written in the lowest header and the highest footer "
             "(step 4)"),
}


def check_coalesce(ctx: CheckContext) -> None:
    r = run(ctx, "coalesce")
    if (m := r.first("malloc")) is not None:
        raise failure(r, f"malloc({m['n']}) to return a block", "NULL")
    if len(r.all("scenario")) < len(SCENARIOS):
        raise stopped(r, "the frees and mallocs")
    bad = []
    for s in r.all("scenario"):
        lo, hi, p, want = s["lo"], s["hi"], s["p"], s["want"]
        if p == 0 or s["after"] > s["brk"] or not (lo <= p and p + want <= hi):
            bad.append(s)
    if bad:
        s = bad[0]
        what, why = SCENARIOS[s.word("name")]
        count = 3 if s.word("name") == "both" else 2
        grew = f"; the break grew from {s['brk']:#x} to {s['after']:#x}" \
            if s["after"] > s["brk"] else ""
        others = [b.word("name") for b in bad[1:]]
        note = f" (the scenarios {', '.join(others)} failed too)" if others else ""
        raise failure(
            r, f"after freeing {what} (20000 bytes each): malloc({s['want']}), which fits "
               f"only in the {count} merged, to come from them "
               f"{hexrange(s['lo'], s['hi'] - s['lo'])}, without growing the heap",
            ("NULL" if s["p"] == 0 else f"{s['p']:#x}") + grew + note, why)
    if not r.done:
        raise stopped(r, "the frees and mallocs")


def check_trim(ctx: CheckContext) -> None:
    r = run(ctx, "trim")
    small, big, freed = r.first("small"), r.first("big"), r.first("freed")
    again = r.first("again")
    for event, n in ((small, 16), (big, 65536)):
        if event is None:
            raise stopped(r, f"malloc({n})")
        if event["p"] == 0:
            raise failure(r, f"malloc({n}) to return a block", "NULL")
    assert small is not None and big is not None
    if freed is None:
        raise stopped(r, "free of the 65536-byte block")
    top = big["brk"]
    if freed["brk"] >= top:
        raise failure(
            r, f"the break to move down when the 65536-byte block at the top of the heap "
               f"{hexrange(big['p'], big['n'])} is freed",
            f"it stayed at {freed['brk']:#x}",
            "free must give a free block at the top of the heap (the epilogue follows it) "
            "back to the kernel: nbrk with a lower address (trim, step 5)")
    if freed["brk"] < small["p"] + 16:
        raise failure(
            r, f"the break to stay above the live 16-byte block {hexrange(small['p'], 16)}",
            f"free moved it down to {freed['brk']:#x}",
            "trim gave back memory still in use: only a free block with the epilogue "
            "right after it may go back")
    if freed["brk"] - big["p"] > TRIM_SLACK:
        raise failure(
            r, f"most of the 64 KiB back: the break at most {TRIM_SLACK >> 10} KiB above "
               f"where the block started ({big['p']:#x})",
            f"it went down only to {freed['brk']:#x}",
            "trim moves the break down to right above the last block still in use")
    if r.first("touched") is None:
        fault = r.result.fault
        if again is not None and again["p"] and fault is not None and fault.vector == 14 \
                and fault.cr2 >= freed["brk"] and again["brk"] <= freed["brk"]:
            raise failure(
                r, f"malloc(65536) after the trim to return memory below the break "
                   f"{again['brk']:#x}",
                f"{hexrange(again['p'], again['n'])}: writing it faulted at {fault.cr2:#x}",
                "malloc handed out the block it had given back to the kernel: trim must take "
                "the block off the free list before it moves the break down")
        if again is not None and again["p"] == 0:
            raise failure(r, "malloc(65536) after the trim to return a block", "NULL")
        raise stopped(r, "malloc(65536) again after the trim and writing it")
    more = r.first("more")
    if more is not None and more["overlap"]:
        raise failure(
            r, "malloc(100) after the trim to share no byte with the live blocks",
            f"{hexrange(more['p'], 100)} overlaps " + (
                f"the block of malloc(65536) {hexrange(again['p'], again['n'])}"
                if again and more["p"] < again["p"] + again["n"] and again["p"] < more["p"] + 100
                else f"the block of malloc(16) {hexrange(small['p'], 16)}"),
            "a block given back to the kernel is still on the free list and was handed "
            "out twice: trim must take it off the list before it moves the break down")
    if not r.done:
        raise stopped(r, "free and writing the first block again",
                      "the break went below a block still in use")


def check_sizes(ctx: CheckContext) -> None:
    r = run(ctx, "sizes")
    blocks = r.all("malloc")
    live = []
    for m in blocks:
        n, p = m["n"], m["p"]
        if n and p == 0:
            raise failure(r, f"malloc({n}) to return a block", "NULL",
                          "a 16 MiB machine has room for every block of this check; a block "
                          "bigger than what the heap grows by at least needs a bigger nbrk")
        if p % ALIGN:
            raise failure(r, f"malloc({n}) to return a multiple of 8", f"{p:#x}",
                          "round block sizes up to a multiple of 8 (step 1)")
        if p:
            live.append(m)
    live.sort(key=lambda e: e["p"])
    for a, b in zip(live, live[1:], strict=False):
        if a["p"] + a["n"] > b["p"]:
            raise failure(r, "blocks that are live at the same time to share no byte",
                          f"malloc({a['n']}) {hexrange(a['p'], a['n'])} and malloc({b['n']}) "
                          f"{hexrange(b['p'], b['n'])} overlap",
                          "a block must be at least n bytes plus header and footer")
    if (c := r.first("corrupt")) is not None:
        m = blocks[c["id"]]
        raise failure(r, f"the bytes of malloc({m['n']}) to stay as written",
                      f"byte {c['off']} changed while the other blocks were taken",
                      "the allocator wrote into a block that is handed out")
    for h in r.all("huge"):
        if h["p"]:
            raise failure(
                r, f"malloc({h['n']:#x}) to return NULL: no pynova machine has that much "
                   f"memory", f"{h['p']:#x}",
                "n plus the header and footer wraps around 2^32 and looks small: refuse n "
                "> MAX_REQUEST before adding to it (block_size, step 1)")
    if (c := r.first("calloc")) is not None and c["p"]:
        raise failure(r, f"calloc({c['count']:#x}, {c['size']:#x}) to return NULL",
                      f"{c['p']:#x}", "count * size overflows 32 bits: calloc must check")
    if not r.done:
        doing = "the frees" if r.first("huge") is not None else "the mallocs"
        if r.first("freed") is not None:
            doing = "free(NULL)"
        raise stopped(r, doing, "free(NULL) does nothing" if doing == "free(NULL)"
                          else "")


def check_oom(ctx: CheckContext) -> None:
    r = run(ctx, "oom")
    tries, mallocs = r.all("try"), r.all("malloc")
    if len(mallocs) < len(tries):
        t = tries[-1]
        fault = r.result.fault
        if fault is not None and fault.vector == 14 and fault.cr2 >= t["brk"]:
            raise failure(
                r, f"malloc({t['n']}) to return NULL when the kernel has no memory left",
                f"it faulted writing {fault.cr2:#x}, above the break {t['brk']:#x}, "
                f"in {cprogram.where(r, fault.eip)}",
                "the kernel refused to move the break (nbrk returned 0: out of memory) and "
                "malloc used the memory anyway: when nbrk returns 0, return NULL (grow, "
                "step 2)")
        raise stopped(r, f"malloc({t['n']}) number {t['id'] + 1}")
    if mallocs and mallocs[0]["p"] == 0:
        raise failure(r, f"malloc({tries[0]['n']}) to return blocks until the memory is used up",
                      "NULL at once", "a 16 MiB machine has room for about 50 such blocks")
    if not mallocs or mallocs[-1]["p"] != 0:
        if not r.done and mallocs:
            raise stopped(r, "writing every page of the blocks")
        raise failure(r, "malloc(262144) to return NULL once the 16 MiB machine's memory is "
                      "used up", f"{len(mallocs)} blocks without NULL",
                      "when nbrk returns 0, malloc must return NULL")
    again = r.first("again")
    if again is not None and again["p"] == 0:
        freed = r.first("freed")
        count = freed["count"] if freed else 0
        raise failure(r, f"malloc(262144) to succeed again after the {count} blocks were freed",
                      "NULL", "freed memory must be used again (step 3)")
    if not r.done:
        raise stopped(r, "free, and malloc again after running out")


STRESS_PROBLEMS = {
    "null": "returned NULL with far less than the machine's memory in use",
    "misaligned": "returned an address that is not a multiple of 8 (step 1)",
    "calloc-not-zero": "returned memory that is not zero (calloc = malloc + memset)",
    "realloc-lost": "did not keep the block's bytes (realloc copies or extends the block)",
}


def check_stress(ctx: CheckContext) -> None:
    r = run(ctx, "stress")
    seed = r.first("seed")
    what = f"the seeded run (seed {seed['value']:#x})" if seed else "the seeded run"
    if (p := r.first("problem")) is not None:
        kind, op = p.word("what"), p.word("op")
        at = f"step {p['step']}: {op} of slot {p['slot']} ({p['n']} bytes)"
        if kind == "overlap" and (other := r.first("other")) is not None:
            mine = Event("block", {"p": p["p"], "n": p["n"], "hdr": p["hdr"]}, "")
            lower, upper = sorted((mine, other), key=lambda e: e["p"])
            names = ("the lower block", "the upper block")
            raise failure(r, f"{what}: live blocks to share no byte",
                          f"{at} returned {hexrange(p['p'], p['n'])}, which overlaps slot "
                          f"{other['slot']} {hexrange(other['p'], other['n'])}",
                          overlap_cause(lower, upper, names))
        if kind == "corrupt":
            raise failure(r, f"{what}: the bytes of every live block to stay as written",
                          f"by step {p['step']} the block of slot {p['slot']} "
                          f"{hexrange(p['p'], p['n'])} had changed (blocks are checked every "
                          f"64 steps)",
                          "the allocator wrote into a block that is handed out: a header, "
                          "footer or link at a wrong address")
        raise failure(r, f"{what}: every call to work", f"{at} {STRESS_PROBLEMS.get(kind, kind)}")
    if not r.done:
        raise stopped(r, what)


def _check(name: str, score: int, fn: Callable[[CheckContext], None],
           needs: Sequence[str] = ()) -> Check:
    return Check(name, score, fn, tuple(needs), timeout=CHECK_TIMEOUT)


BASIC = "step 1-2: malloc returns usable memory"
OVERLAP = "step 2: live blocks never overlap"
REUSE = "step 3: freed memory is used again"

README = """\
Write `malloc` and `free` for pynova's user programs, in C, on the `nbrk`
system call; `calloc` and `realloc` are given and use your functions. The
file is pynova's own allocator with the steps taken out: a row of blocks
with a header and a footer each, a free list, coalescing, and memory given
back to the kernel. You may also write an allocator of your own design: the
checks use only `malloc`, `free`, `calloc`, `realloc` and `nbrk(0)`.

1. `block_size`: the block for n bytes, header and footer added, rounded
   up to 8 (checked: usable memory, alignment, many sizes)
2. `grow`, `split`, `place`: the heap grows with `nbrk`, a free block is
   cut to size (usable memory, no overlap, out of memory)
3. `find_fit`, `release`: freed blocks go on the free list and are used
   again (reuse)
4. `coalesce`: free neighbours merge (coalescing)
5. `trim`: a free block at the top of the heap goes back to the kernel
   (memory given back)

A check builds one of pynova's test programs with your `malloc.c` in place
of the libc's and runs it; a failure says what was expected, what happened
and why, and how to build and run that program yourself. Your own test
program: `pynova build mytest.c malloc.c -o mytest && pynova run mytest`
(your `malloc.c`, given first, takes the place of the libc's). The full
assignment is docs/labs/malloc.md.
"""

LAB = Lab(
    name="malloc",
    title="malloc and free on nbrk",
    summary="the heap allocator of pynova's libc, in C: sizes, splitting, reuse, "
            "coalescing, giving memory back",
    files=(WorkspaceFile(STUDENT_FILE, "user/libc/malloc.c"),),
    readme=README,
    checks=(
        _check(BASIC, 1, check_basic),
        _check("step 1: every block is 8-byte aligned", 1, check_align, [BASIC]),
        _check(OVERLAP, 2, check_overlap, [BASIC]),
        _check(REUSE, 2, check_reuse, [BASIC]),
        _check("step 4: free neighbours coalesce", 2, check_coalesce, [REUSE]),
        _check("step 5: the top of the heap goes back to the kernel", 1, check_trim,
               [REUSE]),
        _check("many sizes, from 0 to 3 MiB", 1, check_sizes, [BASIC]),
        _check("out of memory: malloc returns NULL", 1, check_oom, [BASIC]),
        _check("stress: a seeded random run of malloc, calloc, realloc, free", 2,
               check_stress, [OVERLAP, REUSE]),
    ),
    loader=cprogram.load_c_files,
    program_builder=cprogram.builder_for(STUDENT_FILE),
    limits=Limits(mem=MEM, max_insns=None, timeout=RUN_TIMEOUT),
)
