/**
 * A raw HTTP/1.1 client over Deno.connect, for tests that must send what
 * no well-behaved client sends: a body shorter than its Content-Length,
 * bytes one at a time, headers that never end. It reads the answer byte by
 * byte as the server writes it and says whether the server closed the
 * connection.
 *
 * @module
 */

/** What the server sent back on one connection. */
export interface RawAnswer {
  readonly status: number;
  /** Lower-cased header names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** Whether the body was complete (its Content-Length, or the last chunk, arrived). */
  readonly complete: boolean;
}

/** One TCP connection to a server on 127.0.0.1. */
export class RawConnection implements AsyncDisposable {
  readonly #conn: Deno.TcpConn;
  #received = new Uint8Array(0);
  #closed = false;
  #reading: Promise<void> | undefined;
  #wake: (() => void) | undefined;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async open(port: number): Promise<RawConnection> {
    const connection = new RawConnection(await Deno.connect({ hostname: "127.0.0.1", port }));
    connection.#reading = connection.#readAll();
    return connection;
  }

  /** Whether the server has closed (or reset) the connection. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sends `data` (a string is sent as UTF-8). */
  async send(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    let offset = 0;
    while (offset < bytes.byteLength) offset += await this.#conn.write(bytes.subarray(offset));
  }

  /** Sends `data` a piece at a time, waiting `gapMs` between pieces of `pieceBytes`. */
  async trickle(data: Uint8Array, gapMs: number, pieceBytes = 1): Promise<void> {
    for (let i = 0; i < data.byteLength; i += pieceBytes) {
      await this.send(data.subarray(i, i + pieceBytes));
      await new Promise((resolve) => setTimeout(resolve, gapMs));
    }
  }

  /** Closes the sending side (a half-close: the answer can still arrive). */
  async closeWrite(): Promise<void> {
    await this.#conn.closeWrite();
  }

  /**
   * The first answer on the connection, once its headers and body have
   * arrived or the server has closed the connection; undefined if neither
   * happens within `timeoutMs`, or the server closed it without answering.
   */
  async answer(timeoutMs: number): Promise<RawAnswer | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const answer = parseAnswer(this.#received, this.#closed);
      if (answer !== undefined || this.#closed) return answer;
      if (!(await this.#waitForBytes(deadline))) return undefined;
    }
  }

  /** Whether the server closes the connection within `timeoutMs`. */
  async closesWithin(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (!this.#closed) {
      if (!(await this.#waitForBytes(deadline))) return this.#closed;
    }
    return true;
  }

  /** Closes the connection (idempotent). */
  async close(): Promise<void> {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    await this.#reading;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Waits for more bytes or the close; false once `deadline` passed. */
  async #waitForBytes(deadline: number): Promise<boolean> {
    const remaining = deadline - performance.now();
    if (remaining <= 0) return false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arrived = await new Promise<boolean>((resolve) => {
      this.#wake = () => resolve(true);
      timer = setTimeout(() => resolve(false), remaining);
    });
    clearTimeout(timer);
    this.#wake = undefined;
    return arrived;
  }

  async #readAll(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        const joined = new Uint8Array(this.#received.byteLength + n);
        joined.set(this.#received);
        joined.set(buffer.subarray(0, n), this.#received.byteLength);
        this.#received = joined;
        this.#wake?.();
      }
    } catch {
      // Reset by the server, or closed by us.
    }
    this.#closed = true;
    this.#wake?.();
  }
}

/** The answer in `bytes`, if its head and body are there (or the connection ended). */
function parseAnswer(bytes: Uint8Array, closed: boolean): RawAnswer | undefined {
  // One character per byte, so lengths in the head count bytes.
  const text = new TextDecoder("latin1").decode(bytes);
  const headEnd = text.indexOf("\r\n\r\n");
  if (headEnd < 0) return undefined;
  const [statusLine, ...lines] = text.slice(0, headEnd).split("\r\n");
  const status = Number(statusLine!.split(" ")[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const rest = text.slice(headEnd + 4);
  if (headers["content-length"] !== undefined) {
    const length = Number(headers["content-length"]);
    if (rest.length < length && !closed) return undefined;
    return { status, headers, body: rest.slice(0, length), complete: rest.length >= length };
  }
  if (headers["transfer-encoding"] === "chunked") {
    const { body, complete } = dechunk(rest);
    if (!complete && !closed) return undefined;
    return { status, headers, body, complete };
  }
  if (!closed) return undefined;
  return { status, headers, body: rest, complete: true };
}

function dechunk(text: string): { body: string; complete: boolean } {
  let body = "";
  let offset = 0;
  for (;;) {
    const lineEnd = text.indexOf("\r\n", offset);
    if (lineEnd < 0) return { body, complete: false };
    const size = parseInt(text.slice(offset, lineEnd), 16);
    if (size === 0) return { body, complete: true };
    const start = lineEnd + 2;
    if (text.length < start + size) return { body: body + text.slice(start), complete: false };
    body += text.slice(start, start + size);
    offset = start + size + 2;
  }
}

/** The head of a POST to `path` on 127.0.0.1, ending with the blank line. */
export function postHead(path: string, headers: Record<string, string | number>): string {
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  return `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n${lines.join("")}\r\n`;
}
