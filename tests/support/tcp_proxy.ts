/**
 * A TCP proxy on 127.0.0.1 that a test can cut: every connection through it
 * is closed at once by {@link TcpProxy.cutAll}, as a network failure or a
 * restarting load balancer would, or goes silent with
 * {@link TcpProxy.stallAll}, as a crashed host or a middlebox that dropped
 * the connection would, while new connections keep working.
 *
 * @module
 */

export interface TcpProxy extends AsyncDisposable {
  /** `http://127.0.0.1:<port>` of the proxy. */
  readonly url: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Closes every open connection (both sides); returns how many were cut. */
  cutAll(): number;
  /**
   * Stops every open connection from carrying data either way, without
   * closing it (bytes sent into it are dropped); returns how many stalled.
   */
  stallAll(): number;
  close(): Promise<void>;
}

/** Starts a proxy to `target` (host:port). */
export function startTcpProxy(targetPort: number): TcpProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<{ client: Deno.Conn; upstream: Deno.Conn; stalled: boolean }>();
  let accepted = 0;
  const closeQuietly = (conn: Deno.Conn) => {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  };
  const pipe = async (from: Deno.Conn, to: Deno.Conn, pair: { stalled: boolean }) => {
    const writer = to.writable.getWriter();
    try {
      for await (const chunk of from.readable) {
        if (!pair.stalled) await writer.write(chunk);
      }
      await writer.close();
    } catch {
      // Cut, or the other side went away.
    }
  };
  const serving = (async () => {
    for await (const client of listener) {
      accepted++;
      let upstream: Deno.Conn;
      try {
        upstream = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
      } catch {
        closeQuietly(client);
        continue;
      }
      const pair = { client, upstream, stalled: false };
      open.add(pair);
      void Promise.all([pipe(client, upstream, pair), pipe(upstream, client, pair)]).finally(() => {
        open.delete(pair);
        closeQuietly(client);
        closeQuietly(upstream);
      });
    }
  })().catch(() => {});
  const cutAll = () => {
    const cut = open.size;
    for (const { client, upstream } of open) {
      closeQuietly(client);
      closeQuietly(upstream);
    }
    open.clear();
    return cut;
  };
  const stallAll = () => {
    let stalled = 0;
    for (const pair of open) {
      if (!pair.stalled) stalled++;
      pair.stalled = true;
    }
    return stalled;
  };
  const close = async () => {
    try {
      listener.close();
    } catch {
      // Already closed.
    }
    cutAll();
    await serving;
  };
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    get accepted() {
      return accepted;
    },
    cutAll,
    stallAll,
    close,
    [Symbol.asyncDispose]: close,
  };
}
