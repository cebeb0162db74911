/**
 * Spans and trace context. Deno's built-in OpenTelemetry (OTEL_DENO=true)
 * exports what `npm:@opentelemetry/api` records, traces every Deno.serve
 * request and fetch, and carries W3C `traceparent` headers; without it
 * every call here is a no-op.
 *
 * A job's trace: `airunner submit` opens a span and writes its context into
 * the job's metadata under {@link TRACEPARENT_METADATA_KEY}; the server's
 * RPC spans join it through the request headers; the worker starts the
 * job's span as a child of that context and hands it to the job's process
 * as TRACEPARENT.
 *
 * @module
 */
import {
  type Attributes,
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { VERSION } from "../version.ts";

/** The job metadata key that carries the submitter's trace context. */
export const TRACEPARENT_METADATA_KEY = "traceparent";

/** The tracer airunner's own spans come from. */
export function tracer() {
  return trace.getTracer("airunner", VERSION);
}

/** Options of {@link inSpan}. */
export interface SpanOptions {
  readonly attributes?: Attributes;
  readonly kind?: SpanKind;
  /** The parent; the active context by default. */
  readonly parent?: Context;
}

/**
 * Runs `work` in a new active span named `name`; a thrown error marks the
 * span as failed and is rethrown.
 */
export function inSpan<T>(
  name: string,
  options: SpanOptions,
  work: (span: Span) => Promise<T>,
): Promise<T> {
  return tracer().startActiveSpan(
    name,
    {
      kind: options.kind ?? SpanKind.INTERNAL,
      ...(options.attributes ? { attributes: options.attributes } : {}),
    },
    options.parent ?? context.active(),
    async (span) => {
      try {
        return await work(span);
      } catch (error) {
        span.recordException(error instanceof Error ? error : String(error));
        span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error) });
        throw error;
      } finally {
        span.end();
      }
    },
  );
}

/**
 * Runs `work` under a span that is a child of the active one but does not
 * become active itself: cheaper than {@link inSpan} (no context switch),
 * for leaf operations such as store calls.
 */
export async function inLeafSpan<T>(
  name: string,
  attributes: Attributes,
  work: () => Promise<T>,
): Promise<T> {
  const span = tracer().startSpan(name, { attributes }, context.active());
  if (!span.isRecording()) {
    span.end();
    return await work();
  }
  try {
    return await work();
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error) });
    throw error;
  } finally {
    span.end();
  }
}

/**
 * Starts a server span for work a remote caller asked for within its trace
 * (`traceparent`); undefined when the caller sent none. The caller ends it.
 */
export function startRemoteChildSpan(
  name: string,
  traceparent: string,
  attributes: Attributes = {},
): Span | undefined {
  if (traceparent === "") return undefined;
  return tracer().startSpan(
    name,
    { kind: SpanKind.SERVER, attributes },
    contextFromTraceparent(traceparent),
  );
}

/** Ends `span` (if any), marking it failed when `error` is set. */
export function endSpan(span: Span | undefined, error?: unknown): void {
  if (span === undefined) return;
  if (error !== undefined) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error) });
  }
  span.end();
}

/** The active context as a W3C traceparent, or undefined when nothing is being traced. */
export function currentTraceparent(from: Context = context.active()): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(from, carrier);
  return carrier.traceparent;
}

/** A context whose parent is the span a traceparent names (the root context if it names none). */
export function contextFromTraceparent(traceparent: string | undefined): Context {
  if (traceparent === undefined || traceparent === "") return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, { traceparent });
}

/** The span of the current request or operation, if one is recording. */
export function activeSpan(): Span | undefined {
  return trace.getActiveSpan();
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export { SpanKind };
