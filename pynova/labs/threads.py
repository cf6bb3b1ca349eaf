"""Lab threads (the course's lab 12): cooperative threads, thr_create and
thr_yield on a circular queue (docs/labs/threads.md).

The student's file is the marked region of pynova/kernel/threads.py; the
kernel calls the student's functions through its Parts for calls 4 and 5,
and a kernel with a student's thr_yield does not preempt (kernel.py): the
course's threads are cooperative. Each check first calls the student's
code on a booted kernel's ``Threads`` and reads the queue back, then runs
a program of pynova/labs/programs/ with it from ring 3 and compares what
the threads saw with pynova's own run: the step-1 and step-2 checks put
only that step of the student's in the kernel, the others both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pynova.kernel.ec import Ec
from pynova.kernel.kernel import Kernel
from pynova.kernel.parts import PYNOVA, PartError, Parts, word_result
from pynova.kernel.sched import Threads
from pynova.labs import kit
from pynova.labs.cprogram import parse_events
from pynova.labs.kit import function, program
from pynova.labs.lab import Check, CheckContext, Lab, Student, WorkspaceFile, fail
from pynova.labs.programs import build
from pynova.labs.student import student_traceback

STUDENT_FILE = "threads_lab.py"
PROGRAMS = ("hello", "threads", "thr_start", "thr_ring", "thr_regs", "thr_many", "thr_bad")
ERROR = 0xFFFFFFFF
#: A thread the Python-level checks make: it never runs.
EIP, TOP = 0x3000, 0x8000
#: Cooperative runs: only thr_yield changes who runs.
LIMITS = kit.RUN_LIMITS.replace(quantum=None)

CREATE = "step 2: thr_create returns 0; the new thread starts at eip with esp = stack_top"
YIELD = "step 3: thr_yield rotates the circle: the next thread runs"
NEWEST = "a yield right after a create runs the newest thread"
REGS = "every register but eax is the thread's own across thr_yield"
MANY = "many threads: 100, each on its own stack"
BAD = "step 1: bad arguments fail cleanly: kernel addresses, too many threads"


def own_parts(student: Student) -> Parts:
    return PYNOVA._replace(thr_create=function(student, "thr_create"),
                           thr_yield=function(student, "thr_yield"))


def create_only(student: Student) -> Parts:
    return PYNOVA._replace(thr_create=function(student, "thr_create"))


def yield_only(student: Student) -> Parts:
    return PYNOVA._replace(thr_yield=function(student, "thr_yield"))


# ------------------------------------------------- the student's functions
@dataclass
class Tested:
    """A booted kernel (hello, root_invoke done: thread 0 runs) whose
    Threads the student's functions work on; new_thread calls recorded."""

    kernel: Kernel
    threads: Threads
    student: Student
    root: Any
    made: list[tuple[int, int]] = field(default_factory=list)

    @property
    def ready(self) -> list[Ec]:
        return list(self.kernel.sched.ready)

    def thread(self) -> Ec:
        """A thread made by pynova (not queued)."""
        return self.kernel._new_thread(EIP, TOP)

    def queue(self, ecs: Sequence[Ec]) -> None:
        """Make ``ecs`` the circle, ecs[0] the running thread."""
        self.kernel.sched.ready.clear()
        self.kernel.sched.ready.extend(ecs)
        self.kernel.sched.current = ecs[0]

    def create(self, eip: int, stack_top: int) -> int:
        fn = function(self.student, "thr_create")
        try:
            value = fn(self.threads, eip, stack_top)
        except NotImplementedError:
            raise
        except Exception as err:  # noqa: BLE001 - the student's code may raise anything
            raise fail(f"thr_create({eip:#x}, {stack_top:#x}) to return 0 or ERROR",
                       f"it raised {type(err).__name__}:\n{self._trace(err)}",
                       "a program can put any 32-bit numbers into esi and edi: thr_create "
                       "answers each call with 0 or ERROR, and never crashes the kernel") \
                from None
        try:
            return word_result("thr_create", value, "ERROR (0xFFFFFFFF)")
        except PartError as err:
            raise fail(err.expected.replace("thr_create", f"thr_create({eip:#x}, "
                                                          f"{stack_top:#x})", 1),
                       err.got, err.why) from None

    def yield_(self) -> None:
        function(self.student, "thr_yield")(self.threads)

    def _trace(self, err: BaseException) -> str:
        trace = student_traceback(err, self.student.files, self.root)
        return trace if trace is not None else f"{type(err).__name__}: {err}"


@contextmanager
def tested(ctx: CheckContext) -> Iterator[Tested]:
    with kit.booted(program("hello"), "hello", parts=own_parts(ctx.student)) as kernel:
        kernel.root_invoke()
        t = Tested(kernel, kernel.threads, ctx.student, ctx.workspace.path)
        new_thread = kernel.threads.new_thread

        def recorded(eip: int, stack_top: int) -> Ec:
            t.made.append((eip, stack_top))
            return new_thread(eip, stack_top)
        kernel.threads.new_thread = recorded
        yield t


def ids(ecs: Sequence[Any]) -> str:
    return "[" + ", ".join(str(ec.id) if isinstance(ec, Ec) else repr(ec) for ec in ecs) + "]"


def queue_text(t: Tested, names: dict[int, str]) -> str:
    return "[" + ", ".join(names.get(ec.id, f"thread {ec.id}") for ec in t.ready) + "]"


# ------------------------------------------------------------ the runs
@dataclass
class ThreadRun:
    """A check program's run with some parts, and pynova's own."""

    name: str
    got: kit.Run
    want: kit.Run

    def events(self, run: kit.Run) -> list[Any]:
        return parse_events(run.output.decode("latin-1"))

    @property
    def alike(self) -> bool:
        return kit.ran_alike(self.got, self.want)


def both(name: str, parts: Parts) -> ThreadRun:
    data = program(name)
    return ThreadRun(name, kit.run(data, name, parts, LIMITS), kit.run(data, name, PYNOVA, LIMITS))


def lines_differ(r: ThreadRun) -> tuple[str, str]:
    """The first line where the two outputs differ: (pynova's, the student's)."""
    want = r.want.output.decode("latin-1").splitlines()
    got = r.got.output.decode("latin-1").splitlines()
    for n, (a, b) in enumerate(zip(want, got, strict=False)):
        if a != b:
            return f"line {n + 1}: {a!r}", f"line {n + 1}: {b!r}"
    if len(got) < len(want):
        return f"line {len(got) + 1}: {want[len(got)]!r}", f"the output ends after {len(got)} " \
                                                           f"lines"
    return "the output to end", f"line {len(want) + 1}: {got[len(want)]!r}"


def run_failure(r: ThreadRun, why: str) -> Exception:
    """The two runs differ: how they ended, the first line that differs."""
    expected, got = lines_differ(r)
    story = ""
    if r.got.fault is not None and r.got.fault != r.want.fault:
        story = kit.fault_story(r.got.fault, r.got.walk) + \
            (f" (in thread {r.got.fault.ec})" if r.got.fault.ec else "") + "; "
    return fail(f"{kit.describe(r.want.result)}; {r.name} printing {expected}",
                f"{kit.describe(r.got.result)}; {r.name} printing {got}", story + why)


# ---------------------------------------------------------------- step 2
def check_create(ctx: CheckContext) -> None:
    with tested(ctx) as t:
        first = t.ready[0]
        got = t.create(EIP, TOP)
        if got != 0:
            raise fail(f"thr_create({EIP:#x}, {TOP:#x}) to return 0",
                       f"{got:#x}" + (" (ERROR)" if got == ERROR else ""),
                       f"{EIP:#x} and {TOP:#x} are user addresses and one thread is alive: "
                       f"0 says the thread was made; ERROR is for arguments in the "
                       f"kernel's half or too many threads")
        if len(t.made) != 1:
            raise fail("one call of threads.new_thread(eip, stack_top)",
                       f"{len(t.made)} calls", "threads.new_thread makes the thread "
                       "(the kernel's Ec, with the registers it starts with); each call "
                       "makes one more")
        eip, stack = t.made[0]
        if (eip, stack) != (EIP, TOP):
            raise fail(f"threads.new_thread({EIP:#x}, {TOP:#x})",
                       f"threads.new_thread({eip:#x}, {stack:#x})",
                       _args_why(eip, stack, first))
        new = t.kernel.ecs[-1]
        ready = t.ready
        if new not in ready:
            raise fail(f"the new thread {new.id} in the ready queue", f"ready = {ids(ready)}",
                       "a thread runs only when it is in the circle: the kernel runs "
                       "ready[0] and a yield turns the circle")
        if ready[0] is not first:
            raise fail(f"thread {first.id}, the creator, still at the head: ready[0]",
                       f"ready = {ids(ready)}", "ready[0] is the running thread: the "
                       "creator goes on running after thr_create returns, so it stays the "
                       "head; the new thread goes behind it")
    r = both("thr_start", create_only(ctx.student))
    if not r.alike:
        raise run_failure(r, "thr_start's new thread prints the esp it started with; pynova's "
                             "own thr_yield runs it")


def _args_why(eip: int, stack: int, creator: Ec) -> str:
    if (eip, stack) == (TOP, EIP):
        return "the arguments are swapped: new_thread(eip, stack_top)"
    if stack == creator.regs.esp:
        return ("the stack is the creator's (its esp): two threads on one stack overwrite "
                "each other's return addresses and locals; the new thread gets the stack "
                "its creator gave it, stack_top (edi of the call)")
    if eip != EIP:
        return "the new thread starts at eip (esi of the call): new_thread(eip, stack_top)"
    return ("the new thread's esp starts at stack_top (edi of the call): its first push goes "
            "right below it, into the stack its creator set aside for it")


# ---------------------------------------------------------------- step 3
def check_yield(ctx: CheckContext) -> None:
    with tested(ctx) as t:
        circle = [t.ready[0]] + [t.thread() for _ in range(3)]
        t.queue(circle)
        for _ in circle:
            before = t.ready
            t.kernel.sched.current = before[0]
            made = len(t.kernel.ecs)
            t.yield_()
            after = t.ready
            want = before[1:] + before[:1]
            if after != want:
                raise fail(f"ready = {ids(want)} after thr_yield with ready = {ids(before)}",
                           f"ready = {ids(after)}",
                           _yield_why(before, after, t.kernel.ecs[made:]))
    r = both("thr_ring", yield_only(ctx.student))
    if not r.alike:
        raise run_failure(r, "in thr_ring, main and three threads yield after every turn: "
                             "they must take their turns in the circle's order, again and "
                             "again")


def _yield_why(before: list[Ec], after: list[Any], made: Sequence[Ec]) -> str:
    head = before[0]
    if after == before:
        return (f"the queue did not change: thread {head.id}, the running thread (ready[0]), "
                f"would run again at once, and no other thread ever runs; move it to the "
                f"back (the circle turns by one)")
    if after == before[-1:] + before[:-1]:
        return (f"the circle turned the wrong way: thread {before[-1].id}, the last, came to "
                f"the head; the head goes to the back, and the second, {before[1].id}, "
                f"becomes the head")
    if made and head not in after:
        return (f"thread {head.id} was replaced by a new thread {made[0].id}: a thread's "
                f"registers are kept in its Ec, so the thread itself must move to the back; a "
                f"new one made at its eip and esp loses every other register (ebx, esi, "
                f"edi, ebp, eflags, the FPU) and its id")
    if len(after) != len(before):
        return ("every thread stays in the circle: a yield only changes the order, "
                "head to the back")
    return "the head goes to the back; every other thread moves up by one"


# ---------------------------------------------------------- both steps
def check_newest(ctx: CheckContext) -> None:
    with tested(ctx) as t:
        main = t.ready[0]
        t.create(EIP, TOP)
        t.create(EIP + 0x10, TOP - 0x400)
        a, b = t.kernel.ecs[-2:]
        names = {main.id: "main", a.id: "A", b.id: "B"}
        want = [main, b, a]
        if t.ready != want:
            raise fail("after main creates A, then B: ready = [main, B, A]",
                       f"ready = {queue_text(t, names)}", _newest_why(t.ready, main, a, b))
        t.yield_()
        if t.ready != [b, a, main]:
            raise fail("after main's thr_yield: ready = [B, A, main]: B, the newest, runs",
                       f"ready = {queue_text(t, names)}",
                       "thr_yield moves the head (main) to the back")
    r = both("threads", own_parts(ctx.student))
    if not r.alike:
        raise run_failure(r, "in threads, main creates A, then B and yields after each step: "
                             "B, the newest, runs first, then A (main, B, A, main, ...)")


def _newest_why(ready: list[Ec], main: Ec, a: Ec, b: Ec) -> str:
    if ready == [main, a, b]:
        return ("thr_create queued the new thread at the back of the circle; the course's "
                "rule puts it right after its creator, ready.insert(1, thread), so that a "
                "yield right after a create runs the newest thread")
    if ready and ready[0] is not main:
        return ("the head, ready[0], is the running thread: main goes on running after "
                "thr_create, and the new thread goes right behind it")
    return "each new thread goes right after its creator: ready.insert(1, thread)"


def check_regs(ctx: CheckContext) -> None:
    r = both("thr_regs", own_parts(ctx.student))
    if r.alike:
        return
    events = r.events(r.got)
    for e in events:
        if e.kind == "self":
            raise run_failure(r, f"the thread that was {e['id']} before its thr_yield came "
                                 f"back as thread {e['now']} (thr_self): the kernel runs the "
                                 f"Ec at ready[0] with the registers saved in it, so the "
                                 f"queue must hold the very Ecs, each once")
        if e.kind == "regs":
            raise run_failure(r, f"thread {e['id']}'s {e.word('reg')} was {e['was']:#x} "
                                 f"before its thr_yield and {e['got']:#x} after: a thread's "
                                 f"registers are kept in its Ec while others run, so "
                                 f"thr_yield must move the Ec itself in the circle (never a "
                                 f"new one made at its eip and esp, nor another's)")
    raise run_failure(r, unfinished(events, 2) or "thr_regs's threads each load their own "
                                                  "patterns into the registers, yield, and "
                                                  "check them")


def check_many(ctx: CheckContext) -> None:
    r = both("thr_many", own_parts(ctx.student))
    if r.alike:
        return
    why = "main creates 100 threads, each on its own stack, and yields until all have " \
          "taken two turns and ended: the first turns run from the newest (100) down to " \
          "the first (1)"
    many = next((e for e in r.events(r.got) if e.kind == "many"), None)
    if many is not None and many.fields.get("made") != 100:
        why = f"thr_create made {many['made']} of the 100 threads: 100 are far fewer than " \
              f"threads.max_ready, and each has a stack of its own; " + why
    else:
        why = (unfinished(r.events(r.got), 100) + "; " if many is not None else "") + why
    raise run_failure(r, why.removeprefix("; "))


def unfinished(events: Sequence[Any], threads: int) -> str:
    """Why the threads a program made did not all end, from its last line."""
    last = next((e for e in reversed(events) if "finished" in e.fields), None)
    if last is None or last["finished"] == threads:
        return ""
    return (f"only {last['finished']} of the {threads} threads got to their end: main "
            f"yields again and again, and each thr_yield must hand the CPU to the next "
            f"thread of the circle")


# ---------------------------------------------------------------- step 1
BAD_ARGS = ((0xC0000000, TOP, "eip 0xc0000000 is the kernel's first byte"),
            (0xFFFFFFFF, TOP, "eip 0xffffffff lies in the kernel's half"),
            (EIP, 0xC0001000, "stack_top 0xc0001000 lies in the kernel's half: the "
                              "thread's pushes would go to the kernel's pages"),
            (EIP, 0xFFFFFFF0, "stack_top 0xfffffff0 lies in the kernel's half"))


def check_bad(ctx: CheckContext) -> None:
    with tested(ctx) as t:
        for eip, top, why in BAD_ARGS:
            refused(t, eip, top, why + ": a user thread runs and keeps its stack below "
                                       "USER_END (0xC0000000)")
        fine = ((0xBFFFFFFF, 0xC0000000), (0x1000, 0x2000))
        for eip, top in fine:
            got = t.create(eip, top)
            if got != 0:
                raise fail(f"thr_create({eip:#x}, {top:#x}) to return 0", f"{got:#x}",
                           f"{eip:#x} is a user address, and a stack whose top is "
                           f"{top:#x} lies below it: the thread's first push goes to "
                           f"{top - 4:#x}")
        while len(t.ready) < t.threads.max_ready:
            if t.create(EIP, TOP) != 0:
                raise fail(f"thr_create to make threads up to threads.max_ready "
                           f"({t.threads.max_ready}) in all",
                           f"ERROR with {len(t.ready)} threads in the circle",
                           "ERROR is for bad arguments and a full circle only")
        refused(t, EIP, TOP, f"{len(t.ready)} threads are in the circle: threads.max_ready, "
                             f"as many as a task may have")
    r = both("thr_bad", create_only(ctx.student))
    if not r.alike:
        raise run_failure(r, "thr_bad asks for threads at kernel addresses: each call "
                             "returns 0xffffffff, and main goes on as the only thread")


def refused(t: Tested, eip: int, top: int, why: str) -> None:
    before, made = t.ready, len(t.kernel.ecs)
    got = t.create(eip, top)
    if got != ERROR:
        raise fail(f"thr_create({eip:#x}, {top:#x}) to return ERROR (0xffffffff)",
                   f"{got:#x}", why)
    if t.ready != before or len(t.kernel.ecs) != made:
        raise fail(f"thr_create({eip:#x}, {top:#x}) to change nothing",
                   f"ready = {ids(t.ready)} (was {ids(before)}), "
                   f"{len(t.kernel.ecs) - made} thread(s) made",
                   "check the arguments first, then make the thread: a refused call "
                   "leaves no thread behind (a thread made and not queued is a thread "
                   "that never runs and never ends)")


# ----------------------------------------------------------------- lab
def kernel_options(student: Student) -> dict[str, object]:
    return {"parts": own_parts(student), "poison_frames": True}


def prepare() -> None:
    build(PROGRAMS)


README = """\
The course's lab 12: cooperative threads. A task's threads form a
circle, `threads.ready` (a deque): its head, `ready[0]`, is the thread
that runs. Two system calls change it:

1. `thr_create(threads, eip, stack_top)` (call 4) refuses arguments that
   cannot be a user thread (an eip or a stack in the kernel's half, from
   0xC0000000) and a full circle (`threads.max_ready`) with ERROR
   (0xFFFFFFFF), changing nothing;
2. otherwise it makes the thread, `threads.new_thread(eip, stack_top)`,
   puts it right after its creator in the circle (so that a yield right
   after a create runs the newest thread) and returns 0;
3. `thr_yield(threads)` (call 5) turns the circle by one: the running
   thread goes to the back and the next one runs.

The kernel does the rest: it keeps every register of a thread that
enters it in the thread's Ec, runs the head of the queue and loads its
registers. With your thr_yield in place the kernel does not preempt (the
course's threads are cooperative), so only your code decides who runs.
The checks call your functions and read the queue back, then run
programs whose threads report where they started, the order they ran in
and the registers they found after a yield.
More: docs/labs/threads.md in pynova's sources.
"""

LAB = Lab(
    name="threads",
    title="cooperative threads: thr_create and thr_yield",
    summary="a circle of threads: create right after the creator, yield to the next",
    files=(WorkspaceFile(STUDENT_FILE, "kernel/threads.py"),),
    readme=README,
    checks=(
        Check(BAD, 1, check_bad, timeout=2.0),
        Check(CREATE, 2, check_create, timeout=2.0),
        Check(YIELD, 2, check_yield, timeout=2.0),
        Check(NEWEST, 2, check_newest, needs=(CREATE, YIELD), timeout=2.0),
        Check(REGS, 2, check_regs, needs=(CREATE, YIELD), timeout=2.0),
        Check(MANY, 1, check_many, needs=(CREATE, YIELD), timeout=2.0),
    ),
    parts=("thr_create", "thr_yield"),
    kernel_options=kernel_options,
    prepare=prepare,
    limits=LIMITS,
    try_program="example:threads",
)
