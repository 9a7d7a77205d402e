"""Cursor pagination: every list answers ``{"data": [...], "next_cursor": ...}``, newest
first. A list call returns a Page; iterating over it yields every item of that page and of
the following ones, fetched one page at a time as the loop goes."""

from typing import Callable, Generic, Iterator, List, Optional, TypeVar

T = TypeVar("T")


class Page(Generic[T]):
    """One page of a list: ``data``, ``next_cursor``; ``for item in page`` goes on to the
    following pages."""

    def __init__(
        self,
        data: List[T],
        next_cursor: Optional[str],
        fetch_page: Callable[[str], "Page[T]"],
    ) -> None:
        self.data = data
        self.next_cursor = next_cursor
        self._fetch_page = fetch_page

    def has_next_page(self) -> bool:
        return self.next_cursor is not None

    def next_page(self) -> "Optional[Page[T]]":
        """The following page, or None after the last one."""
        if self.next_cursor is None:
            return None
        return self._fetch_page(self.next_cursor)

    def iter_pages(self) -> "Iterator[Page[T]]":
        """This page and every following one."""
        page: Optional[Page[T]] = self
        while page is not None:
            yield page
            page = page.next_page()

    def __iter__(self) -> Iterator[T]:
        for page in self.iter_pages():
            yield from page.data

    def __repr__(self) -> str:
        return f"Page(data={self.data!r}, next_cursor={self.next_cursor!r})"
