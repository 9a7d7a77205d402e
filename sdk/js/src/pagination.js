// Cursor pagination: every list answers `{"data": [...], "next_cursor": ...}`, newest first.
// A list call returns a PagePromise: `await` it for one Page, or `for await` over it for
// every item of every page, fetched one page at a time as the loop goes.

/** One page of a list. */
export class Page {
  /**
   * @param {unknown[]} data
   * @param {string | null} nextCursor
   * @param {(cursor: string) => Promise<Page>} fetchPage  fetches the page at a cursor
   */
  constructor(data, nextCursor, fetchPage) {
    this.data = data;
    this.nextCursor = nextCursor ?? null;
    Object.defineProperty(this, 'fetchPage', { value: fetchPage, enumerable: false });
  }

  hasNextPage() {
    return this.nextCursor !== null;
  }

  /** The following page, or null after the last one. */
  async nextPage() {
    return this.hasNextPage() ? this.fetchPage(this.nextCursor) : null;
  }

  /** This page and every following one. */
  async *pages() {
    for (let page = this; page; page = await page.nextPage()) yield page;
  }

  /** Every item of this page and the following ones. */
  async *[Symbol.asyncIterator]() {
    for await (const page of this.pages()) yield* page.data;
  }
}

/** A pending first page that is also an async iterable over all items. */
export class PagePromise {
  /** @param {Promise<Page>} promise */
  constructor(promise) {
    this.promise = promise;
  }

  then(onFulfilled, onRejected) {
    return this.promise.then(onFulfilled, onRejected);
  }

  catch(onRejected) {
    return this.promise.catch(onRejected);
  }

  finally(onFinally) {
    return this.promise.finally(onFinally);
  }

  async *[Symbol.asyncIterator]() {
    yield* await this.promise;
  }

  /** Every item of every page, collected into one array. */
  async toArray() {
    const all = [];
    for await (const item of this) all.push(item);
    return all;
  }
}
