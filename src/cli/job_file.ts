/**
 * Job files (`submit --config FILE`, YAML or JSON by extension), the lines
 * of `submit --batch FILE` (the same keys, one JSON object a line) and env
 * files (`submit --env-file FILE`): parsing and checking, pure apart from
 * reading the file. Every mistake is a usage error naming the file (or
 * line) and key.
 *
 * A job file uses the keys of job files people already have:
 *
 * ```yaml
 * command: make
 * args: [test]
 * environment: { CI: "true" }
 * secret_env: { NPM_TOKEN: "npm_..." }   # shown to nobody, masked in output
 * metadata: { team: build }
 * owner: ada
 * repository: https://example.com/repo.git
 * branch: main            # or commit: 1a2b3c
 * workingDirectory: sub/dir
 * processType: pty        # pipe (default) or pty
 * timeout: 600            # seconds (or a duration such as 10m)
 * queue: builds
 * retries: 3              # tries after the first (0..100)
 * retryOn: "1,75-78"      # exit codes that retry (default: non-zero but 126, 127)
 * retryDelay: 5s..10m     # first wait..longest, doubling with jitter
 * retryOnTimeout: false   # default true
 * ```
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { checkJobFields, type JobFile } from "./job_fields.ts";
import { UsageError } from "./parse.ts";

export * from "./job_fields.ts";

/** Reads and checks the job file at `path` (YAML unless it ends in .json). */
export async function readJobFile(path: string): Promise<JobFile> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(`--config: cannot read ${path}: ${(error as Error).message}`);
  }
  return parseJobFile(text, path.toLowerCase().endsWith(".json") ? "json" : "yaml", path);
}

/** Parses and checks a job file's text. */
export function parseJobFile(text: string, format: "yaml" | "json", name: string): JobFile {
  let value: unknown;
  try {
    value = format === "json" ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new UsageError(
      `--config ${name}: not valid ${format.toUpperCase()}: ${firstLine(error)}`,
    );
  }
  return checkJobFields(value, `--config ${name}`);
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0]!;
}
