"""Pieces shared by the admin endpoints: exact USD fields and pagination."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, PlainSerializer, PlainValidator, WithJsonSchema

from trollllm.money import Money, MoneyParseError

MAX_PAGE = 10_000_000  # keeps OFFSET far inside int64 on both databases
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


def parse_usd_json(value: object) -> Money:
    """A JSON number of USD, exactly (see `Money.from_usd`); strings, booleans and null are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON number of USD")
    try:
        return Money.from_usd(value)
    except MoneyParseError as exc:
        raise ValueError(str(exc)) from exc


def _usd_to_json(value: Money) -> float:
    return value.to_json()


UsdAmount = Annotated[
    Money,
    PlainValidator(parse_usd_json),
    PlainSerializer(_usd_to_json, return_type=float),
    WithJsonSchema({"type": "number", "description": "USD, finite, at most 9 decimals, |x| ≤ 1e9"}),
]
"""A request field holding an exact USD amount; an invalid value is a 422 naming the field."""

PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE, description="1-based page number")]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="items per page, at most 100")]


class PageInfo(BaseModel):
    """The paging fields every admin list answers beside its items."""

    total: int
    page: int
    limit: int
    totalPages: int


def page_info(total: int, page: int, limit: int) -> PageInfo:
    """Paging fields for `total` items; `totalPages` is 0 when there is nothing."""
    return PageInfo(total=total, page=page, limit=limit, totalPages=-(-total // limit))


def page_offset(page: int, limit: int) -> int:
    """The SQL OFFSET of a 1-based page."""
    return (page - 1) * limit
