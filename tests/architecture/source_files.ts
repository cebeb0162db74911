/** The repository's root and its TypeScript files, for the architecture tests. */
import { fileURLToPath } from "node:url";

/** The repository root, ending in a slash. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Every .ts file under `dir` (repository-relative), as repository-relative paths. */
export function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(`${ROOT}${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...sourceFiles(path));
    else if (path.endsWith(".ts")) files.push(path);
  }
  return files;
}
