/**
 * When schedules fire (src/store/schedule_firings.ts, protocol/schedule_spec.ts),
 * on fixed times: five and six fields, time zones across both DST changes,
 * missed firings with and without catch-up, one request_id per firing, and
 * the checks of bad expressions and zones.
 */
import assert from "node:assert/strict";
import {
  decideFirings,
  firingRequestId,
  nextFirings,
  ON_TIME_MS,
} from "../../src/store/schedule_firings.ts";
import { validateCronExpression, validateTimeZone } from "../../src/protocol/schedule_spec.ts";
import { InvalidArgumentError } from "../../src/protocol/invalid_argument.ts";

const iso = (ms: number[]) => ms.map((t) => new Date(t).toISOString());

Deno.test("five fields fire by the minute, six by the second", () => {
  const from = Date.UTC(2026, 11, 4, 10, 0, 0);
  assert.deepEqual(iso(nextFirings({ cron: "0 3 * * *", timeZone: "" }, from, 2)), [
    "2026-12-05T03:00:00.000Z",
    "2026-12-06T03:00:00.000Z",
  ]);
  assert.deepEqual(iso(nextFirings({ cron: "*/2 * * * * *", timeZone: "" }, from, 3)), [
    "2026-12-04T10:00:02.000Z",
    "2026-12-04T10:00:04.000Z",
    "2026-12-04T10:00:06.000Z",
  ]);
});

Deno.test("03:00 in Europe/Berlin follows the zone's offset, winter and summer", () => {
  const berlin = { cron: "0 3 * * *", timeZone: "Europe/Berlin" };
  assert.deepEqual(iso(nextFirings(berlin, Date.UTC(2026, 2, 27), 3)), [
    "2026-03-27T02:00:00.000Z", // CET, UTC+1
    "2026-03-28T02:00:00.000Z",
    "2026-03-29T01:00:00.000Z", // CEST from 29 March, UTC+2
  ]);
});

Deno.test("DST in the schedule's zone neither skips nor doubles a daily firing", () => {
  // 02:30 does not exist on 29 March 2026 in Berlin (02:00 -> 03:00) and
  // happens twice on 25 October 2026 (03:00 -> 02:00).
  const daily = { cron: "30 2 * * *", timeZone: "Europe/Berlin" };
  const spring = nextFirings(daily, Date.UTC(2026, 2, 27, 12), 4);
  assert.deepEqual(iso(spring), [
    "2026-03-28T01:30:00.000Z",
    "2026-03-29T01:00:00.000Z", // the missing 02:30 fires at 03:00 local, once
    "2026-03-30T00:30:00.000Z",
    "2026-03-31T00:30:00.000Z",
  ]);
  const autumn = nextFirings(daily, Date.UTC(2026, 9, 23, 12), 4);
  assert.deepEqual(iso(autumn), [
    "2026-10-24T00:30:00.000Z",
    "2026-10-25T00:30:00.000Z", // the first 02:30 only, not the repeat an hour later
    "2026-10-26T01:30:00.000Z",
    "2026-10-27T01:30:00.000Z",
  ]);
  // A scheduler ticking every 10 s across each night makes one job per day.
  const nights: [number, number][] = [[spring[0]!, spring[3]!], [autumn[0]!, autumn[3]!]];
  for (const [from, to] of nights) {
    let last = from - 1;
    const fired: number[] = [];
    for (let now = from; now <= to; now += 10_000) {
      const d = decideFirings(daily, { lastFiringMs: last, catchUp: "none" }, now);
      fired.push(...d.fire);
      last = d.lastFiringMs;
    }
    assert.equal(fired.length, 4, iso(fired).join(", "));
    assert.equal(new Set(fired.map((t) => new Date(t).toISOString().slice(0, 10))).size, 4);
  }
});

Deno.test("a firing found on time runs; missed ones run once with catch-up latest, never with none", () => {
  const every5 = { cron: "*/5 * * * *", timeZone: "" };
  const t0 = Date.UTC(2026, 11, 4, 10, 0);
  const onTime = decideFirings(
    every5,
    { lastFiringMs: t0, catchUp: "none" },
    t0 + 5 * 60_000 + 900,
  );
  assert.deepEqual(iso([...onTime.fire]), ["2026-12-04T10:05:00.000Z"]);
  assert.equal(onTime.lastFiringMs, t0 + 5 * 60_000);
  assert.equal(onTime.nextFiringMs, t0 + 10 * 60_000);

  // The server was down from 10:00 to 10:32: six firings missed.
  const down = t0 + 32 * 60_000;
  const none = decideFirings(every5, { lastFiringMs: t0, catchUp: "none" }, down);
  assert.deepEqual(none.fire, [], "none: the missed firings are skipped");
  assert.equal(none.lastFiringMs, t0 + 30 * 60_000, "and recorded as handled");
  const latest = decideFirings(every5, { lastFiringMs: t0, catchUp: "latest" }, down);
  assert.deepEqual(iso([...latest.fire]), ["2026-12-04T10:30:00.000Z"], "latest: once");
  assert.equal(latest.nextFiringMs, t0 + 35 * 60_000);

  const nothing = decideFirings(every5, { lastFiringMs: t0, catchUp: "latest" }, t0 + 60_000);
  assert.deepEqual(nothing, {
    fire: [],
    lastFiringMs: t0,
    nextFiringMs: t0 + 5 * 60_000,
    missed: 0,
  });
  assert.ok(ON_TIME_MS >= 10_000, "a tick every few seconds is never late");
});

Deno.test("a seconds schedule stopped for long scans a bounded number of firings", () => {
  const everySecond = { cron: "* * * * * *", timeZone: "" };
  const t0 = Date.UTC(2026, 11, 4, 10, 0);
  const now = t0 + 86_400_000 + 30_500;
  const d = decideFirings(everySecond, { lastFiringMs: t0, catchUp: "none" }, now);
  // Past the walk's cap, the last minute's firings are still found and run.
  assert.equal(d.fire.length, 60, "the firings of the last minute are on time");
  assert.equal(d.fire.at(-1), now - 500);
  assert.equal(d.lastFiringMs, now - 500, "recorded up to the latest");
  assert.equal(d.nextFiringMs, now + 500);
  assert.ok(d.missed >= 1_000, `missed ${d.missed}`);
  // A daily-hours schedule whose last minute had none: latest runs the real latest firing.
  const hours = { cron: "* * 9 * * *", timeZone: "" };
  const evening = Date.UTC(2026, 11, 6, 18);
  const late = decideFirings(hours, { lastFiringMs: t0, catchUp: "latest" }, evening);
  assert.deepEqual(late.fire, [Date.UTC(2026, 11, 6, 9, 59, 59)]);
  assert.equal(late.lastFiringMs, Date.UTC(2026, 11, 6, 9, 59, 59));
  assert.equal(late.nextFiringMs, Date.UTC(2026, 11, 7, 9));
});

Deno.test("each firing has its own request_id, the same on every scheduler", () => {
  const at = Date.UTC(2026, 11, 24, 9);
  assert.equal(firingRequestId("nightly", at), "schedule:nightly:2026-12-24T09:00:00.000Z");
  assert.notEqual(firingRequestId("nightly", at), firingRequestId("nightly", at + 1000));
});

Deno.test("bad cron expressions and time zones are invalid_argument, naming the field", () => {
  const fails = (fn: () => unknown, field: string, pattern: RegExp) =>
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof InvalidArgumentError);
      assert.equal(e.field, field);
      assert.match(e.message, pattern);
      return true;
    });
  validateCronExpression("0 3 * * *");
  validateCronExpression("*/2 * * * * *");
  fails(() => validateCronExpression("0 3 * *"), "cron", /has 4 fields; give 5 .* or 6/);
  fails(() => validateCronExpression("0 0 3 * * * 2027"), "cron", /has 7 fields/);
  fails(
    () => validateCronExpression("61 * * * *"),
    "cron",
    /not a cron expression: Invalid value for minute: 61/,
  );
  validateTimeZone("Europe/Berlin");
  validateTimeZone("");
  fails(() => validateTimeZone("Mars/Olympus"), "timezone", /"Mars\/Olympus" is not a time zone/);
});
