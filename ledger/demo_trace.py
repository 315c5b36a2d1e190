"""The demo's usage: the bundled real trace priced into credits and replayed over a month.

Rules 1-3 of the demo scenario (their full text is the docstring of ``ledger.demo_data``):
rule 1 prices a request's tokens in credits, rule 2 assigns it to one of 50 customers by a hash
with a heavy tail, rule 3 replays it inside the month M. Standard library only; pure functions of
the trace files (``ledger/data/azure-llm-2023/``, Microsoft Azure LLM inference trace 2023,
CC BY 4.0) and the month.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

# --- the trace -------------------------------------------------------------------------------
DATA_DIR = Path(__file__).parent / "data" / "azure-llm-2023"
TRACE_FILES: dict[str, str] = {
    "code": "AzureLLMInferenceTrace_code.csv",
    "conv": "AzureLLMInferenceTrace_conv.csv",
}

# --- rule 1: pricing -------------------------------------------------------------------------
CONTEXT_TOKENS_PER_CREDIT = 1000
GENERATED_TOKENS_PER_CREDIT = 250
MIN_CREDITS_PER_REQUEST = 1

# --- rule 2: assignment ----------------------------------------------------------------------
CUSTOMER_COUNT = 50
ZIPF_EXPONENT = 1.1
ZIPF_WEIGHTS: tuple[float, ...] = tuple(1 / r**ZIPF_EXPONENT for r in range(1, CUSTOMER_COUNT + 1))


def _cumulative_bounds() -> tuple[float, ...]:
    total = sum(ZIPF_WEIGHTS)
    running = 0.0
    bounds = []
    for weight in ZIPF_WEIGHTS:
        running += weight
        bounds.append(running / total)
    return tuple(bounds)


CUMULATIVE_BOUNDS: tuple[float, ...] = _cumulative_bounds()  # C_1 .. C_50


@dataclass(frozen=True)
class UsageRow:
    """One metered request priced into credits: a row of usage.csv.

    event_id: f"u-{F}-{k:05d}-{YYYYMM}" (YYYYMM: the month replayed); customer_id:
    "cus_001".."cus_050"; occurred_at: RFC 3339 UTC,
    "YYYY-MM-DDTHH:MM:SS.ffffffZ"; credits: int, >= 1 (rule 1).
    """

    event_id: str
    customer_id: str
    occurred_at: str
    credits: int


# --- rules as functions ----------------------------------------------------------------------
def price_request(context_tokens: int, generated_tokens: int) -> int:
    """Rule 1: credits (int, >= 1) for a request's context and generated token counts."""
    credits = -(-context_tokens // CONTEXT_TOKENS_PER_CREDIT) + -(
        -generated_tokens // GENERATED_TOKENS_PER_CREDIT
    )
    return max(MIN_CREDITS_PER_REQUEST, credits)


def assign_rank(file_key: str, k: int) -> int:
    """Rule 2: the rank (1..50) of the customer owning request k (0-based) of file "code"/"conv"."""
    digest = hashlib.sha256(f"{file_key}:{k}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return min(bisect.bisect_right(CUMULATIVE_BOUNDS, u), CUSTOMER_COUNT - 1) + 1


def customer_id(rank: int) -> str:
    """Rule 2: the id of the customer of rank 1..50: "cus_001".."cus_050"."""
    return f"cus_{rank:03d}"


def _parse_trace_time(text: str) -> datetime:
    """Trace TIMESTAMP (7 fractional digits, no zone) -> aware UTC, truncated to microseconds."""
    whole, _, fraction = text.partition(".")
    parsed = datetime.fromisoformat(whole)  # "YYYY-MM-DD HH:MM:SS"
    micro = int((fraction + "000000")[:6])
    return parsed.replace(microsecond=micro, tzinfo=timezone.utc)


def _format_usage_time(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}Z"


# --- rule 3: the replay ----------------------------------------------------------------------
def replay_usage(month_start: datetime, days: int) -> list[tuple[datetime, UsageRow]]:
    """Rules 1-3: every request of the trace files as (occurred_at, UsageRow), sorted by
    (occurred_at, event_id). month_start: M-01T00:00:00Z (aware UTC); days: the days of M.
    Raises ValueError for an unexpected header or a request more than an hour after its file's
    first one."""
    rows: list[tuple[datetime, UsageRow]] = []
    for file_key, file_name in TRACE_FILES.items():
        with open(DATA_DIR / file_name, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            if header != ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]:
                raise ValueError(f"{file_name}: unexpected header {header}")
            first: datetime | None = None
            for k, (stamp, context, generated) in enumerate(reader):
                trace_time = _parse_trace_time(stamp)
                if first is None:
                    first = trace_time
                s = trace_time - first
                if not timedelta(0) <= s < timedelta(hours=1):
                    raise ValueError(f"{file_name} row {k}: offset {s} outside [0, 1h)")
                moment = month_start + timedelta(days=k % days, hours=(k // days) % 24) + s
                rows.append(
                    (
                        moment,
                        UsageRow(
                            event_id=f"u-{file_key}-{k:05d}-{month_start:%Y%m}",
                            customer_id=customer_id(assign_rank(file_key, k)),
                            occurred_at=_format_usage_time(moment),
                            credits=price_request(int(context), int(generated)),
                        ),
                    )
                )
    rows.sort(key=lambda item: (item[0], item[1].event_id))
    return rows
