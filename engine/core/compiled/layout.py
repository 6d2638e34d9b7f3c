"""The layout of the compiled engine's state array, and the integer codes the kernels use.

One module holds the vocabulary shared by the compiled kernels (``book``, ``matching``,
``ledger``, ``modes``, ``sessions``, ``dispatch``): header words (``M_*``), table columns
(``I_*`` instruments, ``O_*`` orders, ``L_*`` price levels, ``A_*`` accounts, ``H_*`` holdings,
``C_*`` compliance, ``KEY_*`` idempotency keys, ``BO_*``/``AU_*``/``BID_*`` trading modes), and
the codes of ``engine.core.schema`` as plain module-level ints, so compiled code needs no Python
objects.  No code is written down here: each is taken from the schema's enum or tag (command and
event kinds via ``engine.core.records``) and each limit from ``engine.core.limits``, so there is
one definition of every value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
from llvmlite import binding as llvm_binding  # type: ignore[import-untyped]
from llvmlite import ir as llvm_ir
from numba.core import cgutils, compiler, types
from numba.core.codegen import JITCodeLibrary
from numba.core.compiler_lock import require_global_compiler_lock
from numba.core.registry import CPUDispatcher

from engine.core.limits import (  # noqa: F401 - re-exported to the kernels
    CASH_MAX_FEN,
    CASH_TOTAL_MAX_FEN,
    COMPLIANCE_YEARS,
    EVENTS_RESERVE,
    OBLIGATION_MAX_T,
    QTY_MAX_T,
)
from engine.core.records import (  # noqa: F401 - re-exported to the kernels
    EV_ACCEPTED,
    EV_ACCOUNT_FROZEN,
    EV_ACCOUNT_OPENED,
    EV_ACCOUNT_UNFROZEN,
    EV_AUCTION_ANNOUNCED,
    EV_AUCTION_APPLIED,
    EV_AUCTION_CANCELLED,
    EV_AUCTION_CLEARED,
    EV_AUCTION_REJECTED,
    EV_AUCTION_TRADE,
    EV_BID_ACCEPTED,
    EV_BID_RELEASED,
    EV_BLOCK_CANCELLED,
    EV_BLOCK_POSTED,
    EV_BLOCK_REJECTED,
    EV_BLOCK_TRADE,
    EV_CANCEL_REJECTED,
    EV_CANCELLED,
    EV_CANCELLED_ALLOWANCES,
    EV_CASH_DEPOSITED,
    EV_CASH_WITHDRAWN,
    EV_CLAWED_BACK,
    EV_COMMAND_REJECTED,
    EV_COMPLIANCE,
    EV_COMPOSITE,
    EV_DUPLICATE,
    EV_EMISSIONS,
    EV_FROZEN,
    EV_HALTED,
    EV_ISSUED,
    EV_MASS_CANCELLED,
    EV_MODE_VOLUMES,
    EV_MODIFIED,
    EV_MODIFY_REJECTED,
    EV_PHASE_CHANGED,
    EV_REGISTRY_REJECTED,
    EV_REJECTED,
    EV_RESUMED,
    EV_SESSION_CLOSED,
    EV_SESSION_OPENED,
    EV_SURRENDERED,
    EV_TRADE,
    EV_TRANSFERRED,
    EV_UNFROZEN,
    EV_YEAR_CLOSED,
    INSTRUMENT_ALL,
    K_AUCTION_ANNOUNCE,
    K_AUCTION_APPLY,
    K_AUCTION_BID,
    K_AUCTION_CANCEL,
    K_AUCTION_CLEAR,
    K_BLOCK_ACCEPT,
    K_BLOCK_CANCEL,
    K_BLOCK_OFFER,
    K_CANCEL,
    K_CANCEL_ALLOWANCES,
    K_CLAW_BACK,
    K_CLOSE_SESSION,
    K_CLOSE_YEAR,
    K_DEPOSIT,
    K_FREEZE,
    K_FREEZE_ACCOUNT,
    K_HALT,
    K_ISSUE,
    K_MASS_CANCEL,
    K_MODIFY,
    K_OPEN_ACCOUNT,
    K_OPEN_SESSION,
    K_REPORT,
    K_RESUME,
    K_SET_PHASE,
    K_SUBMIT,
    K_SURRENDER,
    K_TRANSFER,
    K_UNFREEZE,
    K_UNFREEZE_ACCOUNT,
    K_WITHDRAW,
)
from engine.core.schema import (
    GWP_TABLE,
    AccountKind,
    AuctionState,
    CancelReason,
    ClearingRule,
    FloorRule,
    GwpVersion,
    OrderType,
    RejectReason,
    SessionState,
    Side,
    StpMode,
    TimeInForce,
    TradingMode,
)


# --- how kernels are compiled ------------------------------------------------------------
class _OncePerType(CPUDispatcher):
    """Numba's CPU dispatcher, except that a call from compiled code is typed by its arguments'
    plain types: a constant argument (``emit(out, n, EV_TRADE, ..., 0)``) is an ``int64``, not
    a ``Literal[int](0)`` of its own.

    Numba compiles a callee once per distinct argument typing, literals included: measured on
    an empty cache, ``emit`` was compiled 99 times, ``reject_command`` 20 times and the whole
    command tree twice (``n`` passed as the literal ``0`` by the one-command entry points),
    more than half of the first ``CompiledEngine``'s 55 s of compiling.  Typed this way every
    function is compiled once; LLVM still folds the constants where it inlines."""

    def get_call_template(self, args: Any, kws: Any) -> Any:
        plain = tuple(types.unliteral(arg) for arg in args)
        return super().get_call_template(plain, {k: types.unliteral(v) for k, v in kws.items()})


class _LinkOnceLibrary(JITCodeLibrary):
    """Numba's JIT code library, except that a function that is not an entry point is optimised
    and turned into machine code only inside the entry points that call it.

    Numba finalises every compiled function's library on its own: it links in the final
    modules of its callees (each already holding its own callees), optimises the whole and
    emits machine code for it.  A kernel ``d`` levels below an entry point is thus optimised
    and turned into machine code ``d + 1`` times, ``d`` of them for code that only the entry
    point's copy ever runs: on an empty cache that was ~5 s of the first ``CompiledEngine``'s
    ~18 (13 s with this library).

    A ``deferred`` library (every non-entry kernel) is finalised without any of it: its module
    keeps Numba's per-function optimisation only, and only its environment pointer (which
    Numba fills in as it compiles a function) is added to the JIT.  An entry point's library
    links in each deferred module under it once (the transitive closure, since a deferred
    module holds no callee), then optimises and emits the whole once, as before; its machine
    code, and so its on-disk cache, holds everything it calls.  Code of Numba's own libraries
    (finalised the usual way) is linked in whole, as before.  Only the dispatchers of this
    module create these libraries: other ``@njit`` code in the process compiles as usual."""

    def __init__(self, codegen: Any, name: str, deferred: bool) -> None:
        super().__init__(codegen, name)
        self._deferred = deferred
        self._closure_module: Any = None

    def finalize(self) -> None:
        if self._deferred:
            self._finalize_deferred()
            return
        require_global_compiler_lock()
        self._codegen._check_llvm_bugs()
        self._raise_if_finalized()
        for library in _link_closure(self._linking_libraries):
            self._reload_init.update(library._reload_init)
            self._final_module.link_in(_own_module(library), preserve=True)
        self._optimize_final_module()
        self._final_module.verify()
        self._finalize_final_module()

    def _finalize_deferred(self) -> None:
        """Finalise without linking, optimising or emitting; give the JIT the environment
        pointers that Numba fills in once the function is compiled."""
        require_global_compiler_lock()
        self._raise_if_finalized()
        self._finalize_dynamic_globals()
        environments = self._codegen._create_empty_module(self.name)
        for variable in self._final_module.global_variables:
            if variable.name.startswith("_ZN08NumbaEnv") and not variable.is_declaration:
                pointer = llvm_ir.GlobalVariable(environments, cgutils.voidptr_t, variable.name)
                pointer.linkage = "common"
                pointer.initializer = cgutils.get_null_value(cgutils.voidptr_t)
        self._codegen._add_module(llvm_binding.parse_assembly(str(environments)))
        self._finalized = True

    def _get_module_for_linking(self) -> Any:
        """The module that Numba's own libraries link in (an ``@njit`` function of an
        embedder calling a kernel): for a deferred library, its own module and every deferred
        module under it, so that the caller's code is whole."""
        if not self._deferred:
            return super()._get_module_for_linking()
        if self._closure_module is None:
            module = _own_module(self).clone()
            for library in _link_closure(self._linking_libraries):
                module.link_in(_own_module(library), preserve=True)
            self._closure_module = module
        return self._closure_module


def _own_module(library: Any) -> Any:
    """What an entry point links in of ``library``: a deferred library's own module alone
    (the entry point links the ones under it too), any other library's whole module."""
    if isinstance(library, _LinkOnceLibrary) and library._deferred:
        return JITCodeLibrary._get_module_for_linking(library)
    return library._get_module_for_linking()


def _link_closure(libraries: list[Any]) -> list[Any]:
    """``libraries`` and, under each deferred :class:`_LinkOnceLibrary`, the libraries it
    links, transitively: each once, in first-seen order."""
    seen: set[int] = set()
    closure = []
    pending = list(reversed(libraries))
    while pending:
        library = pending.pop()
        if id(library) in seen:
            continue
        seen.add(id(library))
        closure.append(library)
        if isinstance(library, _LinkOnceLibrary) and library._deferred:
            pending.extend(reversed(library._linking_libraries))
    return closure


class _Flags(compiler.Flags):
    """Numba's compile flags, whose option values are gathered once until an option is set.

    Typing a call of an ``@overload``ed function (``max``, ``np.empty``, a method of an array)
    looks its implementation up in a cache keyed by the compile's flags, and every lookup
    compares two flags objects by gathering all ~40 options of each through properties: on an
    empty cache, ~110,000 such lookups took ~1 s of the first ``CompiledEngine``'s ~11.
    Setting, deleting or discarding an option forgets the gathered values."""

    def values(self) -> dict[str, Any]:
        gathered = self.__dict__.get("_gathered")
        if gathered is None:
            gathered = super().values()
            object.__setattr__(self, "_gathered", gathered)
        return dict(gathered)

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__.pop("_gathered", None)
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        self.__dict__.pop("_gathered", None)
        super().__delattr__(name)

    def discard(self, name: str) -> None:
        self.__dict__.pop("_gathered", None)
        super().discard(name)


def _pipeline(entry: bool) -> type[compiler.Compiler]:
    """Numba's compiler pipeline, lowering into a :class:`_LinkOnceLibrary` (``deferred``
    unless ``entry``), with :class:`_Flags`."""

    class Pipeline(compiler.Compiler):
        def __init__(self, *args: Any) -> None:
            typingctx, targetctx, library, types_, return_type, flags, locals_ = args
            flags = _Flags(flags)
            super().__init__(typingctx, targetctx, library, types_, return_type, flags, locals_)

        def compile_extra(self, func: Any) -> Any:
            if self.state.library is None:
                codegen = self.state.targetctx.codegen()
                library = _LinkOnceLibrary(codegen, func.__qualname__, deferred=not entry)
                library.enable_object_caching()
                self.state.library = library
            return super().compile_extra(func)

    return Pipeline


def _compiled(entry: bool, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """A decorator compiling with :class:`_OncePerType` and ``options`` (the steps of
    ``numba.njit``'s own decorator); the plain function under ``NUMBA_DISABLE_JIT=1``.

    Only an ``entry`` point (called from Python) gets Numba's Python and C wrappers, its own
    on-disk cache and machine code (:class:`_LinkOnceLibrary`).  The cached machine code of an
    entry point holds the code of all it calls: a cache, and wrappers, for each of the ~130
    functions under the entry points only cost time on an empty cache (about 5 s of the 26 s
    left after :class:`_OncePerType`) and were never read on a warm one."""

    def decorate(function: Callable[..., Any]) -> Any:
        if numba.config.DISABLE_JIT:  # type: ignore[attr-defined]
            return function
        targetoptions = {"nopython": True, "boundscheck": None, **options}
        if not entry:
            targetoptions.update(no_cpython_wrapper=True, no_cfunc_wrapper=True)
        dispatcher = _OncePerType(
            py_func=function,
            locals={},
            targetoptions=targetoptions,
            pipeline_class=_pipeline(entry),
        )
        if entry:
            dispatcher.enable_caching()
        return dispatcher

    return decorate


kernel = _compiled(False, _nrt=False, forceinline=False)  # Numba's own compile options
"""A compiled function without Numba's reference counting, for kernels that create no array.

With reference counting on, every compiled call that passes ``st`` and ``out`` increments and
decrements their reference counts with atomic instructions, which LLVM can prune only within
simple control flow: profiled on the swing40 workload, ``NRT_incref``/``NRT_decref`` took ~70 %
of the batch loop's time.  A kernel that allocates nothing (and receives no array from a callee)
needs no counting: its arrays are borrowed from the caller for the whole call.  Kernels that
allocate (the ids of a mass cancel, an auction's ranking) or receive an array from a callee
are :data:`allocating`; a ``kernel`` may call them, since they balance their own counts."""
inlined = _compiled(False, _nrt=False, forceinline=True)
"""A :data:`kernel` that LLVM must inline into every compiled caller (``alwaysinline``).

For the kernels of the order path (dispatch, submit, cancel, modify, matching, the book's
links and its hash table): a call between kernels passes ``st`` and ``out`` as some twenty
words on the stack and hides from LLVM what the callee reads and writes, so that no value
(an offset in the header, an order's row) survives a call in a register.  Inlined, the order
path is one function: measured on ``bench core``, 25-40 % more messages per second on every
workload, with no more compile time (each kernel is still compiled once; LLVM only links its
code into the entry points)."""
allocating = _compiled(False, _nrt=True, forceinline=False)
"""A compiled function with reference counting, said explicitly: a compiled callee that does
not set the flag inherits its caller's, so one called from a :data:`kernel` would lose it."""
inheriting = _compiled(False)
"""A compiled function that states no reference-counting flag: compiled with its caller's."""
entry_kernel = _compiled(True, _nrt=False, forceinline=False)
"""A :data:`kernel` that Python calls too: with Numba's wrappers and an on-disk cache."""
entry_allocating = _compiled(True, _nrt=True, forceinline=False)
"""An :data:`allocating` function that Python calls too: with wrappers and an on-disk cache."""


def _prefetch_intrinsic() -> Any:
    """``prefetch(array, index, write)``: LLVM's ``llvm.prefetch`` of the cache line holding
    ``array[index]`` (for reading, or with ``write`` a literal 1 for writing; kept in all cache
    levels).  A hint only: it never faults, changes nothing and no result depends on it; the
    plain function does nothing."""
    if numba.config.DISABLE_JIT:  # type: ignore[attr-defined]
        return lambda array, index, write: None
    from numba.extending import intrinsic

    @intrinsic
    def prefetch(typingctx: Any, array: Any, index: Any, write: Any) -> Any:
        if not isinstance(write, types.IntegerLiteral):
            return None
        rw = write.literal_value

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            address = builder.bitcast(builder.gep(data, [args[1]]), llvm_ir.IntType(8).as_pointer())
            int32 = llvm_ir.IntType(32)
            function_type = llvm_ir.FunctionType(
                llvm_ir.VoidType(), [address.type, int32, int32, int32]
            )
            function = builder.module.declare_intrinsic(
                "llvm.prefetch", (address.type,), function_type
            )
            builder.call(function, [address, int32(rw), int32(3), int32(1)])
            return context.get_dummy_value()

        return types.void(array, index, write), codegen

    return prefetch


prefetch = _prefetch_intrinsic()

# --- header words -------------------------------------------------------------------------
M_N_INST, M_N_ACCOUNTS, M_CAP, M_LADDER, M_HCAP, M_LIVE, M_FREE, M_HWM, M_NEXT_TRADE = range(9)
M_OFF_INST, M_OFF_ORDERS, M_OFF_HASH, M_OFF_LEVELS, M_OFF_BLOCKS, M_OFF_SUPERS = range(16, 22)
M_NB, M_NS = 22, 23
(M_REGISTRY, M_FEE_ACCOUNT, M_BUY_BPS, M_SELL_BPS, M_FIRST_YEAR, M_PENALTY, M_OFFSET_BPS,
 M_KEYS_CAP, M_KEYS_USED, M_CLOSED_YEARS, M_DEPOSITED, M_WITHDRAWN, M_OFF_ACC, M_OFF_HOLD,
 M_OFF_COMP, M_OFF_KEYS, M_KEYS_LIMIT) = range(24, 41)  # fmt: skip
# trading modes (docs/TRADING_MODES.md): block offers, auctions and their bids
(M_OFF_BLOCK, M_BLOCK_CAP, M_BLOCK_HWM, M_BLOCK_LIVE, M_OFF_AUCTIONS, M_AUCTIONS_CAP,
 M_AUCTIONS_HWM, M_OFF_BIDS, M_BIDS_CAP, M_BIDS_HWM, M_BIDS_LIVE,
 M_NEXT_ARRIVAL) = range(41, 53)  # fmt: skip
META_LEN = 56

# --- instrument columns -------------------------------------------------------------------
(I_STATE, I_DATE, I_REF, I_LO, I_HI, I_TICK, I_LOT, I_MINQ, I_MAXQ, I_BAND, I_BID, I_ASK,
 I_OPEN, I_HIGH, I_LOW, I_VOL, I_VAL, I_TRADES, I_ISSUED, I_CLAWED, I_SURRENDERED, I_CANCELLED,
 I_VINTAGE, I_OFFSET,
 # trading modes: allowed modes, packed phase masks (4 bits a phase), phase count, current
 # phase, hit-quote depth, block and auction parameters and bands, and the session's block
 # and auction business (reset after SessionModeVolumes at the close)
 I_MODES, I_PHASE_MASKS, I_N_PHASES, I_PHASE, I_QUOTE_LEVELS, I_BLOCK_MINQ, I_BLOCK_BAND,
 I_BLOCK_LO, I_BLOCK_HI, I_AUCTION_MINQ, I_AUCTION_BAND, I_BLOCK_VOL, I_BLOCK_VAL,
 I_BLOCK_TRADES, I_AUCTION_VOL, I_AUCTION_VAL, I_AUCTION_TRADES) = range(41)  # fmt: skip
IF = 41

# --- order columns ------------------------------------------------------------------------
(O_ID, O_ACCOUNT, O_INST, O_SIDE, O_PRICE, O_LEAVES, O_PREV, O_NEXT, O_TYPE, O_TIF, O_STP,
 O_LOCK_PRICE) = range(12)  # fmt: skip
OF = 12

# --- account, holding, compliance and idempotency-key columns (registry) ------------------
A_OPEN, A_KIND, A_SECTOR, A_PROVINCE, A_FROZEN, A_CASH, A_CASH_LOCKED = range(7)
AF = 8
H_TRADABLE, H_LOCKED, H_FROZEN, H_UNSETTLED = range(4)
HF = 4
C_OBLIGATION, C_SURRENDERED, C_OFFSETS, C_REPORTED = range(4)
CF = 4
YEARS = COMPLIANCE_YEARS
KEY_KEY, KEY_SEQ, KEY_REASON, KEY_KIND = range(4)
KF = 4

# --- block offers, auctions, auction bids (slot tables; a free row has id 0) ---------------
BO_ID, BO_ACCOUNT, BO_INST, BO_SIDE, BO_PRICE, BO_QTY, BO_COUNTERPARTY = range(7)
BOF = 8
(AU_ID, AU_SELLER, AU_INST, AU_QTY, AU_STATE, AU_FLOOR, AU_CAP, AU_CLEARING, AU_FLOOR_RULE,
 AU_START, AU_END, AU_BIDS) = range(12)  # fmt: skip
AUF = 12
BID_ID, BID_AUCTION, BID_ACCOUNT, BID_PRICE, BID_QTY, BID_ARRIVAL = range(6)
BIDF = 6

# --- level columns ------------------------------------------------------------------------
L_HEAD, L_TAIL, L_QTY, L_COUNT = range(4)
LF = 4

# --- codes: the schema's enums and tags as plain ints (Numba freezes module-level ints) ----
BUY = int(Side.BUY)
SELL = int(Side.SELL)
LIMIT = int(OrderType.LIMIT)
MARKET = int(OrderType.MARKET)
POST_ONLY = int(OrderType.POST_ONLY)
HIT_QUOTE = int(OrderType.HIT_QUOTE)
DAY = int(TimeInForce.DAY)
GTC = int(TimeInForce.GTC)
IOC = int(TimeInForce.IOC)
FOK = int(TimeInForce.FOK)
STP_INCOMING = int(StpMode.CANCEL_INCOMING)
STP_RESTING = int(StpMode.CANCEL_RESTING)
STP_BOTH = int(StpMode.CANCEL_BOTH)
CLOSED = int(SessionState.CLOSED)
OPEN = int(SessionState.OPEN)
HALTED = int(SessionState.HALTED)
R_UNKNOWN_INSTRUMENT = int(RejectReason.UNKNOWN_INSTRUMENT)
R_SESSION_CLOSED = int(RejectReason.SESSION_CLOSED)
R_HALTED = int(RejectReason.INSTRUMENT_HALTED)
R_UNKNOWN_ACCOUNT = int(RejectReason.UNKNOWN_ACCOUNT)
R_ORDER_TYPE = int(RejectReason.INVALID_ORDER_TYPE)
R_TIF = int(RejectReason.INVALID_TIME_IN_FORCE)
R_QUANTITY = int(RejectReason.INVALID_QUANTITY)
R_OFF_LOT = int(RejectReason.QUANTITY_OFF_LOT)
R_OFF_TICK = int(RejectReason.PRICE_OFF_TICK)
R_OUT_OF_BAND = int(RejectReason.PRICE_OUT_OF_BAND)
R_ORDER_ID = int(RejectReason.INVALID_ORDER_ID)
R_DUPLICATE = int(RejectReason.DUPLICATE_ORDER_ID)
R_BOOK_FULL = int(RejectReason.BOOK_FULL)
R_WOULD_TRADE = int(RejectReason.WOULD_TRADE)
R_UNKNOWN_ORDER = int(RejectReason.UNKNOWN_ORDER)
R_NOT_OWNER = int(RejectReason.NOT_ORDER_OWNER)
R_ALREADY_OPEN = int(RejectReason.SESSION_ALREADY_OPEN)
R_NOT_OPEN = int(RejectReason.SESSION_NOT_OPEN)
R_NOT_HALTED = int(RejectReason.INSTRUMENT_NOT_HALTED)
R_TRADING_DATE = int(RejectReason.INVALID_TRADING_DATE)
R_MAY_NOT_TRADE = int(RejectReason.ACCOUNT_MAY_NOT_TRADE)
R_ACCOUNT_FROZEN = int(RejectReason.ACCOUNT_FROZEN)
R_NO_ALLOWANCES = int(RejectReason.INSUFFICIENT_ALLOWANCES)
R_NO_CASH = int(RejectReason.INSUFFICIENT_CASH)
R_INVALID_KEY = int(RejectReason.INVALID_KEY)
R_REGISTRY_DISABLED = int(RejectReason.REGISTRY_DISABLED)
R_INVALID_AMOUNT = int(RejectReason.INVALID_AMOUNT)
R_ACCOUNT_EXISTS = int(RejectReason.ACCOUNT_EXISTS)
R_INVALID_KIND = int(RejectReason.INVALID_ACCOUNT_KIND)
R_NOT_FROZEN = int(RejectReason.ACCOUNT_NOT_FROZEN)
R_NOT_COMPLIANCE = int(RejectReason.NOT_A_COMPLIANCE_ACCOUNT)
R_INVALID_YEAR = int(RejectReason.INVALID_YEAR)
R_YEAR_CLOSED = int(RejectReason.YEAR_CLOSED)
R_INVALID_GWP = int(RejectReason.INVALID_GWP)
R_NOT_ELIGIBLE = int(RejectReason.VINTAGE_NOT_ELIGIBLE)
R_OFFSET_LIMIT = int(RejectReason.OFFSET_LIMIT_EXCEEDED)
R_REGISTRY_FULL = int(RejectReason.REGISTRY_FULL)
R_FEE_ACCOUNT = int(RejectReason.FEE_ACCOUNT_NOT_OPEN)
R_MODE_NOT_ALLOWED = int(RejectReason.MODE_NOT_ALLOWED)
R_MODE_NOT_IN_PHASE = int(RejectReason.MODE_NOT_IN_PHASE)
R_QUOTE_NOT_FOUND = int(RejectReason.QUOTE_NOT_FOUND)
R_QUOTE_BEYOND_LEVELS = int(RejectReason.QUOTE_BEYOND_BEST_LEVELS)
R_QUOTE_OWN = int(RejectReason.QUOTE_OWN_ORDER)
R_UNKNOWN_BLOCK = int(RejectReason.UNKNOWN_BLOCK_OFFER)
R_BLOCK_TERMS = int(RejectReason.BLOCK_TERMS_MISMATCH)
R_NOT_COUNTERPARTY = int(RejectReason.NOT_COUNTERPARTY)
R_INVALID_COUNTERPARTY = int(RejectReason.INVALID_COUNTERPARTY)
R_UNKNOWN_AUCTION = int(RejectReason.UNKNOWN_AUCTION)
R_AUCTION_STATE = int(RejectReason.AUCTION_STATE)
R_AUCTION_TERMS = int(RejectReason.INVALID_AUCTION_TERMS)
R_SELLER_BID = int(RejectReason.SELLER_MAY_NOT_BID)
R_INVALID_PHASE = int(RejectReason.INVALID_PHASE)
MODE_CONTINUOUS = int(TradingMode.CONTINUOUS)
MODE_HIT_QUOTE = int(TradingMode.HIT_QUOTE)
MODE_BLOCK = int(TradingMode.BLOCK)
MODE_AUCTION = int(TradingMode.AUCTION)
FLOOR_CLOSE = int(FloorRule.PREVIOUS_CLOSE)
FLOOR_MINUS_BAND = int(FloorRule.CLOSE_MINUS_BAND)
CLEAR_UNIFORM = int(ClearingRule.UNIFORM)
CLEAR_PAY_AS_BID = int(ClearingRule.PAY_AS_BID)
AUCTION_STATE_APPLIED = int(AuctionState.APPLIED)
AUCTION_STATE_BIDDING = int(AuctionState.BIDDING)
COMPLIANCE = int(AccountKind.COMPLIANCE)
INVESTOR = int(AccountKind.INVESTOR)
AUTHORITY = int(AccountKind.AUTHORITY)
FEE = int(AccountKind.FEE)
GWP_CF4 = (0, *(GWP_TABLE[GwpVersion(v)][0] for v in (1, 2, 3)))  # by GwpVersion code
GWP_C2F6 = (0, *(GWP_TABLE[GwpVersion(v)][1] for v in (1, 2, 3)))
C_REQUESTED = int(CancelReason.REQUESTED)
C_IOC = int(CancelReason.IOC_REMAINDER)
C_FOK = int(CancelReason.FOK_NOT_FILLABLE)
C_STP = int(CancelReason.SELF_TRADE_PREVENTED)
C_MASS = int(CancelReason.MASS_CANCEL)
C_SESSION_END = int(CancelReason.SESSION_END)
C_PHASE_END = int(CancelReason.PHASE_END)


def _power_of_two_above(count: int) -> int:
    size = 16
    while size < 2 * count:
        size *= 2
    return size


def state_size(
    n_inst: int,
    cap: int,
    ladder: int,
    accounts: int,
    keys: int,
    block_offers: int = 1,
    auctions: int = 1,
    bids: int = 1,
) -> tuple[int, dict[int, int]]:
    """Words needed for a state array, and the header values describing its layout."""
    hcap = _power_of_two_above(cap)
    kcap = _power_of_two_above(keys)
    nb = (ladder + 63) >> 6
    ns = (ladder + 4095) >> 12
    header = {M_N_INST: n_inst, M_CAP: cap, M_LADDER: ladder, M_HCAP: hcap, M_NB: nb, M_NS: ns,
              M_N_ACCOUNTS: accounts, M_KEYS_CAP: kcap, M_KEYS_LIMIT: keys,
              M_BLOCK_CAP: block_offers, M_AUCTIONS_CAP: auctions, M_BIDS_CAP: bids,
              M_NEXT_ARRIVAL: 1}  # fmt: skip
    offset = META_LEN
    for key, words in (
        (M_OFF_INST, n_inst * IF),
        (M_OFF_ORDERS, cap * OF),
        (M_OFF_HASH, 2 * hcap),
        (M_OFF_LEVELS, n_inst * 2 * ladder * LF),
        (M_OFF_BLOCKS, n_inst * 2 * nb),
        (M_OFF_SUPERS, n_inst * 2 * ns),
        (M_OFF_ACC, accounts * AF),
        (M_OFF_HOLD, accounts * n_inst * HF),
        (M_OFF_COMP, YEARS * accounts * CF),
        (M_OFF_KEYS, kcap * KF),
        (M_OFF_BLOCK, block_offers * BOF),
        (M_OFF_AUCTIONS, auctions * AUF),
        (M_OFF_BIDS, bids * BIDF),
    ):
        header[key] = offset
        offset += words
    return offset, header
