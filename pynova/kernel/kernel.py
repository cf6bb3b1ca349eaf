"""The kernel: boot, root_invoke, the scheduler loop and exception handling.

One ``Kernel`` drives one ``Machine``; many can live in one process. The
functions a lab lets a student write are the kernel's ``parts``
(parts.py); it calls them only through there.
"""

from __future__ import annotations

import collections
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from pynova import __version__
from pynova.kernel import layout
from pynova.kernel.boot import boot_machine, iret_stub_address
from pynova.kernel.ec import Ec, EcState
from pynova.kernel.elf import ElfError
from pynova.kernel.exceptions import Fault, kernel_report_lines, report_lines
from pynova.kernel.kalloc import Kalloc, OutOfMemory
from pynova.kernel.limits import Limits, TimeUp, Watchdog, raise_in_thread
from pynova.kernel.parts import PYNOVA, Parts, check_queue
from pynova.kernel.pd import Pd
from pynova.kernel.ptab import Ptab
from pynova.kernel.root_task import BootModule, RootTask
from pynova.kernel.sched import RoundRobin, Threads
from pynova.kernel.syscall import Syscalls
from pynova.machine import Machine
from pynova.machine.cpu import Trap, TrapKind
from pynova.machine.multiboot import BootInfo

#: The five words iret pops (Intel SDM vol. 3A, 6.12.1, Figure 6-4).
IRET_FRAME = struct.Struct("<5I")
_USER_DATA = layout.SEL_USER_DATA
# Where the iret frame goes (the top of the kernel stack) and the iret.
_FRAME_PHYS = layout.KSTACK_TOP_PHYS - IRET_FRAME.size
_FRAME_VIRT = layout.kvirt(_FRAME_PHYS)
_IRET = iret_stub_address()
# Enum members as globals: TrapKind.X costs a descriptor call each time.
_SYSCALL_STOP, _EXCEPTION, _BUDGET = TrapKind.SYSCALL_STOP, TrapKind.EXCEPTION, TrapKind.BUDGET

# Exit statuses of a run (docs/ABI.md).
STATUS_LIMIT = 124
STATUS_BOOT = 125
STATUS_ELF = 126
STATUS_KERNEL = 134   # 128 + SIGABRT: an exception in ring 0 (the kernel's iret)
TIME_UP = "limit: time is up (--timeout)"


class Outcome(NamedTuple):
    """How a task ended."""

    status: int
    reason: str              # exit | done | fault | limit | elf | boot | kernel
    message: str = ""
    fault: Fault | None = None


class KernelStats:
    def __init__(self) -> None:
        self.switches = 0   # context switches (yields and preemptions)
        self.entries = 0    # returns to user mode through iret


class KernelPanic(Exception):
    """The kernel cannot go on (a boot failure), with its exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Kernel:
    """A NOVA-style kernel for one task (one Pd) with any number of Ecs."""

    def __init__(self, machine: Machine, *, quantum: int | None = None,
                 limits: Limits | None = None, parts: Parts = PYNOVA,
                 poison_frames: bool = False) -> None:
        self.machine = machine
        self.memory = machine.memory
        self.cpu = machine.cpu
        self.console = machine.console
        self.parts = parts if parts is PYNOVA else self._watched(parts)
        #: A lab's part is running (a student's Python): at the deadline
        #: the watchdog raises TimeUp in the kernel's thread (_on_watchdog).
        self.in_part = 0
        #: Frames come with junk in them (kalloc.py): the labs' kernels.
        self.poison_frames = poison_frames
        # A student's thr_yield (lab threads) gets the course's cooperative
        # threads: preemption would rotate the queue with pynova's own code,
        # behind the back of the part the lab is about (docs/labs/threads.md).
        self._trust_yield = parts.own("thr_yield")
        self.sched = RoundRobin(quantum if self._trust_yield else None)
        self.threads = Threads(self.sched, self._new_thread)
        self.kalloc: Kalloc | None = None
        self.boot_info: BootInfo | None = None
        self.pd: Pd | None = None
        self.ecs: list[Ec] = []
        self.ready: collections.deque[Ec] = self.sched.ready
        self.outcome: Outcome | None = None
        self.stats = KernelStats()
        #: The CPU is running user code (``interrupt`` is for then).
        self.in_cpu = False
        self.interrupted = False
        self.limits = limits if limits is not None else Limits()
        self._armed = False
        self._watchdog: Watchdog | None = None
        self._stop_lock = threading.Lock()
        self._stoppable = True  # until disarmed: the CPU may be freed after that
        self._watchdog_fired = False
        self._thread: int | None = None  # the thread that runs the kernel
        self._time_up_raised = False
        self._entry_cr3 = layout.KERNEL_PD_PHYS  # CR3 in the saved kernel entry state
        self._fpu_owner: Ec | None = None  # whose x87/SSE state the CPU holds
        self._ram = self.memory.view  # for the iret frame, on every entry
        self.syscalls = Syscalls(self.console, self.sched, self.parts, self.threads,
                                 self.cpu.stop_after_syscall, self.ecs)
        self.cpu.syscall_handler = self.syscalls.dispatch
        self.cpu.fpu_handler = self._fpu_needed
        self.cpu.fetch_code = self._fetch_code
        #: Optional observers (pynova.tools), checked only on slow paths:
        #: ``tracer.slice(ec)``/``tracer.exception(fault)``, ``explain(kernel, fault)``.
        self.tracer: Any = None
        self.explain: Callable[[Kernel, Fault], list[str]] | None = None

    # ---------------------------------------------------------------- boot
    def boot(self, mbi_addr: int) -> None:
        """Start the machine from the Multiboot information at ``mbi_addr``."""
        self.console.line(f"pynova {__version__} (NOVA-style microkernel in Python) "
                          f"[Python {sys.version.split()[0]}, "
                          f"Unicorn {getattr(self.cpu, 'version', '?')}]")
        self.console.line()
        self.boot_info = info = BootInfo.unpack(self.memory, mbi_addr)
        boot_machine(self.memory, self.cpu)
        first_free = max([layout.KERNEL_END] + [layout.align_up(m.end) for m in info.modules])
        self.kalloc = Kalloc(self.memory, first_free, self.memory.size,
                             poison=self.poison_frames)

    @property
    def current(self) -> Ec:
        """The Ec the CPU runs (or ran last)."""
        return self.sched.current

    @current.setter
    def current(self, ec: Ec) -> None:
        self.sched.current = ec

    def root_invoke(self) -> None:
        """The seed's Ec::root_invoke: start the boot module as the first
        program. Its steps are the root_invoke part's (root_invoke.py, or a
        lab's); around them the kernel makes the task's Pd and, after them,
        maps the stack page, sets the break and makes the first Ec. A
        failure gives every frame back."""
        if not self._armed:
            self._arm()  # the time limit covers loading, and a lab's parts there
        module = self.boot_module()
        self.console.line(f"load module from {module.start:x} - {module.end:x} "
                          f"({module.end - module.start} bytes) : {module.name}")
        pd = self.new_pd()
        task = RootTask(self.memory, self.console, pd, module)
        try:
            self.parts.root_invoke(task)
            self.enter_root_task(pd, task)
        except ElfError as err:
            self._discard(pd)
            raise KernelPanic(f"ELF error: {err}", STATUS_ELF) from None
        except OutOfMemory:
            self._discard(pd)
            raise KernelPanic("boot error: out of memory while loading the module",
                              STATUS_BOOT) from None
        except BaseException:
            self._discard(pd)
            raise
        finally:
            task.close()

    def boot_module(self) -> BootModule:
        assert self.boot_info is not None and self.kalloc is not None
        modules = self.boot_info.modules
        if len(modules) != 1:
            raise KernelPanic(f"boot error: need exactly one module, got {len(modules)}",
                              STATUS_BOOT)
        mod = modules[0]
        return BootModule(mod.start, mod.end, mod.cmdline)

    def enter_root_task(self, pd: Pd, task: RootTask) -> None:
        """After root_invoke: the stack page, the break, the first Ec."""
        if task.frame is None:
            raise KernelPanic("boot error: root_invoke returned without an iret "
                              "(k.iret(frame)): nothing to run", STATUS_BOOT)
        self.console.line(task.map_stack())
        self.pd = pd
        ec = Ec.from_iret_frame(len(self.ecs), pd, task.frame)
        self.ecs.append(ec)
        self.sched.admit(ec)
        self.current = ec
        # Enter the kernel in the task's address space from now on, so that
        # a return to user mode need not reload CR3 (and flush the TLB).
        self.cpu.write_cr(3, pd.ptab.root)
        self.cpu.save_kernel_state()
        self._entry_cr3 = pd.ptab.root

    def _discard(self, pd: Pd) -> None:
        """Give back a Pd that never ran. A lab's insert_mapping may have
        left tables pynova cannot take apart; the machine goes anyway then."""
        try:
            pd.destroy()
        except ValueError:
            pass

    def new_pd(self) -> Pd:
        assert self.kalloc is not None
        ptab = Ptab(self.memory, self.kalloc, layout.KERNEL_PD_PHYS, self.cpu.invalidate_tlb,
                    self.parts.insert_mapping, bulk=self.parts.own("insert_mapping"))
        return Pd(self.memory, self.kalloc, ptab)

    def _new_thread(self, eip: int, esp: int) -> Ec:
        """A new Ec of the task (Threads.new_thread): not queued yet."""
        assert self.pd is not None
        for name, value in (("eip", eip), ("stack_top", esp)):
            if type(value) is not int or not 0 <= value <= 0xFFFFFFFF:
                raise ValueError(f"new_thread: {name} must be an int 0..2^32-1 (a user "
                                 f"address), got {value!r}")
        ec = Ec.create(len(self.ecs), self.pd, eip, esp)
        self.ecs.append(ec)
        return ec

    def _fetch_code(self, virt: int, size: int) -> bytes:
        pd = self.current.pd
        return pd.read_user(virt, size) if pd is not None else b""

    # ------------------------------------------------------------ running
    def run(self, *, max_insns: int | None = None, timeout: float | None = None) -> Outcome:
        """Run until the task ends or a limit is reached. Limits given here
        replace those the kernel was made with, and their clock starts now."""
        if max_insns is not None or timeout is not None:
            self._cancel_watchdog()
            self.limits, self._armed = Limits(max_insns, timeout), False
        run_slice = self.run_slice
        try:
            while self.outcome is None:
                run_slice()
        except TimeUp:
            self.time_up()
        finally:
            self.disarm()
        assert self.outcome is not None  # time_up() ends the task, if nothing had
        return self.outcome

    def _arm(self) -> None:
        """Before the first slice: count instructions for an instruction
        limit; start the watchdog for a time limit (it asks the CPU to stop
        once, rather than a timeout on every slice: Unicorn starts a timer
        thread for each timed run, which frequent switches would pay for)."""
        self._armed = True
        self._thread = threading.get_ident()
        if self.limits.max_insns is not None:
            self.cpu.set_counting(True)
        if self.limits.deadline is not None:
            self._watchdog = Watchdog(self.limits.deadline, self._on_watchdog)

    def disarm(self) -> None:
        """The task has ended or the machine is about to be closed: stop
        the watchdog, and let ``request_stop`` do nothing from now on."""
        self._cancel_watchdog()
        with self._stop_lock:
            self._stoppable = False
        if self._time_up_raised and self._thread is not None:
            raise_in_thread(self._thread, None)  # not raised yet: never
            self._time_up_raised = False

    def _cancel_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def request_stop(self) -> None:
        """Make the CPU return to the kernel soon; safe from any thread and
        at any time (a signal handler's thread, a debugger's)."""
        with self._stop_lock:
            if self._stoppable:
                self.cpu.request_stop()

    def _on_watchdog(self) -> None:
        self._watchdog_fired = True
        self.request_stop()
        if self.in_part and self._thread is not None:
            raise_in_thread(self._thread, TimeUp)
            self._time_up_raised = True

    def _watched(self, parts: Parts) -> Parts:
        """A lab's parts, each marking ``in_part`` while it runs."""
        def watched(part: Callable[..., Any]) -> Callable[..., Any]:
            def run_part(*args: Any) -> Any:
                self.in_part += 1
                try:
                    return part(*args)
                finally:
                    self.in_part -= 1
            return run_part
        return parts._replace(**{name: watched(getattr(parts, name))
                                 for name in parts._fields if not parts.own(name)})

    def time_up(self) -> None:
        """The time limit has run out: end the task (unless it has ended)."""
        if self.outcome is None:
            self._limit(TIME_UP)

    def run_slice(self, *, single_step: bool = False) -> Trap | None:
        """Run the current Ec once until the CPU stops; handle why. Returns
        the trap when a debugger should look at it (breakpoint, step,
        interrupt), else None. The limits are checked first."""
        if not self._armed:
            self._arm()
        if self.limits.time_is_up():
            self.time_up()
            return None
        ready = self.ready
        if not ready:
            self.finish(Outcome(0, "done", "no thread left"))
            return None
        ec = self.sched.current = ready[0]
        if self.tracer is not None:
            self.tracer.slice(ec)
        max_insns = self.limits.max_insns
        budget = self.sched.budget(
            None if max_insns is None else max_insns - self.cpu.instructions, single_step)
        if budget is not None and budget <= 0:
            self._limit(f"limit: {self.cpu.instructions} instructions executed (--max-insns)")
            return None
        trap = self.enter_user(ec, budget)
        return self.handle(ec, trap, single_step)

    def enter_user(self, ec: Ec, budget: int | None) -> Trap:
        """Return to user mode the way NOVA does: load the general registers,
        put the iret frame on the kernel stack and execute iret in ring 0."""
        # Spelled out, with as few calls as can be: this is every thread switch.
        self.stats.entries += 1
        cpu = self.cpu
        # Another Ec's x87/SSE state in the CPU: CR0.TS set, switched when
        # this one first uses it (_fpu_needed, NOVA's lazy FPU switch), or
        # now when the CPU cannot stop for that within the budget.
        if ec is not self._fpu_owner and not cpu.lazy_fpu:
            self._switch_fpu(ec)
        cpu.enter_kernel(ec is not self._fpu_owner)
        root = ec.pd.ptab.root
        if root != self._entry_cr3:
            cpu.write_cr(3, root)
        r = ec.regs
        cpu.write_regs(r, _FRAME_VIRT)  # esp: the kernel stack; the user's is in the frame
        if r.ds != _USER_DATA or r.es != _USER_DATA or r.fs != _USER_DATA or r.gs != _USER_DATA:
            self._load_data_segments(ec)
        # Ec.iret_frame(), spelled out (a call and a list cost a tenth of a switch)
        IRET_FRAME.pack_into(self._ram, _FRAME_PHYS, r.eip, r.cs, r.eflags, r.esp, r.ss)
        resume_eip = None
        if ec.resume_flag:
            resume_eip, ec.resume_flag = r.eip, False
        # The iret itself is one more instruction for the budget to allow.
        self.in_cpu = True
        try:
            trap = cpu.run(_IRET, None if budget is None else budget + 1, resume_eip=resume_eip)
        finally:
            self.in_cpu = False
        if self.interrupted:
            raise KeyboardInterrupt
        return trap

    def interrupt(self) -> None:
        """Ctrl-C while the CPU runs: a signal handler must not raise inside
        the CPU's hooks (ctypes would swallow it), so the kernel raises
        KeyboardInterrupt once the CPU is back (the caller also asks the CPU
        to stop, from another thread: ``request_stop``)."""
        self.interrupted = True

    def _fpu_needed(self) -> None:
        """#NM: the running Ec used the x87/SSE registers, which hold
        another's (every register but eax is the thread's own, docs/ABI.md)."""
        self._switch_fpu(self.current)

    def _switch_fpu(self, ec: Ec) -> None:
        """Give ``ec`` the x87/SSE registers: the owner's go into its Ec."""
        previous = self.cpu.switch_fpu(ec.fpu)
        if self._fpu_owner is not None:
            self._fpu_owner.fpu = previous
        self._fpu_owner = ec

    def _load_data_segments(self, ec: Ec) -> None:
        """The kernel entry state holds the user data selector in ds..gs;
        load the Ec's own where it changed them (iret keeps them: DPL 3)."""
        r = ec.regs
        for name, selector in (("ds", r.ds), ("es", r.es), ("fs", r.fs), ("gs", r.gs)):
            if selector != _USER_DATA:
                self.cpu.load_segment(name, selector)

    def save_user_state(self, ec: Ec, eip: int) -> bool:
        """Keep the user registers in the Ec; False when the CPU stopped in
        ring 0, before the iret reached ring 3 (ec.regs still hold)."""
        regs = self.cpu.read_regs()
        if regs.cs & 3 != 3:
            return False
        regs.eip = eip
        ec.regs = regs
        return True

    def handle(self, ec: Ec, trap: Trap, single_step: bool) -> Trap | None:
        kind = trap.kind
        max_insns = self.limits.max_insns
        in_user = self.save_user_state(ec, trap.eip)
        if kind is _SYSCALL_STOP:
            self._do_action(ec)
        elif kind is _EXCEPTION:
            if in_user:
                self.user_exception(ec, trap)
            else:
                self.kernel_exception(ec, trap)
        elif kind is _BUDGET:
            if single_step:
                return trap
            if max_insns is not None and self.cpu.instructions >= max_insns:
                self._limit(f"limit: {max_insns} instructions executed (--max-insns)")
            else:
                self._rotate()
        elif kind is TrapKind.INTERRUPTED and self._watchdog_fired:
            self.time_up()
        else:  # BREAKPOINT, WATCHPOINT, INTERRUPTED, HALT: for a debugger
            ec.resume_flag = kind is TrapKind.BREAKPOINT
            return trap
        return None

    # ------------------------------------------------- scheduler actions
    def _do_action(self, ec: Ec) -> None:
        """What the system call that stopped the CPU asked for (syscall.py)."""
        action = self.syscalls.take_action()
        if action is None:
            return
        if action.kind == "exit":
            self.finish(Outcome(action.status, "exit", f"exit({action.status})"))
        elif action.kind == "yield":
            self.stats.switches += 1
            if self._trust_yield:
                self.parts.thr_yield(self.threads)
            else:
                self._checked_yield()
        elif action.kind == "thr_exit":
            self._kill(ec)
        # "requantum" needs nothing more: stopping was the point (thr_create)

    def _checked_yield(self) -> None:
        """A student's thr_yield, and what it left in the queue checked."""
        before, made_from = list(self.ready), len(self.ecs)
        self.parts.thr_yield(self.threads)
        check_queue("thr_yield", self.ready, before, self.ecs, made_from)

    def _rotate(self) -> None:
        """Preemption: the quantum is spent, the next thread runs."""
        self.stats.switches += 1
        self.sched.rotate()

    def _kill(self, ec: Ec) -> None:
        ec.state = EcState.DEAD
        if self.sched.remove(ec):
            self.finish(Outcome(0, "done", "no thread left"))

    # --------------------------------------------------------- endings
    def user_exception(self, ec: Ec, trap: Trap) -> None:
        fault = Fault(trap.vector or 0, trap.eip, trap.cr2, trap.error_code, ec.id)
        for line in report_lines(fault, ec.regs, len(self.ecs)):
            self.console.line(line)
        if self.tracer is not None:
            self.tracer.exception(fault)
        for line in self.explain(self, fault) if self.explain is not None else ():
            self.console.line(line)
        self.finish(Outcome(128 + fault.signal, "fault", fault.name, fault))

    def popped_frame(self) -> tuple[int, ...]:
        """The five words the last iret popped (or refused) from the kernel stack."""
        return IRET_FRAME.unpack(self.memory.read(_FRAME_PHYS, IRET_FRAME.size))

    def kernel_exception(self, ec: Ec, trap: Trap) -> None:
        """An exception in ring 0: the CPU refused the iret frame (lab elf's
        step 3 builds it). The seed's kernel reports it and stops."""
        fault = Fault(trap.vector or 0, trap.eip, trap.cr2, trap.error_code, ec.id)
        for line in kernel_report_lines(fault, ec.regs, self.popped_frame(), _FRAME_VIRT):
            self.console.line(line)
        if self.tracer is not None:
            self.tracer.exception(fault)
        for line in self.explain(self, fault) if self.explain is not None else ():
            self.console.line(line)
        self.finish(Outcome(STATUS_KERNEL, "kernel",
                            f"unhandled kernel exception: {fault.name} in the kernel's iret "
                            f"(error code {fault.error_code:#x})", fault))

    def _limit(self, message: str) -> None:
        self.console.line(message)
        self.finish(Outcome(STATUS_LIMIT, "limit", message))

    def finish(self, outcome: Outcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
        self.disarm()
