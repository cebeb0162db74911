// The cli-startup scenario's yardstick: what any Deno script costs to start
// and exit, run with airunner's own flags and config.
console.log(1);
